#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import CSystemd

/// One boot of a machine, from clone to PID 1's end. Everything it makes on the host (the cgroup,
/// the children) is undone when it returns, on every path.
enum MachineBoot {
    /// `started` runs once the machine's tree is built and its PID 1 is about to exec.
    static func run(_ spec: MachineSpec, started: () -> Void) throws -> Supervisor.Outcome {
        // On a systemd host the machine's cgroup is systemd's to hand out: a scope (or, with
        // --keep-unit, our own unit) delegated to us. Elsewhere we make it ourselves.
        let systemd = sd_booted() > 0
        let bus = systemd && (!spec.keepUnit || spec.register != .no) ? try Bus.system() : nil
        let owner = spec.idRange?.base ?? 0
        let early = systemd ? nil : try MachineCgroup.create(machine: spec.image.name, owner: owner)
        defer { early?.remove() }

        let (supervisorToInner, innerFromSupervisor) = try SetupChannel.pair()
        let (outerToInner, innerFromOuter) = try SetupChannel.pair()
        let inner = try ChildProcess.clone(namespaces: spec.namespaces, intoCgroup: early?.fd.raw) {
            supervisorToInner.fd.close()
            outerToInner.fd.close()
            try InnerChild.run(spec, supervisor: innerFromSupervisor, outer: innerFromOuter)
        }
        defer { inner.kill() }
        innerFromSupervisor.fd.close()
        innerFromOuter.fd.close()

        let cgroup: MachineCgroup
        var registered = false
        if let early {
            cgroup = early
        } else {
            (cgroup, registered) = try placeUnderSystemd(inner, spec: spec, bus: bus, owner: owner)
        }
        defer { cgroup.remove() }
        defer { if registered, let bus { MachineRegistration.unregister(bus: bus, name: spec.image.name) } }
        // Without a scope of ours (no systemd, or --keep-unit), the settings go on the cgroup itself.
        if early != nil || spec.keepUnit { try cgroup.apply(spec.properties) }

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

        // A failed outer child has said why, unless a signal ended it (the OOM killer, a crash).
        func requireCleanExit() throws {
            switch try outer.wait() {
            case .exited(0)?: return
            case .killed(let signal)?: throw UserError("The outer child was killed by signal \(SignalName.name(signal)).")
            default: throw SetupAborted(peer: "The outer child")
            }
        }
        let received: [OwnedFD]
        do {
            received = try supervisorToOuter.receive(.treeReady, from: "The outer child")
        } catch let aborted as SetupAborted {
            try requireCleanExit()
            throw aborted
        }
        guard let notify = received.first else { throw UserError("The outer child sent no notify socket.") }
        let master = received.count > 1 ? received[1] : nil
        try requireCleanExit()
        supervisorToInner.fd.close()
        started()

        return try Supervisor(machine: inner, spec: spec, cgroup: cgroup.fd.raw, consoleMaster: master, notifySocket: notify).run()
    }

    /// The machine's PID 1 into a scope of its own (or our unit with --keep-unit), then into the
    /// "payload" cgroup below it, which the guest gets as its cgroup root (as systemd-nspawn does:
    /// the scope itself stays systemd's); registered with machined unless --register=no.
    /// Returns the payload cgroup, and whether the machine was registered with machined.
    private static func placeUnderSystemd(_ inner: ChildProcess, spec: MachineSpec, bus: Bus?, owner: UInt32) throws -> (MachineCgroup, Bool) {
        let name = spec.image.name
        let unitPath: String
        if spec.keepUnit {
            unitPath = try MachineCgroup.ownPath()
        } else if let bus {
            unitPath = try SystemdScope.start(
                bus: bus, unit: "machine-\(SystemdScope.escape(name)).scope", machine: inner, slice: spec.slice, description: "Container \(name)",
                properties: spec.properties)
        } else {
            throw UserError("No system bus to ask systemd for the machine's scope.")
        }
        let unitDirectory = try MachineCgroup.hierarchy() + (unitPath == "/" ? "" : unitPath)
        if spec.keepUnit {
            // cgroup2 lets a cgroup with processes pass no controllers down: we leave our unit's
            // root for "supervisor", as systemd-nspawn does, so the payload can have them.
            try MachineCgroup.enter(unitDirectory + "/supervisor")
        }
        let cgroup = try MachineCgroup.create(at: unitDirectory + "/payload", machine: name, owner: owner)
        var registered = false
        do {
            try cgroup.adopt(inner.pid)
            MachineCgroup.delegateControllers(in: unitDirectory)
            if spec.register != .no, let bus {
                registered = try MachineRegistration.register(
                    bus: bus, name: name, id: spec.machineID, leader: inner.pid, root: spec.image.path, required: spec.register == .yes)
            }
        } catch {
            cgroup.remove()
            throw error
        }
        return (cgroup, registered)
    }
}
