/// --link-journal=: whether and how the machine's journal (/var/log/journal/MACHINE-ID) is seen from
/// the host, as systemd-nspawn 252 does it, so that `journalctl -m` and `journalctl -M` find it.
public enum LinkJournalMode: String, Equatable, Sendable, CaseIterable {
    case no, auto, host, guest
    case tryHost = "try-host"
    case tryGuest = "try-guest"

    static func parse(_ text: String) throws(UserError) -> LinkJournalMode {
        guard let mode = LinkJournalMode(rawValue: text) else {
            throw UserError("Failed to parse --link-journal= value: \(text); known: \(allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        return mode
    }
}

/// What the host and the tree have, looked at by the launcher for the decision below.
struct JournalFacts: Equatable, Sendable {
    /// The host keeps a persistent journal: /var/log/journal is a directory.
    var hostJournal = false
    /// /var/log/journal/MACHINE-ID on the host.
    var hostEntry: PathEntry = .missing
    /// /var/log/journal in the tree (the machine keeps its journal on disk).
    var treeJournal = false
    /// /var/log/journal/MACHINE-ID in the tree.
    var treeMachineDirectory = false
}

/// What --link-journal= does for one machine, decided without a system call.
struct JournalLink: Equatable, Sendable {
    enum Action: Equatable, Sendable {
        /// The host's directory bound into the machine at the same path (host, try-host, auto).
        case bindHostDirectory
        /// A symlink on the host to the machine's directory in the tree (guest, try-guest).
        case linkToTree
    }

    var action: Action
    /// /var/log/journal/MACHINE-ID: on the host, and in the machine.
    var path: String
    /// The host's directory is to be made (host, try-host).
    var makeHostDirectory: Bool
    /// The machine's directory is to be made in the tree (for the link, or as the bind's mount
    /// point): swift-nspawn writes into it then, and says so.
    var makeTreeDirectory: Bool

    static let directory = "/var/log/journal"

    /// nil: no linking. Throws for host and guest when they cannot be done.
    static func decide(_ mode: LinkJournalMode, machineID: MachineID?, treePath: String, facts: JournalFacts) throws(UserError) -> JournalLink? {
        if mode == .no { return nil }
        let strict = mode == .host || mode == .guest
        guard let machineID else {
            guard !strict else { throw UserError("--link-journal=\(mode.rawValue) needs the tree's own /etc/machine-id.") }
            return nil
        }
        let path = "\(directory)/\(machineID.hexString)"
        guard facts.hostJournal else {
            guard !strict else { throw UserError("--link-journal=\(mode.rawValue): the host keeps no journal in \(directory).") }
            return nil
        }
        switch mode {
        case .auto:
            // As systemd-nspawn: the host's directory for this machine, where one exists.
            return facts.hostEntry == .directory
                ? JournalLink(action: .bindHostDirectory, path: path, makeHostDirectory: false, makeTreeDirectory: !facts.treeMachineDirectory) : nil
        case .host, .tryHost:
            guard facts.hostEntry == .directory || facts.hostEntry == .missing else {
                guard !strict else { throw UserError("--link-journal=host: \(path) on the host is not a directory. Refusing.") }
                return nil
            }
            return JournalLink(
                action: .bindHostDirectory, path: path, makeHostDirectory: facts.hostEntry == .missing, makeTreeDirectory: !facts.treeMachineDirectory)
        case .guest, .tryGuest:
            let target = "\(treePath)\(path)"
            switch facts.hostEntry {
            case .missing: break
            case .symlink(let to) where to == target: break
            default:
                guard !strict else { throw UserError("--link-journal=guest: \(path) already exists on the host. Refusing.") }
                return nil
            }
            guard facts.treeMachineDirectory || facts.treeJournal || strict else { return nil }
            return JournalLink(
                action: .linkToTree, path: path, makeHostDirectory: false, makeTreeDirectory: !facts.treeMachineDirectory)
        case .no:
            return nil
        }
    }
}
