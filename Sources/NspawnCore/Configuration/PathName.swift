/// Lexical path handling for paths given on the command line. Nothing here touches the file system.
public enum PathName {
    /// Collapses "//", "/./" and a trailing "/"; nil for a relative path or one with "..".
    public static func normalizedAbsolute(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." { return nil }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}
