#if canImport(Glibc)
    import Glibc
#endif

enum Clock {
    /// CLOCK_MONOTONIC in nanoseconds: for timeouts and durations, never for dates.
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// FNV-1a, 64 bits: a stable hash for names and cache keys (not for anything an attacker chooses
/// to collide: the inputs it is used on are our own).
enum StableHash {
    static func fnv1a<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }
}

/// A wait(2) status as the shell reports it: the exit code, or 128 + the signal that killed it.
func shellStatus(_ status: Int32) -> Int32 {
    status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}
