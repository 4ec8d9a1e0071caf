import CCap

/// A set of Linux capabilities, as a bit mask by capability number.
public struct CapabilitySet: OptionSet, Equatable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(_ numbers: [Int32]) {
        rawValue = numbers.reduce(0) { $0 | (1 << UInt64($1)) }
    }

    /// Every capability this libcap knows by name (CAP_CHOWN … CAP_CHECKPOINT_RESTORE).
    public static let all = CapabilitySet(Array(0...Int32(CAP_LAST_CAP)))

    /// systemd-nspawn's bounding set (reference §6); a private network adds CAP_NET_ADMIN.
    public static let nspawnDefault = CapabilitySet(
        [
            CAP_AUDIT_CONTROL, CAP_AUDIT_WRITE, CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
            CAP_FSETID, CAP_IPC_OWNER, CAP_KILL, CAP_LEASE, CAP_LINUX_IMMUTABLE, CAP_MKNOD, CAP_NET_BIND_SERVICE,
            CAP_NET_BROADCAST, CAP_NET_RAW, CAP_SETFCAP, CAP_SETGID, CAP_SETPCAP, CAP_SETUID, CAP_SYS_ADMIN,
            CAP_SYS_BOOT, CAP_SYS_CHROOT, CAP_SYS_NICE, CAP_SYS_PTRACE, CAP_SYS_RESOURCE, CAP_SYS_TTY_CONFIG,
        ].map { Int32($0) })

    public var numbers: [Int32] { (0..<64).filter { rawValue & (1 << UInt64($0)) != 0 } }

    public func contains(number: Int32) -> Bool { rawValue & (1 << UInt64(number)) != 0 }

    /// "cap_sys_admin" (libcap's spelling), or the number for a capability libcap does not know.
    public static func name(of number: Int32) -> String {
        guard let raw = cap_to_name(cap_value_t(number)) else { return "\(number)" }
        defer { cap_free(raw) }
        return String(cString: raw)
    }

    /// "CAP_SYS_ADMIN,CAP_NET_RAW", "sys_admin", or "all"; an unknown name is an error.
    public static func parse(_ list: String, option: String) throws(UserError) -> CapabilitySet {
        var set = CapabilitySet()
        for word in list.split(separator: ",", omittingEmptySubsequences: true) {
            if word == "all" {
                set.formUnion(.all)
                continue
            }
            var value: cap_value_t = 0
            let name = word.lowercased().hasPrefix("cap_") ? word.lowercased() : "cap_" + word.lowercased()
            guard cap_from_name(name, &value) == 0, value >= 0, value <= CAP_LAST_CAP else {
                throw UserError("Failed to parse capability in \(option)=: \(word) (see \(option)=help).")
            }
            set.insert(CapabilitySet([Int32(value)]))
        }
        return set
    }

    /// What --capability=help prints: one name a line, as systemd's does.
    public static var helpText: String {
        all.numbers.map { name(of: $0).uppercased() }.joined(separator: "\n")
    }

    public var description: String { numbers.map { Self.name(of: $0).uppercased() }.joined(separator: ",") }
}
