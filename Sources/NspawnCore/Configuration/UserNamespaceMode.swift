/// --private-users=.
public enum UserNamespaceMode: Equatable, Sendable {
    /// No user namespace: the machine's root is the host's root.
    case no
    /// A free 64K range, chosen per machine and locked (systemd-nspawn's "pick").
    case pick
    /// The range the tree is owned by (the root directory's owner, 64K-aligned).
    case fromTree
    /// A user namespace that maps 0…65535 onto themselves.
    case identity
    case fixed(UIDRange)

    public static func parse(_ value: String) throws(UserError) -> UserNamespaceMode {
        switch value {
        case "no", "false", "0", "off": return .no
        case "pick": return .pick
        case "yes", "true", "1", "on": return .fromTree
        case "identity": return .identity
        default: break
        }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let base = UInt32(parts[0]) else {
            throw UserError("Failed to parse --private-users= value: \(value)")
        }
        var count = UIDRange.machineSize
        if parts.count == 2 {
            guard let parsed = UInt32(parts[1]), parsed > 0 else {
                throw UserError("Failed to parse UID range in --private-users=\(value)")
            }
            count = parsed
        }
        // A machine owns whole aligned 64K slots: that is what makes the per-slot locks detect
        // overlaps between machines, and what keeps a machine's files apart from its neighbours'.
        guard base % UIDRange.machineSize == 0 else {
            throw UserError("UID base \(base) in --private-users= is not a multiple of 65536.")
        }
        guard count <= UIDRange.machineSize || count % UIDRange.machineSize == 0 else {
            throw UserError("UID range \(count) in --private-users= is larger than 65536 and not a multiple of it.")
        }
        guard base > 0 else {
            throw UserError("UID range \(value) in --private-users= overlaps the host's root; use --private-users=identity to mean that.")
        }
        guard UInt64(base) + UInt64(count) <= UInt64(UInt32.max) else {
            throw UserError("UID range \(value) in --private-users= exceeds the UID space.")
        }
        return .fixed(UIDRange(base: base, count: count))
    }
}
