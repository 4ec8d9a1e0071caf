#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The outer child: host-privileged, in a mount namespace of its own, it builds the machine's mount
/// namespace as the plan says (MountNamespaceBuilder) and hands it to the machine's PID 1, and the
/// notify socket and console to the supervisor.
enum OuterChild {
    static func run(_ plan: MachinePlan, userNamespace: OwnedFD?, supervisor: SetupChannel, inner: SetupChannel) throws -> Never {
        let kernel = LinuxKernel()
        // Through the host's procfs, where this process has a PID (the tree's /proc is the machine's).
        let hostProc = try kernel.open("/proc", in: nil, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
        let built = try MountNamespaceBuilder(kernel: kernel, plan: plan.mounts, machineRoot: plan.idRange?.base ?? 0, quiet: plan.quiet)
            .build(userNamespace: userNamespace) {
                APIMounts(try inner.receive(.apiMounts, from: "The machine's PID 1"), plan: plan.mounts)
            }
        let namespace = try kernel.open("thread-self/ns/mnt", in: hostProc, flags: O_RDONLY, mode: 0)
        try inner.send(.mountNamespace, fds: [namespace] + [built.consolePeer].compactMap { $0 }, to: "The machine's PID 1")
        try supervisor.send(.treeReady, fds: [built.notify, built.consoleMaster].compactMap { $0 }, to: "The supervisor")
        _exit(0)
    }
}
