import CCap

/// Which system calls the payload may make: systemd-nspawn's allow-list (reference §6), with
/// userfaultfd taken out, edited by --system-call-filter. Argument rules that one allow-list
/// cannot express (TIOCSTI, TIOCLINUX, NETLINK_AUDIT) live in `ArgumentRule`.
public struct SeccompPolicy: Equatable, Sendable {
    /// The payload's bounding set: calls tied to a capability are allowed only with it.
    public var capabilities: CapabilitySet
    /// --system-call-filter= values: names and @groups to allow, or with "~" to deny.
    public var filters: [String]
    /// The keyring calls fail with ENOSYS, as on a kernel without keys, rather than EPERM: container
    /// runtimes (crun, runc) then do without a session keyring of their own instead of failing, as
    /// they do under LXD, whose policy answers the same. For machines that run containers (--nesting).
    public var keyringsAbsent: Bool
    /// --suppress-sync=yes: the calls that write data to disk return success at once, as under
    /// systemd-nspawn (for throwaway builds; a crash can then lose what the machine wrote).
    public var suppressSync: Bool

    public init(capabilities: CapabilitySet, filters: [String] = [], keyringsAbsent: Bool = false, suppressSync: Bool = false) throws(UserError) {
        try Self.validate(filters)
        self.capabilities = capabilities
        self.filters = filters
        self.keyringsAbsent = keyringsAbsent
        self.suppressSync = suppressSync
    }

    /// What --suppress-sync=yes turns into no-ops (systemd's seccomp_suppress_sync()).
    public static let syncCalls = ["fdatasync", "fsync", "msync", "sync", "sync_file_range", "sync_file_range2", "syncfs"]

    /// The calls `keyringsAbsent` answers with ENOSYS when they are not allowed.
    public static let keyringCalls: Set<String> = ["add_key", "keyctl", "request_key"]

    /// Every name in --system-call-filter= values must be a system call or group systemd knows.
    public static func validate(_ filters: [String]) throws(UserError) {
        for filter in filters {
            for word in words(filter) where expand(String(word)).isEmpty {
                throw UserError("Unknown system call or group in --system-call-filter=: \(word) (see --system-call-filter=help).")
            }
        }
    }

    /// The system calls the payload may make; every other known one fails with EPERM, an unknown
    /// one with ENOSYS (so that a libc falls back, as on a kernel too old to have the call).
    public func allowed() -> Set<String> {
        var allowed = Set<String>()
        for entry in Self.allowList where entry.capability.map({ capabilities.contains(number: $0) }) ?? true {
            allowed.formUnion(Self.expand(entry.name))
        }
        // Additions first, then denials: a call named on both sides is denied, whatever the order.
        for filter in filters where !filter.hasPrefix("~") {
            allowed.formUnion(Self.words(filter).reduce(into: Set<String>()) { $0.formUnion(Self.expand(String($1))) })
        }
        for filter in filters where filter.hasPrefix("~") {
            allowed.subtract(Self.words(filter).reduce(into: Set<String>()) { $0.formUnion(Self.expand(String($1))) })
        }
        return allowed
    }

    /// Everything the filter knows by name: the complement of `allowed()` in it is denied with EPERM.
    /// @known names other groups too (@obsolete), so it is expanded through the raw table.
    public static let known: Set<String> = {
        func members(_ group: String, seen: Set<String>) -> Set<String> {
            guard !seen.contains(group), let entry = SyscallGroups.all.first(where: { $0.name == group }) else { return [] }
            return entry.members.reduce(into: Set<String>()) { result, member in
                if member.hasPrefix("@") { result.formUnion(members(member, seen: seen.union([group]))) } else { result.insert(member) }
            }
        }
        return members("@known", seen: [])
    }()

    /// What identifies the compiled filter: its inputs, and the generated table they are read against.
    public var cacheKey: String {
        "caps=\(String(capabilities.rawValue, radix: 16));filters=\(filters.joined(separator: "|"));keyrings=\(keyringsAbsent ? "absent" : "denied");sync=\(suppressSync ? "suppressed" : "real");groups=\(SyscallGroups.fingerprint)"
    }

    private static func words(_ filter: String) -> [Substring] {
        (filter.hasPrefix("~") ? filter.dropFirst() : Substring(filter)).split { $0 == " " || $0 == "," }
    }

    /// nspawn-seccomp.c's groups and calls, each with the capability that must be kept for it.
    static let allowList: [(capability: Int32?, name: String)] =
        [
            "@aio", "@basic-io", "@chown", "@default", "@file-system", "@io-event", "@ipc", "@mount", "@network-io",
            "@process", "@resources", "@setuid", "@signal", "@sync", "@timer",
            "brk", "capget", "capset", "copy_file_range", "fadvise64", "fadvise64_64", "flock", "get_mempolicy",
            "getcpu", "getpriority", "ioctl", "ioprio_get", "kcmp", "madvise", "mremap", "name_to_handle_at",
            "oldolduname", "olduname", "personality", "readahead", "readdir", "remap_file_pages",
            "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
            "sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
            "sched_yield", "seccomp", "sendfile", "sendfile64", "setdomainname", "setfsgid", "setfsgid32",
            "setfsuid", "setfsuid32", "sethostname", "setpgid", "setsid", "splice", "sysinfo", "tee", "umask",
            "uname", "vmsplice",
            // userfaultfd is left out on purpose: it widens kernel race windows and nothing in a machine needs it.
        ].map { (nil, $0) } + [
            (Int32(CAP_SYS_TIME), "@clock"), (Int32(CAP_SYS_MODULE), "@module"), (Int32(CAP_SYS_RAWIO), "@raw-io"),
            (Int32(CAP_IPC_LOCK), "@memlock"), (Int32(CAP_SYS_PACCT), "acct"), (Int32(CAP_SYS_PTRACE), "process_vm_readv"),
            (Int32(CAP_SYS_PTRACE), "process_vm_writev"), (Int32(CAP_SYS_PTRACE), "ptrace"), (Int32(CAP_SYS_BOOT), "reboot"),
            (Int32(CAP_SYSLOG), "syslog"), (Int32(CAP_SYS_TTY_CONFIG), "vhangup"),
        ]

    /// A group's system calls (recursively), or the call itself; empty for an unknown name.
    static func expand(_ name: String) -> Set<String> {
        if name.hasPrefix("@") {
            guard let group = SyscallGroups.all.first(where: { $0.name == name }) else { return [] }
            return group.members.reduce(into: Set<String>()) { $0.formUnion(expand($1)) }
        }
        return known.contains(name) ? [name] : []
    }

    /// What --system-call-filter=help prints: each group and its description.
    public static var helpText: String {
        SyscallGroups.all.map { "\($0.name)\n    # \($0.description)\n    " + $0.members.joined(separator: "\n    ") }.joined(separator: "\n\n")
    }
}
