#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// What the OCI runtime's `create` does instead of watching the machine: it leaves PID 1 ready, in
/// front of the start gate, and ends; PID 1 and the cgroup are the caller's then (its `start`,
/// `kill` and `delete`), and nothing stands between PID 1 and whoever reaps it.
struct MachineHandover {
    /// exec.fifo, opened O_PATH: PID 1 opens it for writing (through /proc/self/fd) once its machine
    /// is built, which blocks until `start` opens it for reading.
    var startGate: OwnedFD
    /// Once PID 1 waits at the gate: records the machine (pid file, state, the console's master to
    /// the console socket, the seccomp profile's listener to its agent). An error it throws ends
    /// PID 1 and undoes the machine, as any other.
    var handOver: (_ pid1: ChildProcess, _ consoleMaster: OwnedFD?, _ seccompListener: OwnedFD?, _ cgroup: MachineCgroup) throws -> Void
}

/// One boot of a machine, from clone to PID 1's end, carrying out its plan. Everything it makes on
/// the host (the cgroup, the children) is undone when it returns, on every path, unless it handed
/// the machine over.
enum MachineBoot {
    /// `started` runs once the machine's tree is built and its PID 1 is about to exec.
    /// Returns how PID 1 ended; nil when the machine was handed over.
    static func run(_ plan: MachinePlan, confinement: PayloadConfinement, handover: MachineHandover? = nil, started: () -> Void) throws -> Supervisor.Outcome? {
        let kernel = LinuxKernel()
        // Links are the supervisor's to remove when the machine ends: a handed-over machine has none.
        guard handover == nil || !plan.network.hasLinks else { throw UserError("A machine handed over by create may have no network links.") }
        let bus = plan.cgroup.needsBus ? try Bus.system() : nil
        let early: MachineCgroup?
        if case .direct(let path) = plan.cgroup.backend {
            early = try MachineCgroup.create(at: plan.cgroup.hierarchy + path, machine: plan.name, owner: plan.cgroup.owner, kernel: kernel)
        } else {
            early = nil
        }
        var handedOver = false
        defer { if !handedOver { early?.remove() } }

        let (supervisorToInner, innerFromSupervisor) = try SetupChannel.pair()
        let (outerToInner, innerFromOuter) = try SetupChannel.pair()
        let inner = try plan.payload.process.bornWithOOMScoreAdjust(kernel: kernel) {
            try NetworkNamespace.within(joining: plan.network.namespace) {
                try JoinedNamespace.within(joining: plan.joinedNamespaces) {
                    try TimeOffsets.within(plan.timeNamespace) {
                        try ChildProcess.clone(namespaces: plan.namespacesAtClone, intoCgroup: early?.fd.raw, role: "The machine's PID 1") {
                            // Nothing of ours goes into the machine (namespace handles, sockets, locks).
                            closeDescriptors(
                                except: [innerFromSupervisor.fd.raw, innerFromOuter.fd.raw, handover?.startGate.raw, errorCopy].compactMap { $0 }
                                    + confinement.preserved)
                            supervisorToInner.fd.close()
                            outerToInner.fd.close()
                            try InnerChild.run(
                                plan, confinement: confinement, supervisor: innerFromSupervisor, outer: innerFromOuter, startGate: handover?.startGate)
                        }
                    }
                }
            }
        }
        defer { if !handedOver { inner.kill() } }
        handover?.startGate.close()
        innerFromSupervisor.fd.close()
        innerFromOuter.fd.close()

        let cgroup: MachineCgroup
        var registered = false
        if let early {
            cgroup = early
        } else {
            (cgroup, registered) = try placeUnderSystemd(inner, plan: plan, bus: bus, kernel: kernel)
        }
        defer { if !handedOver { cgroup.remove() } }
        defer { if registered, let bus { MachineRegistration.unregister(bus: bus, name: plan.name) } }
        if plan.cgroup.propertiesOnCgroup { try cgroup.apply(plan.cgroup.properties, strict: plan.cgroup.strictProperties) }

        var userNamespace: OwnedFD?
        if let range = plan.idRange {
            // No "deny" to setgroups: we write the maps as the host's root, with CAP_SETGID.
            try kernel.writeFile(range.mapLines(binding: plan.boundUsers.map { ($0.machineID, $0.hostUID) }), to: "/proc/\(inner.pid)/uid_map")
            try kernel.writeFile(range.mapLines(binding: plan.boundUsers.map { ($0.machineID, $0.hostGID) }), to: "/proc/\(inner.pid)/gid_map")
            userNamespace = try kernel.open("/proc/\(inner.pid)/ns/user", in: nil, flags: O_RDONLY, mode: 0)
        }
        try plan.payload.process.apply(to: inner.pid, kernel: kernel)
        // Its links are made now, before PID 1 goes on: host0 is up with its address when the payload starts.
        let network = plan.network.hasLinks ? try MachineNetwork(plan.network, machinePID: inner.pid, machine: plan.name) : nil
        var machineEnded = false
        defer { machineEnded ? network?.finish() : network?.tearDown() }
        try supervisorToInner.send(.proceed, to: "The machine's PID 1")

        let (supervisorToOuter, outerFromSupervisor) = try SetupChannel.pair()
        // In a joined network namespace too: it makes the sysfs for it.
        let outer = try NetworkNamespace.within(joining: plan.network.namespace) {
            try ChildProcess.clone(namespaces: [.mount], role: "The outer child") {
                supervisorToOuter.fd.close()
                supervisorToInner.fd.close()
                try OuterChild.run(plan, userNamespace: userNamespace, supervisor: outerFromSupervisor, inner: outerToInner)
            }
        }
        defer { outer.kill() }
        outerToInner.fd.close()
        outerFromSupervisor.fd.close()
        userNamespace?.close()
        // The outer child builds the tree and PID 1 makes its file systems meanwhile; on two CPUs
        // the verifier's ~0.3 ms would otherwise be taken from them (start 11.50 -> 11.11 ms).
        try BackgroundPriority.run {
            try cgroup.attachDeviceFilter(plan.cgroup.deviceFilter, required: plan.cgroup.deviceFilterRequired)
        }
        try supervisorToInner.send(.devicesFiltered, to: "The machine's PID 1")

        let received: [OwnedFD]
        do {
            received = try supervisorToOuter.receive(.treeReady, from: "The outer child")
        } catch let aborted as SetupAborted {
            try outer.requireCleanExit()
            throw aborted
        }
        guard let notify = received.first else { throw UserError("The outer child sent no notify socket.") }
        let master = received.count > 1 ? received[1] : nil
        try outer.requireCleanExit()
        if let handover {
            // Bounded: PID 1 only finishes its own setup (its seccomp profile cannot make it wait on
            // an agent that has no listener yet: SeccompProfile.neverNotified).
            let listener = try supervisorToInner.receive(.atStartGate, from: "The machine's PID 1", within: 60).first
            try handover.handOver(inner, master, listener, cgroup)
            try supervisorToInner.send(.recorded, to: "The machine's PID 1")
            _ = try supervisorToInner.receive(.detached, from: "The machine's PID 1")
            handedOver = true
            cgroup.relinquish()
            return nil
        }
        supervisorToInner.fd.close()
        started()

        let outcome = try Supervisor(
            machine: inner, plan: plan, confinement: confinement, cgroup: cgroup.fd.raw, consoleMaster: master, notifySocket: notify, network: network
        ).run()
        machineEnded = true
        return outcome
    }

    /// The machine's PID 1 into a scope of its own (or our unit with --keep-unit), then into the
    /// "payload" cgroup below it; registered with machined as the plan says.
    /// Returns the payload cgroup, and whether the machine was registered with machined.
    private static func placeUnderSystemd(_ inner: ChildProcess, plan: MachinePlan, bus: Bus?, kernel: any Kernel) throws -> (MachineCgroup, Bool) {
        let unitPath: String
        switch plan.cgroup.backend {
        case .direct:
            preconditionFailure("a direct cgroup is made before PID 1 is cloned")
        case .ownUnit(let path):
            unitPath = path
        case .scope(let unit, let slice, let description, let outlivesUs):
            guard let bus else { throw UserError("No system bus to ask systemd for the machine's scope.") }
            unitPath = try SystemdScope.start(
                bus: bus, unit: unit, machine: inner, slice: slice, description: description, properties: plan.cgroup.properties,
                devices: plan.cgroup.devices.map { "/dev/\($0.name)" }, outlivesUs: outlivesUs)
        }
        let unitDirectory = plan.cgroup.hierarchy + (unitPath == "/" ? "" : unitPath)
        if case .ownUnit = plan.cgroup.backend {
            // cgroup2 lets a cgroup with processes pass no controllers down: we leave our unit's
            // root for "supervisor", as systemd-nspawn does, so the payload can have them.
            try MachineCgroup.enter(unitDirectory + "/supervisor", kernel: kernel)
        }
        let cgroup = try MachineCgroup.create(at: unitDirectory + "/payload", machine: plan.name, owner: plan.cgroup.owner, kernel: kernel)
        var registered = false
        do {
            try cgroup.adopt(inner.pid)
            MachineCgroup.delegateControllers(in: unitDirectory, kernel: kernel)
            if plan.cgroup.registration != .no, let bus {
                registered = try MachineRegistration.register(
                    bus: bus, name: plan.name, id: plan.machineID, service: plan.cgroup.service, leader: inner.pid,
                    root: plan.mounts.root.pivot?.tree ?? plan.mounts.root.path,
                    required: plan.cgroup.registration == .required)
            }
        } catch {
            cgroup.remove()
            throw error
        }
        return (cgroup, registered)
    }
}
