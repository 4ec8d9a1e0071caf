#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import SystemPackage

/// --network-namespace-path: the machine's PID 1 is born in that namespace. The supervisor steps
/// into it just for the clone (PID 1, in a user namespace of its own, could not join a namespace
/// the host's root owns) and steps back.
enum NetworkNamespace {
    static func within<T>(joining namespace: NetworkPlan.Namespace, _ body: () throws -> T) throws -> T {
        guard case .joined(let path) = namespace else { return try body() }
        let target = OwnedFD(try sys("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) })
        defer { target.close() }
        let home = OwnedFD(try sys("open", path: "/proc/self/ns/net") { open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC) })
        defer { home.close() }
        guard nsp_setns(target.raw, NSP_CLONE_NEWNET) == 0 else {
            if errno == EINVAL { throw UserError("Path \(path) doesn't refer to a network namespace.") }
            throw SyscallError.last("setns", path: path)
        }
        defer {
            if nsp_setns(home.raw, NSP_CLONE_NEWNET) != 0 { fatalError("setns(home network namespace): \(Errno(rawValue: errno).message)") }
        }
        return try body()
    }
}
