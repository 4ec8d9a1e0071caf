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

    /// The date and time now as RFC 3339 in UTC with nanoseconds (2026-11-30T08:40:00.123456789Z),
    /// as runc writes it in states and logs.
    static func rfc3339Now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var seconds = ts.tv_sec
        var fields = tm()
        gmtime_r(&seconds, &fields)
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(Int(fields.tm_year) + 1900, 4))-\(pad(Int(fields.tm_mon) + 1, 2))-\(pad(Int(fields.tm_mday), 2))T"
            + "\(pad(Int(fields.tm_hour), 2)):\(pad(Int(fields.tm_min), 2)):\(pad(Int(fields.tm_sec), 2)).\(pad(Int(ts.tv_nsec), 9))Z"
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
