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
