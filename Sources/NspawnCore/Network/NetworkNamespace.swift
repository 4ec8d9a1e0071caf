#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Stepping into a network namespace and back: for --network-namespace-path, whose namespace the
/// machine's PID 1 is born in (the supervisor steps into it just for the clone: PID 1, in a user
/// namespace of its own, could not join a namespace the host's root owns), and for the sockets the
/// supervisor keeps in the machine's namespace.
enum NetworkNamespace {
    static func within<T>(joining namespace: NetworkPlan.Namespace, _ body: () throws -> T) throws -> T {
        guard case .joined(let path) = namespace else { return try body() }
        let target = try FileSystem.open(path, O_RDONLY)
        defer { target.close() }
        do {
            return try within(target, body)
        } catch let error as SyscallError where error.syscall == "setns" && error.errno.rawValue == EINVAL {
            throw UserError("Path \(path) doesn't refer to a network namespace.")
        }
    }

    /// The network namespace we run in.
    static func current() throws(SyscallError) -> OwnedFD { try FileSystem.open("/proc/self/ns/net", O_RDONLY) }

    /// Runs `body` in the network namespace `target` refers to, and comes back whatever happens
    /// (a socket made there stays there).
    static func within<T>(_ target: OwnedFD, _ body: () throws -> T) throws -> T {
        try NamespaceStep.returning(.network, name: "net") {
            try sys("setns", path: "net") { nsp_setns(target.raw, NSP_CLONE_NEWNET) }
            return try body()
        }
    }
}
