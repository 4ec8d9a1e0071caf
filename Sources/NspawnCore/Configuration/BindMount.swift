/// --bind= and --bind-ro=: SRC[:DST[:OPTIONS]].
public struct BindMount: Equatable, Sendable {
    public var source: String
    public var destination: String
    public var readOnly: Bool
    /// rbind (default) also binds the mounts below the source; norbind only the source itself.
    public var recursive: Bool
    /// Under a user namespace the bind is idmapped like the root, so the host's root shows as the
    /// machine's root; noidmap shows the raw owners.
    public var idmapped: Bool

    public init(source: String, destination: String, readOnly: Bool, recursive: Bool = true, idmapped: Bool = true) {
        self.source = source
        self.destination = destination
        self.readOnly = readOnly
        self.recursive = recursive
        self.idmapped = idmapped
    }

    public static func parse(_ spec: String, readOnly: Bool) throws(UserError) -> BindMount {
        let option = readOnly ? "--bind-ro" : "--bind"
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count) else {
            throw UserError("Failed to parse \(option)= argument: \(spec)")
        }
        guard let source = PathName.normalizedAbsolute(parts[0]) else {
            throw UserError("Source path in \(option)=\(spec) must be absolute and may not contain \"..\".")
        }
        let rawDestination = parts.count >= 2 && !parts[1].isEmpty ? parts[1] : parts[0]
        guard let destination = PathName.normalizedAbsolute(rawDestination) else {
            throw UserError("Destination path in \(option)=\(spec) must be absolute and may not contain \"..\".")
        }
        guard destination != "/" else {
            throw UserError("Destination path in \(option)=\(spec) may not be the root directory.")
        }
        var bind = BindMount(source: source, destination: destination, readOnly: readOnly)
        if parts.count == 3 {
            for word in parts[2].split(separator: ",", omittingEmptySubsequences: true) {
                switch word {
                case "rbind": bind.recursive = true
                case "norbind": bind.recursive = false
                case "idmap": bind.idmapped = true
                case "noidmap": bind.idmapped = false
                default: throw UserError("Unknown mount option \"\(word)\" in \(option)=\(spec); known: rbind, norbind, idmap, noidmap.")
                }
            }
        }
        return bind
    }
}
