/// How a bind's owners are shown in the machine (systemd-nspawn's bind options).
public enum BindOwnership: String, Equatable, Sendable {
    /// noidmap (the default, as with systemd-nspawn): raw owners; the machine's root acts on the
    /// source as an unprivileged user of the host.
    case raw = "noidmap"
    /// idmap: mapped as the tree is, so the host's root shows as (and is written as) the machine's root.
    case machine = "idmap"
    /// rootidmap: the owner of the source shows as the machine's root, and what that root creates
    /// there belongs to the source's owner; every other owner shows as nobody.
    case sourceOwnerAsRoot = "rootidmap"
    /// owneridmap: the owner of the source shows as the owner of the destination in the machine.
    case sourceOwnerAsTargetOwner = "owneridmap"
}

/// --bind= and --bind-ro=: SRC[:DST[:OPTIONS]].
public struct BindMount: Equatable, Sendable {
    public var source: String
    public var destination: String
    public var readOnly: Bool
    /// rbind (default) also binds the mounts below the source; norbind only the source itself.
    public var recursive: Bool
    public var ownership: BindOwnership
    /// nosuid and noexec (swift-nspawn's options: systemd-nspawn 252 has neither; an OCI bundle's
    /// binds ask for them). Every bind is nodev.
    public var noSUID = false
    public var noExec = false

    public init(source: String, destination: String, readOnly: Bool, recursive: Bool = true, ownership: BindOwnership = .raw) {
        self.source = source
        self.destination = destination
        self.readOnly = readOnly
        self.recursive = recursive
        self.ownership = ownership
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
                case "nosuid": bind.noSUID = true
                case "noexec": bind.noExec = true
                default:
                    guard let ownership = BindOwnership(rawValue: String(word)) else {
                        throw UserError(
                            "Unknown mount option \"\(word)\" in \(option)=\(spec); known: rbind, norbind, noidmap, idmap, rootidmap, owneridmap, nosuid, noexec."
                        )
                    }
                    bind.ownership = ownership
                }
            }
        }
        return bind
    }
}
