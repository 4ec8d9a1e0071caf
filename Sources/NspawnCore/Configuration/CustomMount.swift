/// A mount the user asked for: --bind, --bind-ro, --tmpfs, --overlay or --overlay-ro.
public enum CustomMount: Equatable, Sendable {
    case bind(BindMount)
    case tmpfs(TmpfsMount)
    case overlay(OverlayMount)

    public var destination: String {
        switch self {
        case .bind(let b): b.destination
        case .tmpfs(let t): t.destination
        case .overlay(let o): o.destination
        }
    }
}
