#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// One boot of a machine, from clone to PID 1's end. Everything it makes on the host (the cgroup,
/// the children) is undone when it returns, on every path.
enum MachineBoot {
    /// `started` runs once the machine's tree is built and its PID 1 is about to exec.
    static func run(_ spec: MachineSpec, started: () -> Void) throws -> Supervisor.Outcome {
        let cgroup = try MachineCgroup.create(machine: spec.image.name, owner: spec.idRange?.base ?? 0)
        defer { cgroup.remove() }

        let (supervisorToInner, innerFromSupervisor) = try SetupChannel.pair()
        let (outerToInner, innerFromOuter) = try SetupChannel.pair()
        let inner = try ChildProcess.clone(namespaces: spec.namespaces, intoCgroup: cgroup.fd.raw) {
            supervisorToInner.fd.close()
            outerToInner.fd.close()
            try InnerChild.run(spec, supervisor: innerFromSupervisor, outer: innerFromOuter)
        }
        defer { inner.kill() }
        innerFromSupervisor.fd.close()
        innerFromOuter.fd.close()

        var userNamespace: OwnedFD?
        if let range = spec.idRange {
            // No "deny" to setgroups: we write the maps as the host's root, with CAP_SETGID.
            try FileSystem.write(range.mapLine, to: "/proc/\(inner.pid)/uid_map")
            try FileSystem.write(range.mapLine, to: "/proc/\(inner.pid)/gid_map")
            userNamespace = try FileSystem.open("/proc/\(inner.pid)/ns/user", O_RDONLY)
        }
        try supervisorToInner.send(.proceed)

        let (supervisorToOuter, outerFromSupervisor) = try SetupChannel.pair()
        let outer = try ChildProcess.clone(namespaces: [.mount]) {
            supervisorToOuter.fd.close()
            supervisorToInner.fd.close()
            try OuterChild.run(spec, userNamespace: userNamespace, supervisor: outerFromSupervisor, inner: outerToInner)
        }
        defer { outer.kill() }
        outerToInner.fd.close()
        outerFromSupervisor.fd.close()
        userNamespace?.close()

        let received: [OwnedFD]
        do {
            received = try supervisorToOuter.receive(.treeReady, from: "The outer child")
        } catch let aborted as SetupAborted {
            // It said why, unless a signal ended it (the OOM killer, a crash): then we say so.
            if case .killed(let signal)? = try outer.wait() { throw UserError("The outer child was killed by signal \(SignalName.name(signal)).") }
            throw aborted
        }
        guard let notify = received.first else { throw UserError("The outer child sent no notify socket.") }
        let master = received.count > 1 ? received[1] : nil
        switch try outer.wait() {
        case .exited(0)?: break
        case .killed(let signal)?: throw UserError("The outer child was killed by signal \(SignalName.name(signal)).")
        default: throw SetupAborted(peer: "The outer child")
        }
        supervisorToInner.fd.close()
        started()

        return try Supervisor(machine: inner, spec: spec, cgroup: cgroup.fd.raw, consoleMaster: master, notifySocket: notify).run()
    }
}
