#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The machine's PID 1 before it execs the payload: born in its own user, PID, UTS, IPC and network
/// namespaces and in its cgroup. It makes the file systems only it can make (they belong to its
/// namespaces), hands them to the outer child, and joins the finished mount namespace, whose root
/// is the tree.
enum InnerChild {
    static func run(_ plan: MachinePlan, seccomp: SeccompFilter?, supervisor: SetupChannel, outer: SetupChannel) throws -> Never {
        _ = try supervisor.receive(.proceed, from: "The supervisor")
        if plan.idRange != nil {
            try MachineRoot.become()
            if !plan.nestedUserNamespaces {
                // The limit table seen through /proc/sys/user is our user namespace's own (the host's
                // procfs is still our /proc here), and it bounds every namespace below it.
                try FileSystem.write("0", to: "/proc/sys/user/max_user_namespaces")
            }
        }
        // Entered only now that we sit in the machine's cgroup, so the guest sees that cgroup as "/".
        try sys("unshare", path: "cgroup") { nsp_unshare(NSP_CLONE_NEWCGROUP) }

        let kernel = LinuxKernel()
        var mounts: [OwnedFD] = []
        for (filesystem, attributes) in plan.mounts.apiFilesystems {
            mounts.append(try kernel.newMount(filesystem.rawValue, options: [], attributes: attributes))
        }
        try outer.send(.apiMounts, fds: mounts)
        mounts.removeAll()

        try sys("sethostname", path: plan.hostname) { sethostname(plan.hostname, plan.hostname.utf8.count) }
        if plan.privateNetwork {
            try sys("ioctl(SIOCSIFFLAGS)", path: "lo") { nsp_interface_up("lo") }
        }

        let received = try outer.receive(.mountNamespace, from: "The outer child")
        guard let namespace = received.first else { throw UserError("The outer child sent no mount namespace.") }
        // Joining it makes the tree our root and working directory: the outer child pivoted already.
        try sys("setns", path: "mnt") { nsp_setns(namespace.raw, NSP_CLONE_NEWNS) }
        namespace.close()

        Payload.start(
            plan.payload, confinement: PayloadConfinement(capabilities: plan.payload.capabilities, seccomp: seccomp),
            console: received.count > 1 ? received[1] : nil)
    }
}
