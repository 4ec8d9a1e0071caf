#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import SystemPackage

/// Stepping out of one of our namespaces and back: the supervisor goes into a namespace only for
/// what must be made there (the machine's PID 1 born in a joined network, PID, IPC or UTS
/// namespace, or in a new time namespace; a socket of the machine's network namespace).
enum NamespaceStep {
    /// Runs `body`, which moves us into another namespace of `kind` (setns, unshare), and comes back
    /// to the one we are in now (`name`: its entry in /proc/self/ns) whatever happens.
    static func returning<T>(_ kind: NamespaceSet, name: String, _ body: () throws -> T) throws -> T {
        let home = try FileSystem.open("/proc/self/ns/\(name)", O_RDONLY)
        defer {
            // Failing that would leave us, and every child we make after, in the wrong namespace.
            if nsp_setns(home.raw, Int32(truncatingIfNeeded: kind.rawValue)) != 0 {
                fatalError("setns(our \(name) namespace): \(Errno(rawValue: errno).message)")
            }
        }
        return try body()
    }
}
