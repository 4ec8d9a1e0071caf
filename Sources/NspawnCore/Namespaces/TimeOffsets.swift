#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// An OCI bundle's time namespace (time_namespaces(7)): PID 1 is born in a new one whose
/// CLOCK_MONOTONIC and CLOCK_BOOTTIME are ahead (or behind) by linux.timeOffsets. The supervisor
/// unshares one for its children, writes the offsets (possible only while nothing lives in it),
/// clones PID 1 and goes back to its own, so that no later child of ours lands in it.
struct TimeOffsets: Equatable, Sendable {
    var monotonic: (seconds: Int64, nanoseconds: Int64) = (0, 0)
    var boottime: (seconds: Int64, nanoseconds: Int64) = (0, 0)

    static func == (a: TimeOffsets, b: TimeOffsets) -> Bool { a.monotonic == b.monotonic && a.boottime == b.boottime }

    /// What /proc/PID/timens_offsets takes; also how the settings carry it.
    var text: String { "monotonic \(monotonic.seconds) \(monotonic.nanoseconds)\nboottime \(boottime.seconds) \(boottime.nanoseconds)" }

    init(monotonic: (seconds: Int64, nanoseconds: Int64) = (0, 0), boottime: (seconds: Int64, nanoseconds: Int64) = (0, 0)) {
        (self.monotonic, self.boottime) = (monotonic, boottime)
    }

    init?(parsing text: String) {
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, let seconds = Int64(fields[1]), let nanoseconds = Int64(fields[2]), (0..<1_000_000_000).contains(nanoseconds) else {
                return nil
            }
            switch fields[0] {
            case "monotonic": monotonic = (seconds, nanoseconds)
            case "boottime": boottime = (seconds, nanoseconds)
            default: return nil
            }
        }
    }

    static func within<T>(_ offsets: TimeOffsets?, _ body: () throws -> T) throws -> T {
        guard let offsets else { return try body() }
        return try NamespaceStep.returning(.time, name: "time") {
            try sys("unshare", path: "time") { nsp_unshare(Int32(NamespaceSet.time.rawValue)) }
            try FileSystem.write(offsets.text, to: "/proc/self/timens_offsets")
            return try body()
        }
    }
}
