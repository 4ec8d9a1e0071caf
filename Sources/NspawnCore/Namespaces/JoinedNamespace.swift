#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// A PID, IPC or UTS namespace an OCI bundle names by path (a Kubernetes pod's, shared by its
/// containers): the machine's PID 1 is born in it instead of one of its own. The supervisor steps
/// into it just for the clone, as for --network-namespace-path: PID 1, in a user namespace of its
/// own, could not join a namespace the host's root owns. (Stepping into a PID namespace places
/// only the children made after it there: the machine's "PID 1" is then one process among the
/// pod's.)
struct JoinedNamespace: Equatable, Sendable {
    enum Kind: String, Sendable {
        case pid, ipc, uts

        var namespace: NamespaceSet {
            switch self {
            case .pid: .pid
            case .ipc: .ipc
            case .uts: .uts
            }
        }
        var cloneFlag: Int32 { Int32(truncatingIfNeeded: namespace.rawValue) }
    }

    var kind: Kind
    var path: String

    /// "KIND:PATH", as the settings carry it.
    init?(parsing text: String) {
        guard let colon = text.firstIndex(of: ":"), let kind = Kind(rawValue: String(text[..<colon])) else { return nil }
        self.kind = kind
        path = String(text[text.index(after: colon)...])
        guard path.hasPrefix("/") else { return nil }
    }

    var text: String { "\(kind.rawValue):\(path)" }

    /// Runs `body` in the namespaces, and comes back to ours whatever happens.
    static func within<T>(joining namespaces: [JoinedNamespace], _ body: () throws -> T) throws -> T {
        guard let first = namespaces.first else { return try body() }
        return try NamespaceStep.returning(first.kind.namespace, name: first.kind.rawValue) {
            let target = try FileSystem.open(first.path, O_RDONLY)
            guard nsp_setns(target.raw, first.kind.cloneFlag) == 0 else {
                if errno == EINVAL { throw UserError("Path \(first.path) doesn't refer to a \(first.kind.rawValue) namespace that may be joined from here.") }
                throw SyscallError.last("setns", path: first.path)
            }
            return try within(joining: Array(namespaces.dropFirst()), body)
        }
    }
}
