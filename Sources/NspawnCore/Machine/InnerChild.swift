#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The machine's PID 1 before it execs the payload: born in its own user and PID namespaces and in
/// its cgroup, it makes its own mount, UTS, IPC and network namespaces at once (see
/// MachinePlan.namespacesMadeByPID1). It makes the file systems only it can make (they belong to its
/// namespaces), hands them to the outer child, joins the finished mount namespace, whose root is the
/// tree, and waits for the device filter on its cgroup before anything of the machine's.
enum InnerChild {
    /// `startGate`: the OCI runtime's exec.fifo (see MachineHandover); nil for a machine that starts at once.
    static func run(_ plan: MachinePlan, confinement: PayloadConfinement, supervisor: SetupChannel, outer: SetupChannel, startGate: OwnedFD?) throws -> Never {
        let kernel = LinuxKernel()
        try atBirth(plan, kernel: kernel)
        _ = try supervisor.receive(.proceed, from: "The supervisor")
        let mounts = try prepare(plan, kernel: kernel)
        try outer.send(.apiMounts, fds: mounts, to: "The outer child")
        mounts.forEach { $0.close() }

        let received = try outer.receive(.mountNamespace, from: "The outer child")
        guard let namespace = received.first else { throw UserError("The outer child sent no mount namespace.") }
        // Joining it makes the tree our root and working directory: the outer child pivoted already.
        try kernel.enter(namespace, .mount, name: "mnt")
        namespace.close()
        _ = try supervisor.receive(.devicesFiltered, from: "The supervisor")
        let console = received.count > 1 ? received[1] : nil
        var confinement = confinement
        if let startGate {
            try Payload.requireRunnable(plan.payload)
            // The filters go on before the gate, as runc's: the profile's listener must reach the
            // agent before `create` ends. swift-nspawn's own first, the profile last, so that little
            // of our own setup meets the profile.
            if let console {
                for fd: Int32 in 0...2 { try sys("dup2", path: "/dev/console") { dup2(console.raw, fd) } }
            }
            let listener = try confinement.installFilters()
            try waitAtStartGate(startGate, supervisor: supervisor, seccompListener: listener)
        }
        Payload.start(plan.payload, confinement: confinement, console: console)
    }

    /// PID 1 outlives `create`, which ends once it hears that PID 1 is here; `start` opening the
    /// gate for reading lets the open for writing return, and a byte written tells `start` so.
    /// With a console, its pty has taken our standard streams already: they are `create`'s, which
    /// its caller reads to their end (go-runc does) before it calls `start`.
    /// Until `create` has recorded the machine we still die with it: a `create` killed before then
    /// leaves nothing running that no `delete` could find.
    /// The seccomp profile's listener goes with the message that PID 1 is at the gate.
    private static func waitAtStartGate(_ gate: OwnedFD, supervisor: SetupChannel, seccompListener: OwnedFD?) throws {
        try supervisor.send(.atStartGate, fds: [seccompListener].compactMap { $0 }, to: "The supervisor")
        seccompListener?.close()
        _ = try supervisor.receive(.recorded, from: "The supervisor")
        _ = nsp_prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)
        try supervisor.send(.detached, to: "The supervisor")
        supervisor.fd.close()
        // Through our own /proc: the gate lies outside the machine's tree.
        let path = "/proc/self/fd/\(gate.raw)"
        let fifo = OwnedFD(try sys("open", path: path) { open(path, O_WRONLY | O_CLOEXEC) })
        gate.close()
        var byte: UInt8 = 0x30
        _ = try sys("write", path: path) { Glibc.write(fifo.raw, &byte, 1) }
    }

    /// At once, while the supervisor writes our ID maps and starts the outer child (we would only
    /// wait), all that needs no more than the capabilities we have in our user namespace from birth,
    /// maps or not: the namespaces we make ourselves (MachinePlan.namespacesMadeByPID1; the network
    /// one apart, so that a limit reached is named), our hostname, and our loopback interface up
    /// where the network namespace is ours.
    static func atBirth(_ plan: MachinePlan, kernel: any Kernel) throws {
        let made = plan.namespacesMadeByPID1
        let allButNetwork = made.subtracting(.network)
        if !allButNetwork.isEmpty { try kernel.unshare(allButNetwork) }
        if made.contains(.network) { try kernel.unshare(.network) }
        if let hostname = plan.hostname { try kernel.setHostname(hostname) }
        if let domainname = plan.domainname { try kernel.setDomainname(domainname) }
        if plan.network.namespace == .own { try kernel.bringUp("lo") }
    }

    /// Once the supervisor has written the ID maps: the machine's root, in its own cgroup namespace,
    /// makes the API file systems of its namespaces as detached mounts, in the plan's order.
    static func prepare(_ plan: MachinePlan, kernel: any Kernel) throws -> [OwnedFD] {
        if plan.idRange != nil {
            try kernel.becomeRoot()
            if !plan.nestedUserNamespaces {
                // The limit table seen through /proc/sys/user is our user namespace's own (the host's
                // procfs is still our /proc here), and it bounds every namespace below it.
                try kernel.writeFile("0", to: "/proc/sys/user/max_user_namespaces")
            }
        }
        // Our cgroup namespace, entered only now that we sit in the machine's cgroup, so the guest
        // sees that cgroup as "/".
        try kernel.unshare(.cgroup)
        // Through the host's procfs, which shows the settings of our namespaces; a network one only
        // where the network namespace is ours (the plan refuses the others).
        for sysctl in plan.sysctls where !sysctl.isNetwork || plan.network.namespace == .own {
            try kernel.writeFile(sysctl.value, to: sysctl.path)
        }
        var mounts: [OwnedFD] = []
        try plan.mounts.forEachAPIFilesystem { filesystem, attributes in
            mounts.append(try kernel.newMount(filesystem.rawValue, options: [], attributes: attributes))
        }
        return mounts
    }
}
