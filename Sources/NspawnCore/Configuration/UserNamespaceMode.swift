/// A range of host UIDs (and the same GIDs) that a machine's IDs 0…count-1 map onto.
public struct UIDRange: Equatable, Sendable, CustomStringConvertible {
    public static let machineSize: UInt32 = 0x10000

    public var base: UInt32
    public var count: UInt32

    public init(base: UInt32, count: UInt32 = UIDRange.machineSize) {
        self.base = base
        self.count = count
    }

    public var last: UInt32 { base + (count - 1) }
    public func contains(_ id: UInt32) -> Bool { id >= base && id <= last }
    public func overlaps(_ other: UIDRange) -> Bool { base <= other.last && other.base <= last }

    /// The line written to /proc/PID/uid_map and gid_map.
    public var mapLine: String { "0 \(base) \(count)\n" }
    public var description: String { "\(base):\(count)" }
}

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

/// --private-users-ownership=. There is no "chown": swift-nspawn never writes into the tree.
public enum OwnershipMode: String, Equatable, Sendable, CaseIterable {
    /// Idmapped mount; refuse to start where the file system cannot do it.
    case map
    /// Idmapped mount where possible, otherwise the raw owners (with a warning).
    case auto
    /// The raw owners, unmapped (files show as nobody inside).
    case off

    public static func parse(_ value: String) throws(UserError) -> OwnershipMode {
        if value == "chown" {
            throw UserError("--private-users-ownership=chown is not supported: swift-nspawn never rewrites the tree's owners; use map.")
        }
        guard let mode = OwnershipMode(rawValue: value) else {
            throw UserError("Failed to parse --private-users-ownership= value: \(value)")
        }
        return mode
    }
}
