/// A mount the user asked for: --bind, --bind-ro or --tmpfs.
public enum CustomMount: Equatable, Sendable {
    case bind(BindMount)
    case tmpfs(TmpfsMount)

    public var destination: String {
        switch self {
        case .bind(let b): b.destination
        case .tmpfs(let t): t.destination
        }
    }
}
