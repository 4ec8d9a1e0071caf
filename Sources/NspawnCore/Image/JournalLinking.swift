#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

extension JournalFacts {
    /// Looks at the host's /var/log/journal and, in the tree, at the same path with no symlink
    /// followed (a symlink of the image's must never aim the host's link, or a mount, elsewhere).
    static func probe(_ image: MachineImage, machineID: MachineID) -> JournalFacts {
        var facts = JournalFacts()
        let entry = "\(JournalLink.directory)/\(machineID.hexString)"
        facts.hostJournal = PathEntry.look(JournalLink.directory) == .directory
        facts.hostEntry = PathEntry.look(entry)
        if let tree = try? image.openRoot() {
            func isDirectory(_ relative: String) -> Bool {
                guard let fd = try? PathResolution.open(relative, in: tree.raw, flags: NSP_O_PATH, resolve: .noSymlinks) else { return false }
                return (try? FileSystem.status(fd, path: relative)).map { FileSystem.isDirectory($0.st_mode) } ?? false
            }
            facts.treeJournal = isDirectory("var/log/journal")
            facts.treeMachineDirectory = isDirectory(String(entry.dropFirst()))
        }
        return facts
    }
}

extension JournalLink {
    /// What the decision asks of the host and the tree before the machine starts: the host's
    /// directory, or the machine's directory in the tree (said, since it writes into the tree) and
    /// the host's symlink to it. Both stay after the machine, as with systemd-nspawn, so that
    /// journalctl finds the journal later too.
    func prepare(_ image: MachineImage, quiet: Bool) throws {
        let treePath = image.path
        if makeHostDirectory { try sys("mkdir", path: path) { mkdir(path, 0o755) } }
        guard action == .linkToTree else {
            // The bind's mount point is made with the machine's other mount points.
            if makeTreeDirectory && !quiet { printError("Making \(path) in the tree \(treePath) for --link-journal.") }
            return
        }
        if makeTreeDirectory {
            let tree = try image.openRoot()
            for relative in ["var", "var/log", "var/log/journal", String(path.dropFirst())] {
                if (try? PathResolution.open(relative, in: tree.raw, flags: NSP_O_PATH, resolve: .noSymlinks)) != nil { continue }
                let slash = relative.lastIndex(of: "/")
                let parent = try PathResolution.open(
                    slash.map { String(relative[..<$0]) } ?? "", in: tree.raw, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
                let name = slash.map { String(relative[relative.index(after: $0)...]) } ?? relative
                try sys("mkdir", path: "\(treePath)/\(relative)") { mkdirat(parent.raw, name, 0o755) }
            }
            if !quiet { printError("Making \(path) in the tree \(treePath) for --link-journal.") }
        }
        let target = "\(treePath)\(path)"
        // Already the link to this tree: the decision let only that one through.
        if let st = try? FileSystem.stat(path, followSymlinks: false), st.st_mode & S_IFMT == S_IFLNK { return }
        try sys("symlink", path: path) { symlink(target, path) }
    }
}
