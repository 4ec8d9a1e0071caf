#if canImport(Glibc)
    import Glibc
#endif

/// Work the supervisor does while its children are busy and nothing waits for it yet: run at the
/// lowest priority (nice 19), so that on a host with fewer CPUs than busy processes the scheduler
/// gives the CPUs to the children first, then back at the supervisor's own nice value.
enum BackgroundPriority {
    static func run<T>(_ body: () throws -> T) rethrows -> T {
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        // getpriority returns -1 both for nice -1 and for an error: errno tells them apart.
        errno = 0
        let own = getpriority(which, 0)
        guard errno == 0, setpriority(which, 0, 19) == 0 else { return try body() }
        defer { _ = setpriority(which, 0, own) }
        return try body()
    }
}
