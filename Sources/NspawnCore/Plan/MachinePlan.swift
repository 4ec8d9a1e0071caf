/// Every decision about one machine, made before anything exists: from the configuration (what the
/// user asked), the host facts (what the host is, probed once), the tree's own facts and the ID range
/// the launcher locked. Building it makes no system call, so every decision is unit-tested without
/// root; the supervisor, the outer child, PID 1 and the payload only carry it out.
struct MachinePlan: Equatable, Sendable {
    var name: String
    /// nil: the UTS namespace is a joined one, whose name stays as it is.
    var hostname: String?
    /// An OCI bundle's domainname (the NIS domain of the machine's UTS namespace).
    var domainname: String?
    var machineID: MachineID
    /// The host IDs the machine's IDs map onto (uid_map and gid_map); nil without a user namespace.
    var idRange: UIDRange?
    /// --bind-user's users: their IDs cut out of the range and mapped onto theirs on the host.
    var boundUsers: [BoundUser] = []
    /// Whether the machine may create user namespaces of its own; "no" writes 0 to its
    /// /proc/sys/user/max_user_namespaces.
    var nestedUserNamespaces: Bool
    var network: NetworkPlan
    /// Kernel settings of the machine's own namespaces, set by its PID 1 before anything runs.
    var sysctls: [Sysctl] = []
    /// Not the host's network: a namespace of its own, or one joined.
    var privateNetwork: Bool { network.namespace != .host }
    var cgroup: CgroupPlan
    var mounts: MountPlan
    var payload: PayloadPlan
    var console: ConsoleMode
    var quiet: Bool
    /// The signal that asks PID 1 to stop (SIGTERM and SIGINT to swift-nspawn); nil: SIGKILL.
    var killSignal: Int32?
    var notifyReady: Bool
    /// --boot-test's timeout in seconds; nil without a boot test.
    var bootTestTimeout: Int?
    /// A reboot ends swift-nspawn with 133 instead of booting again in-process (--keep-unit).
    var keepUnit: Bool
    /// What the user should know before the machine starts.
    var warnings: [String] = []

    /// How many IDs a picked range has: 64K, or with --nesting 16 × 64K, so that the machine's own
    /// machines find free 64K ranges among its IDs (at 0x80000 and above, as everywhere).
    static func pickedRangeSize(_ c: Configuration) -> UInt32 {
        c.nesting ? 16 * UIDRange.machineSize : UIDRange.machineSize
    }

    /// What the machine's processes are held to: the capability policy and the system call filter
    /// (nil with SYSTEMD_SECCOMP=0); and the capabilities asked for that swift-nspawn lacks itself.
    /// Without a user namespace the machine's capabilities are the host's: it can have no more than
    /// we hold. (Also what the OCI runtime's `exec` holds a process it starts in the machine to.)
    static func confinement(
        _ c: Configuration, userNamespace: Bool, held: CapabilitySet
    ) throws(UserError) -> (CapabilityPolicy, SeccompPolicy?, lost: CapabilitySet) {
        var capabilities = c.capabilities
        let lost = userNamespace ? CapabilitySet() : capabilities.limit(to: held)
        let seccomp =
            c.seccomp
            ? try SeccompPolicy(capabilities: capabilities.bounding, filters: c.systemCallFilters, keyringsAbsent: c.nesting, suppressSync: c.suppressSync)
            : nil
        return (capabilities, seccomp, lost)
    }

    /// An OCI bundle's PID, IPC and UTS namespaces to be born in.
    var joinedNamespaces: [JoinedNamespace] = []
    /// An OCI bundle's time namespace, with its offsets; nil: the host's.
    var timeNamespace: TimeOffsets?

    /// The namespaces of the machine's PID 1 (the cgroup namespace aside, which it enters itself).
    var namespaces: NamespaceSet {
        var set: NamespaceSet = [.mount, .pid, .uts, .ipc]
        for joined in joinedNamespaces { set.remove(joined.kind.namespace) }
        if idRange != nil { set.insert(.user) }
        if network.namespace == .own { set.insert(.network) }
        return set
    }

    /// A network namespace of its own with no links to move in (the default, with only `lo`): PID 1
    /// makes it itself (see namespacesMadeByPID1). Making one is the dearest part of a clone here
    /// (about 0.4 ms). One with links must exist at the clone: the supervisor moves them into it
    /// before PID 1 goes on.
    var networkNamespaceMadeByPID1: Bool { network.namespace == .own && !network.hasLinks }

    /// The namespaces PID 1 makes itself as soon as it is born (unshare), while the supervisor
    /// writes its ID maps and starts the outer child, rather than being born in them: its mount,
    /// UTS and IPC namespaces, and a network namespace without links. They are then not made on
    /// the supervisor's way to starting the outer child (copying the host's mount table and making
    /// an IPC namespace are half of the clone's namespace work), and nothing before needs them. The
    /// clone makes only what must exist at birth: the user namespace, whose maps the supervisor
    /// writes, and the PID namespace, whose first process PID 1 is. Made by PID 1, they are owned by
    /// the machine's user namespace, as at the clone.
    var namespacesMadeByPID1: NamespaceSet {
        var set = namespaces.intersection([.mount, .uts, .ipc])
        if networkNamespaceMadeByPID1 { set.insert(.network) }
        return set
    }

    /// The namespaces PID 1 is born in.
    var namespacesAtClone: NamespaceSet { namespaces.subtracting(namespacesMadeByPID1) }

    /// - Parameters:
    ///   - image: where the tree is and the machine's name.
    ///   - treeMachineID: the tree's own /etc/machine-id, if valid.
    ///   - idRange: the range the launcher locked (nil with --private-users=no).
    ///   - randomID: the machine ID when neither the tree nor --uuid has one.
    ///   - credentials: --set-credential's values and --load-credential's files, read.
    ///   - journal: what --link-journal does, decided (and prepared on the host) by the launcher.
    ///   - timezone: what --timezone does, decided by the launcher (which writes what it writes).
    ///   - resolvConf: what --resolv-conf does, likewise.
    ///   - boundUsers: --bind-user's users, looked up on the host by the launcher.
    init(
        configuration c: Configuration, host: HostFacts, image: MachineImage, treeMachineID: MachineID?, idRange: UIDRange?, randomID: MachineID,
        credentials: [Credential] = [], journal: JournalLink? = nil, timezone: EtcFileSetup? = nil, resolvConf: EtcFileSetup? = nil,
        boundUsers: [BoundUser] = []
    ) throws(UserError) {
        name = image.name
        joinedNamespaces = c.joinedNamespaces
        timeNamespace = c.timeNamespace
        hostname = c.hostname ?? (joinedNamespaces.contains { $0.kind == .uts } ? nil : image.name)
        domainname = c.domainname
        // A valid machine-id in the tree wins over --uuid, as with systemd-nspawn; none is ever written.
        machineID = treeMachineID ?? c.uuid ?? randomID
        self.idRange = idRange
        nestedUserNamespaces = c.nestedUserNamespaces
        network = NetworkPlan(
            configuration: c.network, machine: image.name, hostMachineID: host.machineID, ownAddresses: c.switches.ownAddresses ?? !host.networkdRunsHere)
        cgroup = try CgroupPlan(
            host: host, machine: image.name, owner: idRange?.base ?? 0, keepUnit: c.keepUnit, register: c.register, slice: c.slice,
            properties: c.properties, path: c.cgroupPath, systemdDriver: c.systemdCgroupDriver)
        cgroup.service = c.switches.containerService
        cgroup.devices = c.devices

        // A boot test shows the boot but takes no input.
        let defaultConsole: ConsoleMode =
            c.bootTestTimeout != nil ? .readOnly : .defaultMode(stdinIsTerminal: host.stdinIsTerminal, stdoutIsTerminal: host.stdoutIsTerminal)
        console = (c.console ?? defaultConsole).resolved(stdinIsTerminal: host.stdinIsTerminal, stdoutIsTerminal: host.stdoutIsTerminal)
        quiet = c.quiet || console == .pipe

        // The tree is shifted by an idmapped mount, unless it is already owned by its range
        // (--private-users=yes) or the range starts at 0 (identity): nothing to shift then.
        var idMapping = IDMapping.none
        if let idRange, idRange.base != 0, c.userNamespace != .fromTree {
            switch c.ownership {
            case .map: idMapping = .required
            case .auto: idMapping = .preferred
            case .off: idMapping = .none
            }
        }
        mounts = MountPlan(
            configuration: c, rootPath: image.path, machineID: machineID, console: console, hostOSRelease: host.osRelease, userNamespace: idRange != nil,
            idMapping: idMapping, nesting: c.nesting, identity: idRange?.base == 0, credentials: credentials, boundUsers: boundUsers)
        self.boundUsers = boundUsers
        mounts.root.submounts = image.submounts
        mounts.root.pivot = image.pivotRoot.map { RootMount.Pivot(tree: image.directory, relative: $0) }
        if let oldRoot = c.pivotRoot?.oldRoot {
            // The whole tree, shown as the root is (owners, read-only); its own submounts stay out.
            mounts.guestMounts.insert(
                .bind(
                    BindOperation(
                        source: image.directory, path: oldRoot,
                        // Never writable where the root is a throw-away one (-x, --volatile).
                        attributes: mounts.root.ephemeral || mounts.root.volatileRoot ? mounts.root.attributes.union(.readOnly) : mounts.root.attributes,
                        recursive: false,
                        mapping: idMapping == .none ? .none : .machine(idMapping))), at: 0)
        }
        if let journal, journal.action == .bindHostDirectory {
            // The guest's journald writes there as the host's root would, so that the host reads it.
            mounts.guestMounts.append(
                .bind(
                    BindOperation(
                        source: journal.path, path: journal.path, attributes: [.noDev], recursive: false,
                        mapping: idRange == nil || idRange?.base == 0 ? .none : .machine(.required))))
        }
        if case .mount(let source, let makeMountPoint) = timezone {
            // After the tree's own mounts, as systemd-nspawn sets up the time zone after them.
            mounts.hostMounts.append(.etcFile("localtime", source, makeMountPoint: makeMountPoint))
        }
        if case .mount(let source, let makeMountPoint) = resolvConf {
            mounts.hostMounts.append(.etcFile("resolv.conf", source, makeMountPoint: makeMountPoint))
        }

        let (capabilities, seccomp, lost) = try Self.confinement(c, userNamespace: idRange != nil, held: host.heldCapabilities)
        if !lost.isEmpty && !quiet { warnings.append("swift-nspawn itself lacks \(lost); the machine does without.") }
        payload = PayloadPlan(
            command: c.command, environment: c.environment, user: c.user, workingDirectory: c.workingDirectory, asPID2: c.asPID2, boot: c.boot,
            capabilities: capabilities, seccomp: seccomp,
            machineID: machineID, term: console == .pipe ? host.term : host.term ?? "vt220", hostEnvironment: host.hostEnvironment,
            process: c.process, credentialsDirectory: credentials.isEmpty ? nil : MountPlan.credentialsPath,
            container: c.switches.containerService)
        payload.identity = c.identity
        payload.seccompProfile = c.seccompProfile
        payload.preservedDescriptors = c.preservedDescriptors
        if let identity = c.identity, let idRange {
            // The machine has the IDs below its range's size; setresuid() to another fails.
            for id in [identity.uid, identity.gid] + identity.groups where id >= idRange.count {
                throw UserError("The OCI bundle's user or group \(id) lies outside the machine's \(idRange.count) IDs.")
            }
        }
        // A device's owner is one of the machine's IDs: the host's root gives it away as one.
        if let idRange, let device = c.devices.first(where: { max($0.uid, $0.gid) >= idRange.count }) {
            throw UserError("The OCI bundle's device /dev/\(device.name) is owned by \(device.uid):\(device.gid), outside the machine's \(idRange.count) IDs.")
        }
        // A network setting only where the network namespace is the machine's own: never the host's.
        if let shared = c.sysctls.first(where: { $0.isNetwork }), network.namespace != .own {
            throw UserError("linux.sysctl: \(shared.key) needs a network namespace of the machine's own.")
        }
        sysctls = c.sysctls
        killSignal = c.killSignal
        notifyReady = c.notifyReady
        bootTestTimeout = c.bootTestTimeout
        keepUnit = c.keepUnit
    }
}

/// What PID 1 (or PID 2 with --as-pid2) runs, as whom, and held how.
struct PayloadPlan: Equatable, Sendable {
    var command: [String]
    /// The -E assignments, applied over the environment systemd-nspawn gives its payload.
    var environment: [String]
    var user: String?
    /// An OCI bundle's user by number; never with `user`.
    var identity: NumericIdentity?
    var workingDirectory: String?
    var asPID2: Bool
    /// Exec the tree's init (systemd) with `command` as its arguments.
    var boot: Bool
    var capabilities: CapabilityPolicy
    /// nil only with SYSTEMD_SECCOMP=0.
    var seccomp: SeccompPolicy?
    /// An OCI bundle's profile, on top of `seccomp` (even without it: the engine asked for it).
    var seccompProfile: SeccompProfile?
    var machineID: MachineID
    var term: String?
    /// container_host_id=… and the other container_host_* variables, from the host's os-release.
    var hostEnvironment: [String] = []
    /// OOM score, resource limits, CPU affinity and personality of PID 1.
    var process = ProcessSettings()
    /// $CREDENTIALS_DIRECTORY, when the machine has credentials.
    var credentialsDirectory: String?
    /// What $container says: swift-nspawn, truthfully, unless SYSTEMD_NSPAWN_CONTAINER_SERVICE says
    /// otherwise. systemd in the guest then reports "container-other" (systemd-detect-virt):
    /// ConditionVirtualization=container and !container hold as under systemd-nspawn,
    /// =systemd-nspawn does not (swift-nspawn(1), ENVIRONMENT).
    var container = "swift-nspawn"
    /// SIGKILLed when the supervisor dies; not when an OCI runtime's `create` handed it over.
    var diesWithSupervisor = true
    /// The OCI runtime's create --preserve-fds: descriptors 3, 4, … passed on to the payload.
    var preservedDescriptors: Int32 = 0
}
