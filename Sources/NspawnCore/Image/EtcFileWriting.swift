#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

extension TimezoneFacts {
    /// Looks at the host's /etc/localtime and at the tree's: its /etc found as the machine will
    /// resolve it (in root), localtime itself not followed, as systemd-nspawn does.
    static func probe(_ image: MachineImage) -> TimezoneFacts {
        var facts = TimezoneFacts()
        facts.host = PathEntry.look("/etc/localtime")
        facts.hostFileUsable = (try? FileSystem.stat("/etc/localtime")).map { $0.st_mode & S_IFMT == S_IFREG } ?? false
        guard let (tree, etc) = image.openEtc() else {
            facts.treeHasEtc = false
            return facts
        }
        facts.tree = PathEntry.look("localtime", in: etc.raw)
        if let zone = facts.hostZone, let file = try? PathResolution.open("usr/share/zoneinfo/\(zone)", in: tree.raw, flags: NSP_O_PATH, resolve: .inRoot) {
            facts.treeHasHostZone = (try? FileSystem.status(file, path: zone)).map { $0.st_mode & S_IFMT == S_IFREG } ?? false
        }
        return facts
    }
}

extension ResolvConfFacts {
    /// Looks at the host's resolv.conf files (followed: only regular files count) and at the
    /// tree's, as TimezoneFacts.probe does.
    static func probe(_ image: MachineImage) -> ResolvConfFacts {
        var facts = ResolvConfFacts()
        for source in ResolvConfMode.Source.allCases {
            guard (try? FileSystem.stat(source.path)).map({ $0.st_mode & S_IFMT == S_IFREG }) == true else { continue }
            facts.hostFiles[source] = (try? FileSystem.readFile(source.path)) ?? ""
        }
        guard let (_, etc) = image.openEtc() else {
            facts.treeHasEtc = false
            return facts
        }
        facts.tree = PathEntry.look("resolv.conf", in: etc.raw)
        return facts
    }
}

extension MachineImage {
    /// The tree's root and its /etc, found as the machine will resolve it (in root).
    func openEtc() -> (root: OwnedFD, etc: OwnedFD)? {
        guard let tree = try? openRoot(), let etc = try? PathResolution.open("etc", in: tree.raw, flags: NSP_O_PATH | O_DIRECTORY, resolve: .inRoot) else {
            return nil
        }
        return (tree, etc)
    }
}

extension EtcFileWrite {
    /// Writes the tree's /etc/NAME as the host's root, before the machine starts, for `option`: in
    /// the tree's /etc (found in root, so never outside it), the new file or link owned as /etc is,
    /// and said.
    func apply(to name: String, in image: MachineImage, option: String, quiet: Bool) throws {
        let treePath = image.path
        let tree = try image.openRoot()
        let etc = try PathResolution.open("etc", in: tree.raw, flags: O_RDONLY | O_DIRECTORY, resolve: .inRoot)
        let owner = try FileSystem.status(etc, path: "\(treePath)/etc")
        let path = "\(treePath)/etc/\(name)"
        // A new link or copy is made beside the old and renamed over it: the tree never lacks its
        // /etc/localtime, and a failure leaves nothing behind.
        let temporary = ".#\(name).swift-nspawn"
        let temporaryPath = "\(treePath)/etc/\(temporary)"
        func replace(_ make: () throws -> Void) throws {
            _ = unlinkat(etc.raw, temporary, 0)
            do {
                try make()
                try sys("rename", path: path) { renameat(etc.raw, temporary, etc.raw, name) }
            } catch {
                _ = unlinkat(etc.raw, temporary, 0)
                throw error
            }
        }
        switch self {
        case .delete:
            try sys("unlink", path: path) { unlinkat(etc.raw, name, 0) }
        case .symlink(let target):
            try replace {
                try sys("symlink", path: temporaryPath) { symlinkat(target, etc.raw, temporary) }
                // Through a descriptor of the link itself: its name could be swapped in between.
                let link = OwnedFD(try sys("open", path: temporaryPath) { openat(etc.raw, temporary, NSP_O_PATH | O_NOFOLLOW | O_CLOEXEC) })
                guard try FileSystem.status(link, path: temporaryPath).st_mode & S_IFMT == S_IFLNK else {
                    throw UserError("\(temporaryPath) changed while it was made. Refusing.")
                }
                try sys("chown", path: temporaryPath) {
                    fchownat(link.raw, "", owner.st_uid, owner.st_gid, Int32(LinuxKernel.AT_EMPTY_PATH) | AT_SYMLINK_NOFOLLOW)
                }
            }
        case .copy(let hostFile):
            // A time zone file or a resolv.conf is a few KiB; anything else is not one.
            guard let bytes = try FileSystem.readRegular(try FileSystem.open(hostFile, O_RDONLY), path: hostFile, limit: 1 << 20) else {
                throw UserError("\(hostFile) on the host is not a regular file of at most 1 MiB. Refusing to copy it.")
            }
            try replace {
                let file = OwnedFD(
                    try sys("open", path: temporaryPath) { openat(etc.raw, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644) })
                try FileSystem.writeAll(fd: file.raw, bytes, path: temporaryPath)
                try sys("fchown", path: temporaryPath) { fchown(file.raw, owner.st_uid, owner.st_gid) }
                try sys("fchmod", path: temporaryPath) { fchmod(file.raw, 0o644) }
            }
        }
        if !quiet {
            let what: String
            switch self {
            case .delete: what = "Removing"
            case .symlink: what = "Linking"
            case .copy(let hostFile): what = "Copying the host's \(hostFile) to"
            }
            printError("\(what) /etc/\(name) in the tree \(treePath) for \(option).")
        }
    }
}
