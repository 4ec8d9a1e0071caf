/// --resolv-conf=: the machine's /etc/resolv.conf, with systemd-nspawn 252's modes. auto (the
/// default) differs, as swift-nspawn(1) says: it never writes into the tree, and a machine with
/// swift-nspawn's addresses (-n, --network-zone) gets the host's name servers it can reach.
public enum ResolvConfMode: Equatable, Sendable {
    /// Where a copy or bind comes from.
    public enum Source: String, Equatable, Sendable, CaseIterable {
        case host, `static`, uplink, stub

        var path: String {
            switch self {
            case .host: "/etc/resolv.conf"
            case .static: "/usr/lib/systemd/resolv.conf"
            case .uplink: "/run/systemd/resolve/resolv.conf"
            case .stub: "/run/systemd/resolve/stub-resolv.conf"
            }
        }
    }

    case off, auto, delete
    /// Into the tree where its file is missing or a regular file.
    case copy(Source)
    /// Into the tree, over whatever is there.
    case replace(Source)
    /// Mounted over the tree's file, read-only.
    case bind(Source)

    static func parse(_ text: String) throws(UserError) -> ResolvConfMode {
        switch text {
        case "off": return .off
        case "auto": return .auto
        case "delete": return .delete
        default:
            let parts = text.split(separator: "-", maxSplits: 1).map(String.init)
            if parts.count == 2, let source = Source(rawValue: parts[1]) {
                switch parts[0] {
                case "copy": return .copy(source)
                case "replace": return .replace(source)
                case "bind": return .bind(source)
                default: break
                }
            }
            let known = ["off", "auto", "delete"] + ["copy", "replace", "bind"].flatMap { mode in Source.allCases.map { "\(mode)-\($0.rawValue)" } }
            throw UserError("Failed to parse --resolv-conf= value: \(text); known: \(known.joined(separator: ", ")).")
        }
    }
}

/// What the host and the tree have, looked at by the launcher for the decision below.
struct ResolvConfFacts: Equatable, Sendable {
    /// The host's files of each source that are regular files (followed), with their text.
    var hostFiles: [ResolvConfMode.Source: String] = [:]
    /// In the tree, with /etc resolved in it and resolv.conf itself not followed.
    var tree: PathEntry = .missing
    var treeHasEtc = true
}

/// What --resolv-conf= does for one machine, decided without a system call.
enum ResolvConfSetup {
    static let place = "/etc/resolv.conf"

    /// nil: nothing to do; `note` says why where the user asked for something that cannot be done.
    /// - Parameter ownAddresses: swift-nspawn addresses -n and zone machines (not the host's
    ///   systemd-networkd).
    static func decide(
        _ mode: ResolvConfMode, facts: ResolvConfFacts, network: NetworkConfiguration, ownAddresses: Bool = true, readOnly: Bool
    ) -> (setup: EtcFileSetup?, note: String?) {
        guard mode != .off else { return (nil, nil) }
        if let unusable = EtcFileSetup.unusable(place, treeHasEtc: facts.treeHasEtc, tree: facts.tree, subject: "resolv.conf") {
            return (nil, mode == .auto ? nil : unusable)
        }
        func source(_ source: ResolvConfMode.Source) -> String? { facts.hostFiles[source] == nil ? nil : source.path }
        func missing(_ source: ResolvConfMode.Source) -> String { "The host has no \(source.path); not updating the machine's resolv.conf." }
        func write(_ change: EtcFileWrite) -> (EtcFileSetup?, String?) {
            guard !readOnly else { return (nil, "--resolv-conf would write into a read-only tree; \(place) left as it is.") }
            return (.write(change), nil)
        }
        switch mode {
        case .off:
            return (nil, nil)
        case .delete:
            return facts.tree == .missing ? (nil, nil) : write(.delete)
        case .copy(let from):
            guard let path = source(from) else { return (nil, missing(from)) }
            if case .symlink = facts.tree {
                return (nil, "\(place) in the tree is a symbolic link; --resolv-conf=copy-\(from.rawValue) leaves it (replace-… would not).")
            }
            return write(.copy(path))
        case .replace(let from):
            guard let path = source(from) else { return (nil, missing(from)) }
            return write(.copy(path))
        case .bind(let from):
            guard let path = source(from) else { return (nil, missing(from)) }
            guard facts.tree != .missing || !readOnly else {
                return (nil, "The tree has no \(place) and is read-only; not updating the machine's resolv.conf.")
            }
            return (.mount(.hostFile(path), makeMountPoint: facts.tree == .missing), nil)
        case .auto:
            // Never written: a tree without the file keeps none, one whose own resolver
            // (systemd-resolved) owns it keeps it.
            guard facts.tree != .missing else { return (nil, nil) }
            if case .symlink(let target) = facts.tree, target.contains(text: "/run/systemd/resolve/") { return (nil, nil) }
            if !network.privateNetwork { return (source(.host).map { (.mount(.hostFile($0), makeMountPoint: false), nil) }) ?? (nil, nil) }
            guard network.addressed && ownAddresses else { return (nil, nil) }
            // The host's own file where the machine reaches all its servers; else the host's
            // resolver's upstream file (the host's file names a local stub); else the reachable ones.
            for candidate in [ResolvConfMode.Source.host, .uplink] {
                guard let text = facts.hostFiles[candidate] else { continue }
                let all = HostResolver.nameServerLines(text)
                if !all.isEmpty && all.count == HostResolver.nameServers(text).count { return (.mount(.hostFile(candidate.path), makeMountPoint: false), nil) }
            }
            let reachable = HostResolver.reachableNameServers(host: facts.hostFiles[.host], uplink: facts.hostFiles[.uplink])
            guard !reachable.isEmpty else { return (nil, nil) }
            let text =
                "# The host's name servers that this machine reaches through its gateway, from swift-nspawn (--resolv-conf=auto).\n"
                + reachable.map { "nameserver \($0)\n" }.joined()
            return (.mount(.contents(text), makeMountPoint: false), nil)
        }
    }
}
