/// --private-users-ownership=. There is no "chown": swift-nspawn never writes into the tree.
public enum OwnershipMode: String, Equatable, Sendable, CaseIterable {
    /// Idmapped mount; refuse to start where the file system cannot do it.
    case map
    /// Idmapped mount where possible, otherwise the raw owners (with a warning).
    case auto
    /// The raw owners, unmapped (files show as nobody inside).
    case off

    public static func parse(_ value: String) throws(UserError) -> OwnershipMode {
        if value == "chown" {
            throw UserError("--private-users-ownership=chown is not supported: swift-nspawn never rewrites the tree's owners; use map.")
        }
        guard let mode = OwnershipMode(rawValue: value) else {
            throw UserError("Failed to parse --private-users-ownership= value: \(value)")
        }
        return mode
    }
}
