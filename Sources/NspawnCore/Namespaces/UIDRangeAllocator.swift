#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Chooses and locks the host ID range of a machine, as systemd-nspawn's "pick" does: 64K-aligned,
/// inside [0x80000, 0x6FFF0000), clear of every ID in the host's passwd and group files, and held
/// by a lock that no other machine can take while this one runs.
public enum UIDRangeAllocator {
    public static let lowestBase: UInt32 = 0x0008_0000
    public static let highestBase: UInt32 = 0x6FFE_0000
    public static let lockDirectory = RuntimeDirectory.top + "/uid-range"

    /// The bases to try, in order: one derived from the machine's name (so a machine keeps its range
    /// from run to run), then random ones. Every range of `size` IDs from them lies inside one of the
    /// `mapped` ranges (what this process's user namespace maps: inside a machine, only its own IDs).
    public static func candidates<G: RandomNumberGenerator>(
        for name: String, count: Int, size: UInt32 = UIDRange.machineSize, within mapped: [UIDRange] = [UIDRange(base: 0, count: UInt32.max)],
        using generator: inout G
    ) -> [UInt32] {
        // The 64K-aligned bases that fit, as [first, last] windows.
        let slot = UInt64(UIDRange.machineSize)
        let windows: [(first: UInt64, last: UInt64)] = mapped.compactMap { range in
            let first = max(UInt64(lowestBase), (UInt64(range.base) + slot - 1) / slot * slot)
            let end = min(UInt64(highestBase) + slot, UInt64(range.base) + UInt64(range.count))
            guard end >= first + UInt64(size) else { return nil }
            return (first, (end - UInt64(size)) / slot * slot)
        }
        let slots = windows.reduce(0) { $0 + ($1.last - $1.first) / slot + 1 }
        guard slots > 0 else { return [] }
        func base(_ value: UInt64) -> UInt32 {
            var index = value % slots
            for window in windows {
                let inWindow = (window.last - window.first) / slot + 1
                if index < inWindow { return UInt32(window.first + index * slot) }
                index -= inWindow
            }
            return UInt32(windows[0].first)
        }
        let hash = StableHash.fnv1a(name.utf8)
        return [base(hash)] + (1..<max(count, 1)).map { _ in base(generator.next()) }
    }

    /// A range may be used when no user or group of the host lives in it.
    public static func isFree(_ range: UIDRange, hostIDs: Set<UInt32>) -> Bool {
        !hostIDs.contains { range.contains($0) }
    }

    /// IDs named in the host's /etc/passwd and /etc/group. A file that cannot be read is an error:
    /// an empty set would make every range look free.
    public static func hostIDs() throws -> Set<UInt32> {
        let passwd = UserDatabase.ids(try FileSystem.readFile("/etc/passwd"), fields: 7, numeric: [2, 3])
        let group = UserDatabase.ids(try FileSystem.readFile("/etc/group"), fields: 4, numeric: [2])
        return Set(passwd + group)
    }

    /// Ranges handed out in /etc/subuid and /etc/subgid (NAME:START:COUNT): taken, for our purpose.
    public static func subordinateRanges(_ text: String) -> [UIDRange] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":")
            // A line that runs past the ID space is nobody's range: skipped, as a malformed one.
            guard fields.count == 3, let start = UInt32(fields[1]), let count = UInt32(fields[2]), count > 0,
                UInt64(start) + UInt64(count) <= 1 << 32
            else { return nil }
            return UIDRange(base: start, count: count)
        }
    }

    /// The ranges that neither the files nor /etc/sub[ug]id claim; NSS is asked about them after.
    static func clearOfFiles(_ ranges: [UIDRange]) throws -> [UIDRange] {
        let ids = try hostIDs()
        let taken = ["/etc/subuid", "/etc/subgid"].flatMap { subordinateRanges((try? FileSystem.readFile($0)) ?? "") }
        return ranges.filter { range in isFree(range, hostIDs: ids) && !taken.contains { $0.overlaps(range) } }
    }

    /// Picks a free range of `size` IDs among those `mapped` here, and locks it.
    static func pick(for name: String, size: UInt32, within mapped: [UIDRange]) throws -> (UIDRange, UIDRangeLock) {
        // One getrandom(2) for the seed, not one per candidate: the bases need to be spread, not
        // unpredictable (whoever holds a range holds its lock).
        var system = SystemRandomNumberGenerator()
        var generator = SplitMix64(seed: system.next())
        let bases = candidates(for: name, count: 100, size: size, within: mapped, using: &generator)
        guard !bases.isEmpty else {
            throw UserError(
                "No range of \(size) IDs at or above \(lowestBase) is mapped in this user namespace (\(mapped.map(\.description).joined(separator: ", "))); use --private-users=no, or give this machine's host more IDs (--nesting=yes)."
            )
        }
        let ranges = try clearOfFiles(bases.map { UIDRange(base: $0, count: size) })
        let nss = NSSRangeProbe.filesSufficeHere ? nil : try NSSRangeProbe(ranges)
        defer { nss?.finish() }
        for range in ranges {
            guard try nss?.nextIsKnown() != true else { continue }
            if let lock = try UIDRangeLock.acquire(range) { return (range, lock) }
        }
        throw UserError("Failed to find a free UID range for machine \(name) after 100 tries.")
    }

    /// Locks a range the user asked for, refusing one that a host user or another machine holds.
    public static func claim(_ range: UIDRange) throws -> UIDRangeLock {
        let taken = UserError("UID range \(range) overlaps users, groups or subordinate ID ranges of the host. Refusing.")
        guard try !clearOfFiles([range]).isEmpty else { throw taken }
        if !NSSRangeProbe.filesSufficeHere {
            let nss = try NSSRangeProbe([range])
            defer { nss.finish() }
            guard try !nss.nextIsKnown() else { throw taken }
        }
        guard let lock = try UIDRangeLock.acquire(range) else {
            throw UserError("UID range \(range) is in use by another machine. Refusing.")
        }
        return lock
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a fast generator with a full 2⁶⁴ period, for spreading
/// candidate bases from one random seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
