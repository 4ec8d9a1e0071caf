/// --timezone=: how the machine's /etc/localtime follows the host's, with systemd-nspawn 252's modes.
/// auto (the default) differs in one way, said in swift-nspawn(1): it never writes into the tree;
/// where systemd-nspawn would write a symlink or a copy there, it mounts one over the tree's file.
public enum TimezoneMode: String, Equatable, Sendable, CaseIterable {
    case off, copy, bind, symlink, delete, auto

    static func parse(_ text: String) throws(UserError) -> TimezoneMode {
        guard let mode = TimezoneMode(rawValue: text) else {
            throw UserError("Failed to parse --timezone= value: \(text); known: \(allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        return mode
    }
}

/// What the host and the tree have at /etc/localtime, looked at by the launcher for the decision below.
struct TimezoneFacts: Equatable, Sendable {
    var host: PathEntry = .missing
    /// The host's /etc/localtime, its link followed, is a regular file (not a dangling link, as on
    /// a host with no tzdata): only then can it be mounted or copied.
    var hostFileUsable = false
    /// In the tree, with /etc resolved in it and localtime itself not followed.
    var tree: PathEntry = .missing
    /// The tree has an /etc directory to hold it.
    var treeHasEtc = true
    /// The tree has the zone the host's symlink names, as a file under /usr/share/zoneinfo.
    var treeHasHostZone = false

    /// The zone a symlink names: Europe/Berlin for ../usr/share/zoneinfo/Europe/Berlin.
    static func zone(_ target: String) -> String? {
        for prefix in ["../usr/share/zoneinfo/", "/usr/share/zoneinfo/"] where target.hasPrefix(prefix) && target.count > prefix.count {
            return String(target.dropFirst(prefix.count))
        }
        return nil
    }

    var hostZone: String? {
        if case .symlink(let target) = host { return Self.zone(target) }
        return nil
    }
}

/// What --timezone= does for one machine, decided without a system call.
enum TimezoneSetup {
    /// nil: nothing to do; `note` says why where the user asked for something that cannot be done.
    static func decide(_ mode: TimezoneMode, facts: TimezoneFacts, readOnly: Bool) -> (setup: EtcFileSetup?, note: String?) {
        let place = "/etc/localtime"
        guard mode != .off else { return (nil, nil) }
        if let unusable = EtcFileSetup.unusable(place, treeHasEtc: facts.treeHasEtc, tree: facts.tree, subject: "time zone") {
            return (nil, mode == .auto ? nil : unusable)
        }
        let hostLink = facts.hostZone.map { "../usr/share/zoneinfo/\($0)" }
        // The tree's link already names the host's zone.
        let alreadyRight: Bool = {
            guard let zone = facts.hostZone, case .symlink(let target) = facts.tree else { return false }
            return TimezoneFacts.zone(target) == zone
        }()
        let noHostFile = "The host's \(place) is no time zone file; not updating the machine's time zone."
        func bindHostFile() -> (EtcFileSetup?, String?) {
            guard facts.hostFileUsable else { return (nil, noHostFile) }
            guard facts.tree != .missing || !readOnly else { return (nil, "The tree has no \(place) and is read-only; not updating the machine's time zone.") }
            return (.mount(.hostFile(place), makeMountPoint: facts.tree == .missing), nil)
        }
        func write(_ change: EtcFileWrite) -> (EtcFileSetup?, String?) {
            guard !readOnly else { return (nil, "--timezone=\(mode.rawValue) would write into a read-only tree; \(place) left as it is.") }
            return (.write(change), nil)
        }
        switch mode {
        case .off:
            return (nil, nil)
        case .auto:
            // Nothing written: where the tree has no /etc/localtime (or the host none), the machine keeps its own.
            guard facts.host != .missing, facts.tree != .missing, !alreadyRight else { return (nil, nil) }
            if let hostLink, facts.treeHasHostZone { return (.mount(.symlink(to: hostLink), makeMountPoint: false), nil) }
            return facts.hostFileUsable ? (.mount(.hostFile(place), makeMountPoint: false), nil) : (nil, nil)
        case .bind:
            return bindHostFile()
        case .symlink:
            guard let hostLink else { return (nil, "The host's \(place) does not point into /usr/share/zoneinfo/; not updating the machine's time zone.") }
            if alreadyRight { return (nil, nil) }
            // As systemd-nspawn: the host's file bound where the tree lacks the zone.
            return facts.treeHasHostZone ? write(.symlink(to: hostLink)) : bindHostFile()
        case .copy:
            guard facts.hostFileUsable else { return (nil, noHostFile) }
            return write(.copy(place))
        case .delete:
            return facts.tree == .missing ? (nil, nil) : write(.delete)
        }
    }
}

/// What an option does to one of the machine's /etc files (/etc/localtime, /etc/resolv.conf).
enum EtcFileSetup: Equatable, Sendable {
    /// Why nothing can be done at `place` (the tree has no /etc, or a directory there), as a
    /// line about the machine's `subject`; nil when something can.
    static func unusable(_ place: String, treeHasEtc: Bool, tree: PathEntry, subject: String) -> String? {
        if !treeHasEtc { return "The tree has no /etc directory; not updating the machine's \(subject)." }
        return tree == .directory ? "\(place) in the tree is a directory; not updating the machine's \(subject)." : nil
    }

    /// Mounted over the tree's file (the link itself, never what it points to), read-only: the
    /// tree is not written, except for an empty mount point where a bind mode needs one.
    case mount(EtcFileSource, makeMountPoint: Bool)
    /// Written into the tree, as the user asked (copy, symlink, delete), and said.
    case write(EtcFileWrite)
}

/// What is mounted over one of the machine's /etc files.
enum EtcFileSource: Equatable, Sendable {
    /// A file of the host, followed to its file.
    case hostFile(String)
    /// A symlink with this text (../usr/share/zoneinfo/ZONE, the zone's file in the tree).
    case symlink(to: String)
    /// A file with these contents, made for the machine.
    case contents(String)
}

/// What is written into the tree for one of its /etc files.
enum EtcFileWrite: Equatable, Sendable {
    /// A copy of this host file.
    case copy(String)
    case symlink(to: String)
    case delete
}
