/// Where the machine's cgroup comes from, and what goes on it: decided from the host facts before
/// anything is made.
struct CgroupPlan: Equatable, Sendable {
    enum Backend: Equatable, Sendable {
        /// No systemd: machine-NAME below swift-nspawn's own cgroup, made by swift-nspawn, the
        /// machine born in it (CLONE_INTO_CGROUP).
        case direct(path: String)
        /// systemd: a transient scope, delegated to us over sd-bus; the machine's PID 1 moves into
        /// its "payload" cgroup, which the guest gets as its cgroup root (as systemd-nspawn does).
        /// `outlivesUs`: the OCI runtime's, which must stay when `create` ends; any other scope is
        /// referenced by our bus connection and goes when we do.
        case scope(unit: String, slice: String, description: String, outlivesUs: Bool = false)
        /// --keep-unit on systemd: the unit we run in; we leave its root for "supervisor" (cgroup2
        /// lets a cgroup with processes pass no controllers down) and the machine gets "payload".
        case ownUnit(path: String)
    }

    /// Whether the machine is registered with systemd-machined, and whether failing to is an error.
    enum Registration: Equatable, Sendable {
        case no, ifAvailable, required
    }

    var backend: Backend
    /// The cgroup2 mount point on the host, to which the unit paths above are relative.
    var hierarchy: String
    /// The host UID that owns the machine's cgroup (its root's): the guest manages its subtree.
    var owner: UInt32
    var properties: [ResourceProperty]
    var registration: Registration
    /// The service machined lists the machine under (SYSTEMD_NSPAWN_CONTAINER_SERVICE).
    var service = "swift-nspawn"
    /// The device filter (BPF on the cgroup) must be attached; inside a machine, whose own filter
    /// may refuse bpf() and whose device policy covers every cgroup below ours, it may be missing.
    var deviceFilterRequired: Bool
    /// An OCI bundle's devices, allowed besides swift-nspawn's own (rwm, as runc allows them).
    var devices: [DeviceNode] = []

    /// What the machine's processes may open and make.
    var deviceFilter: DeviceFilter {
        DeviceFilter(
            rules: DeviceFilter.closed.rules
                + devices.map {
                    .init(
                        kind: $0.block ? .block : .character, major: $0.major, minor: $0.minor,
                        access: DeviceFilter.mknod | DeviceFilter.read | DeviceFilter.write)
                })
    }

    /// A setting that cannot be applied ends the start (the OCI runtime's resources) rather than
    /// being warned about.
    var strictProperties = false

    /// Without a scope of ours to carry them (no systemd, or --keep-unit), --property settings are
    /// written into the cgroup's own files. The OCI runtime's go there besides its scope's, as
    /// runc's systemd driver writes them: the container reads its limits in its own cgroup.
    var propertiesOnCgroup: Bool {
        if case .scope(_, _, _, let outlivesUs) = backend { outlivesUs } else { true }
    }

    /// The system bus is needed for a scope, and for machined.
    var needsBus: Bool {
        if case .scope = backend { return true }
        return registration != .no
    }

    /// - Parameters:
    ///   - path: the OCI runtime's linux.cgroupsPath: the machine's cgroup, made by us, on any host
    ///     (absolute in the hierarchy, or relative to our own cgroup); never registered.
    ///   - systemdDriver: the OCI runtime's --systemd-cgroup: `path` is "slice:prefix:name" instead,
    ///     a scope systemd makes and delegates, as runc's systemd driver asks for it.
    init(
        host: HostFacts, machine name: String, owner: UInt32, keepUnit: Bool, register: RegisterMode, slice: String, properties: [ResourceProperty],
        path: String? = nil, systemdDriver: Bool = false
    ) throws(UserError) {
        guard let hierarchy = host.cgroupHierarchy else {
            throw UserError("No cgroup2 hierarchy found at /sys/fs/cgroup or /sys/fs/cgroup/unified; swift-nspawn needs cgroup v2.")
        }
        self.hierarchy = hierarchy
        self.owner = owner
        self.properties = properties
        deviceFilterRequired = !host.insideMachine
        func ownDirectory() throws(UserError) -> String {
            guard let own = host.ownCgroup else { throw UserError("/proc/self/cgroup has no cgroup2 entry.") }
            return own == "/" ? "" : own
        }
        if systemdDriver {
            guard host.systemd else { throw UserError("--systemd-cgroup: this host does not run systemd.") }
            let (unit, slice) = try Self.systemdUnit(path ?? "", container: name)
            backend = .scope(unit: unit, slice: slice, description: "Container \(name)", outlivesUs: true)
            registration = .no
            strictProperties = true
            return
        }
        if let path {
            // Relative: below the parent of our own cgroup, as runc places it (ours has processes in
            // it, so cgroup2 would let it pass no controllers down).
            let own = try ownDirectory()
            let absolute = path.hasPrefix("/") ? path : "\(own.split(separator: "/").dropLast().map { "/" + $0 }.joined())/\(path)"
            backend = .direct(path: String(absolute.reversed().drop { $0 == "/" }.reversed()))
            registration = .no
            strictProperties = true
            return
        }
        guard host.systemd else {
            if register == .yes {
                throw UserError("--register=yes: this host does not run systemd, so there is no systemd-machined to register with; use --register=auto or no.")
            }
            backend = .direct(path: "\(try ownDirectory())/machine-\(name)")
            registration = .no
            return
        }
        var registration: Registration = register == .yes ? .required : register == .auto ? .ifAvailable : .no
        if keepUnit {
            // From a login session, our "unit" is the user's session scope: registering it as the
            // machine would let machinectl terminate the session (systemd-nspawn refuses the same).
            let own = try ownDirectory()
            if own.hasPrefix("/user.slice/") {
                guard register != .yes else { throw UserError("--keep-unit --register=yes may not be used when invoked from a user session.") }
                registration = .no
            }
            backend = .ownUnit(path: own)
        } else {
            backend = .scope(unit: "machine-\(SystemdScope.escape(name)).scope", slice: slice, description: "Container \(name)")
        }
        self.registration = registration
    }

    /// runc's systemd cgroupsPath, "slice:prefix:name": the scope "prefix-name.scope" in `slice`
    /// (system.slice when empty, the root slice for "-"); ":runc:ID" when the whole path is empty.
    static func systemdUnit(_ path: String, container: String) throws(UserError) -> (unit: String, slice: String) {
        let parts = path.isEmpty ? ["", "runc", container] : path.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, !parts[2].isEmpty else {
            throw UserError("linux.cgroupsPath: \(path): expected slice:prefix:name for the systemd cgroup driver.")
        }
        guard !parts[2].hasSuffix(".slice") else { throw UserError("linux.cgroupsPath: \(path): a slice of its own is not supported by swift-nspawn.") }
        let slice = parts[0].isEmpty ? "system.slice" : parts[0] == "-" ? "-.slice" : parts[0]
        guard slice.hasSuffix(".slice"), !slice.contains("/") else { throw UserError("linux.cgroupsPath: \(path): \(parts[0]) is not a slice.") }
        return ((parts[1].isEmpty ? "" : parts[1] + "-") + parts[2] + ".scope", slice)
    }
}
