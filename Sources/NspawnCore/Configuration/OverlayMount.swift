/// --overlay= and --overlay-ro=, with systemd-nspawn 252's syntax: colon-separated paths (a
/// backslash escapes a colon or itself), the last one the mount point in the machine and the
/// others the layers from the lowest up; with only two, the second is both the highest layer and
/// the mount point. "+" before a layer makes it a path in the tree. With --overlay the highest
/// layer takes the writes; an empty one means a throw-away one.
public struct OverlayMount: Equatable, Sendable {
    public enum Layer: Equatable, Sendable {
        /// A directory of the host.
        case host(String)
        /// A directory of the tree (written "+/path"), found as the machine resolves it.
        case tree(String)
        /// A tmpfs of swift-nspawn's own mount namespace: gone with the machine.
        case temporary
    }

    /// From the lowest up.
    public var lowers: [Layer]
    /// nil for --overlay-ro.
    public var upper: Layer?
    public var destination: String

    static func parse(_ text: String, readOnly: Bool) throws(UserError) -> OverlayMount {
        let option = readOnly ? "--overlay-ro" : "--overlay"
        var parts: [String] = [""]
        var escaped = false
        for character in text {
            if escaped {
                parts[parts.count - 1].append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":" {
                parts.append("")
            } else {
                parts[parts.count - 1].append(character)
            }
        }
        guard parts.count >= 2 else { throw UserError("\(option)= needs at least two colon-separated paths: \(text)") }
        var sources = parts.count == 2 ? parts : Array(parts.dropLast())
        let place = parts.count == 2 ? String(parts[1].drop { $0 == "+" }) : parts[parts.count - 1]
        guard let destination = PathName.normalizedAbsolute(place), destination != "/" else {
            throw UserError("\(option)= mount point must be an absolute path, not the root: \(text)")
        }
        func layer(_ source: String, highest: Bool) throws(UserError) -> Layer {
            if source.isEmpty {
                guard highest && !readOnly else { throw UserError("\(option)= may leave only the highest layer of a writable overlay empty: \(text)") }
                return .temporary
            }
            let inTree = source.hasPrefix("+")
            guard let path = PathName.normalizedAbsolute(String(source.dropFirst(inTree ? 1 : 0))) else {
                throw UserError("\(option)= layers must be absolute paths without \"..\": \(source)")
            }
            if inTree && highest && !readOnly {
                throw UserError("\(option)= takes the layer that is written on the host, or empty for a throw-away one, not in the tree: \(source)")
            }
            return inTree ? .tree(path) : .host(path)
        }
        let upper = readOnly ? nil : try layer(sources.removeLast(), highest: true)
        // At least one lower layer, and two without an upper one, as the kernel's overlayfs wants:
        // two paths or more make that so.
        let lowers = try sources.map { source throws(UserError) in try layer(source, highest: false) }
        return OverlayMount(lowers: lowers, upper: upper, destination: destination)
    }

    /// Where the kernel keeps its work for a host upper layer: beside it, removed when the machine
    /// ends (and by the next run after a kill).
    static func workDirectory(for upper: String) -> String {
        let slash = upper.lastIndex(of: "/") ?? upper.startIndex
        let parent = slash == upper.startIndex ? "" : String(upper[..<slash])
        return "\(parent)/.#\(upper[upper.index(after: slash)...]).swift-nspawn-work"
    }
}
