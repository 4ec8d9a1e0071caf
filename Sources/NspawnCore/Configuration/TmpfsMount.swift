/// --tmpfs=PATH[:OPTIONS]: an empty tmpfs, owned by the machine's root, mode 0755 unless the options say.
public struct TmpfsMount: Equatable, Sendable {
    public var destination: String
    public var options: String

    public static func parse(_ spec: String) throws(UserError) -> TmpfsMount {
        let path: Substring
        let options: Substring
        if let colon = spec.firstIndex(of: ":") {
            path = spec[..<colon]
            options = spec[spec.index(after: colon)...]
        } else {
            path = Substring(spec)
            options = ""
        }
        guard let destination = PathName.normalizedAbsolute(String(path)), destination != "/" else {
            throw UserError("Path in --tmpfs=\(spec) must be absolute, not the root, and may not contain \"..\".")
        }
        let words = options.split(separator: ",").map(String.init)
        // "uid=" and "gid=" would escape the ID shift that makes the tmpfs the machine root's.
        if let bad = words.first(where: { $0.hasPrefix("uid=") || $0.hasPrefix("gid=") }) {
            throw UserError("Option \"\(bad)\" in --tmpfs=\(spec) is not allowed: the tmpfs belongs to the machine's root.")
        }
        let all = words.contains { $0.hasPrefix("mode=") } ? words : ["mode=0755"] + words
        return TmpfsMount(destination: destination, options: all.joined(separator: ","))
    }
}
