#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// --template=: a machine's tree made from a template, as a copy that keeps everything a system
/// tree holds: owners, modes (setuid included), times, extended attributes (file capabilities,
/// SELinux labels), symbolic links, device nodes, FIFOs and sockets, and hard links as hard
/// links. File data is cloned (FICLONE: a reflink, instant on btrfs and XFS) where the file
/// system can, copied in the kernel (copy_file_range) where it cannot, and read and written across
/// file systems. Mounts (and btrfs subvolumes) below the template are not crossed; symbolic links'
/// own extended attributes are not copied. The copy is made beside the destination under a
/// temporary name, with the directory they share locked, and renamed into place only when whole;
/// a killed run's temporary copy is removed by the next run. SIGINT, SIGTERM and SIGHUP (blocked
/// for the event loop) end the copy, and it is removed.
struct TreeCopy {
    private var copiedLinks: [UInt: [UInt: String]] = [:]
    private var count = 0
    private let progress: Bool
    private let destinationPath: String

    /// Copies `template` to `destination`, which must not exist.
    static func make(_ destination: String, from template: String, progress: Bool) throws {
        let slash = destination.lastIndex(of: "/") ?? destination.startIndex
        let parentPath = slash == destination.startIndex ? "/" : String(destination[..<slash])
        let name = String(destination[destination.index(after: slash)...])
        let temporary = ".#\(name).swift-nspawn-template"
        let parent = try FileSystem.open(parentPath, O_RDONLY | O_DIRECTORY)
        // One copy at a time beside the tree: another run's half copy is never taken for stale.
        guard flock(parent.raw, LOCK_EX | LOCK_NB) == 0 else {
            throw UserError("Another swift-nspawn is making a tree in \(parentPath) from a template; try again when it is done.")
        }
        // A killed run's half copy.
        try removeTree(temporary, in: parent.raw, path: "\(parentPath)/\(temporary)")
        // Made already by the run that held the lock before us.
        if FileSystem.exists(destination) { return }
        let source = try FileSystem.open(template, O_RDONLY | O_DIRECTORY)
        // Two descriptors a level deep: as many as the hard limit allows.
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        var copy = TreeCopy(progress: progress, destinationPath: destination)
        do {
            try copy.copyDirectory(source, named: temporary, in: parent.raw, path: "\(parentPath)/\(temporary)")
            try sys("renameat2", path: destination) { nsp_renameat2_noreplace(parent.raw, temporary, parent.raw, name) }
        } catch {
            try? removeTree(temporary, in: parent.raw, path: "\(parentPath)/\(temporary)")
            throw error
        }
        if progress { printError("\rCopied \(copy.count) files from \(template) to \(destination).") }
    }

    /// Makes `name` in `parent` a copy of the directory `source`, its entries first, then its
    /// owner, mode, attributes and times (so that a read-only directory is filled before it is).
    private mutating func copyDirectory(_ source: OwnedFD, named name: String, in parent: Int32, path: String) throws {
        let st = try FileSystem.status(source, path: path)
        try sys("mkdir", path: path) { mkdirat(parent, name, 0o700) }
        let target = OwnedFD(try sys("open", path: path) { openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) })
        // Read whole before anything below is copied: a level holds two descriptors, not three.
        for (child, _) in try FileSystem.entries(of: source.raw, path: path) {
            try copyEntry(child, from: source.raw, to: target.raw, path: "\(path)/\(child)", device: st.st_dev)
        }
        try sys("fchown", path: path) { fchown(target.raw, st.st_uid, st.st_gid) }
        try Self.copyAttributes(from: source.raw, to: target.raw, path: path)
        try sys("fchmod", path: path) { fchmod(target.raw, st.st_mode & 0o7777) }
        var times = [st.st_atim, st.st_mtim]
        try sys("futimens", path: path) { futimens(target.raw, &times) }
    }

    private mutating func copyEntry(_ name: String, from source: Int32, to target: Int32, path: String, device: UInt) throws {
        var st = stat()
        try sys("lstat", path: path) { fstatat(source, name, &st, AT_SYMLINK_NOFOLLOW) }
        count += 1
        if count % 1000 == 0 { try Self.stopIfAsked() }
        if progress && count % 10000 == 0 {
            let line = "\rCopying the template to \(destinationPath): \(count) files…"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
        let type = st.st_mode & S_IFMT
        if type == S_IFDIR {
            // A mount below the template is not part of it: its mount point is copied empty.
            let directory = OwnedFD(try sys("open", path: path) { openat(source, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) })
            if st.st_dev != device {
                try sys("mkdir", path: path) { mkdirat(target, name, st.st_mode & 0o7777) }
                try sys("chown", path: path) { fchownat(target, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) }
                return
            }
            return try copyDirectory(directory, named: name, in: target, path: path)
        }
        // A hard link to a file copied already is a hard link in the copy.
        if st.st_nlink > 1, let first = copiedLinks[st.st_dev]?[st.st_ino] {
            try sys("link", path: path) { linkat(target, first, target, name, 0) }
            return
        }
        switch type {
        case S_IFREG:
            // Not blocking on a FIFO put in a file's place meanwhile: the file opened is checked.
            let input = OwnedFD(try sys("open", path: path) { openat(source, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) })
            let opened = try FileSystem.status(input, path: path)
            guard opened.st_mode & S_IFMT == S_IFREG, opened.st_ino == st.st_ino, opened.st_dev == st.st_dev else {
                throw UserError("\(path) changed while it was copied; copy a template that nothing changes.")
            }
            let output = OwnedFD(try sys("open", path: path) { openat(target, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) })
            if nsp_clone_file(output.raw, input.raw) != 0 { try Self.copyData(from: input.raw, to: output.raw, size: Int(opened.st_size), path: path) }
            // Owner first (a chown clears file capabilities and setuid bits), then the attributes,
            // then the mode.
            try sys("fchown", path: path) { fchown(output.raw, st.st_uid, st.st_gid) }
            try Self.copyAttributes(from: input.raw, to: output.raw, path: path)
            try sys("fchmod", path: path) { fchmod(output.raw, st.st_mode & 0o7777) }
            var times = [st.st_atim, st.st_mtim]
            try sys("futimens", path: path) { futimens(output.raw, &times) }
        case S_IFLNK:
            let text = try PathEntry.readLink(name, in: source)
            try sys("symlink", path: path) { symlinkat(text, target, name) }
            try sys("chown", path: path) { fchownat(target, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) }
            var times = [st.st_atim, st.st_mtim]
            try sys("utimensat", path: path) { utimensat(target, name, &times, AT_SYMLINK_NOFOLLOW) }
        default:  // character and block devices, FIFOs, sockets
            try sys("mknod", path: path) { mknodat(target, name, st.st_mode, st.st_rdev) }
            try sys("chown", path: path) { fchownat(target, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) }
            try sys("chmod", path: path) { fchmodat(target, name, st.st_mode & 0o7777, 0) }
            var times = [st.st_atim, st.st_mtim]
            try sys("utimensat", path: path) { utimensat(target, name, &times, AT_SYMLINK_NOFOLLOW) }
        }
        if st.st_nlink > 1 { copiedLinks[st.st_dev, default: [:]][st.st_ino] = try Self.pathOf(name, in: target) }
    }

    /// In the kernel where it can (copy_file_range); across file systems (EXDEV) and where a file
    /// system does not take it, by read and write.
    private static func copyData(from input: Int32, to output: Int32, size: Int, path: String) throws {
        var remaining = size
        while remaining > 0 {
            let n = nsp_copy_file_range(input, output, remaining)
            if n > 0 {
                remaining -= n
                continue
            }
            if n == 0 { return }
            guard [EXDEV, EINVAL, EOPNOTSUPP, ENOSYS].contains(errno) else { throw SyscallError.last("copy_file_range", path: path) }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let got = try sys("read", path: path) { buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) } }
                if got == 0 { return }
                try FileSystem.writeAll(fd: output, Array(buffer[0..<got]), path: path)
            }
        }
    }

    /// SIGINT, SIGTERM or SIGHUP pending (they are blocked for the event loop): the copy ends.
    private static func stopIfAsked() throws {
        var pending = sigset_t()
        sigpending(&pending)
        for signal in [SIGINT, SIGTERM, SIGHUP] where sigismember(&pending, signal) == 1 {
            throw UserError("Copying the template was interrupted by \(SignalName.name(signal)); the half copy is removed.")
        }
    }

    /// A hard link's first copy, as a path linkat can take from anywhere: /proc/self/fd/N/NAME.
    private static func pathOf(_ name: String, in directory: Int32) throws -> String {
        try PathEntry.readLink("/proc/self/fd/\(directory)") + "/" + name
    }

    /// Every extended attribute of `source` onto `target` (both open files or directories).
    private static func copyAttributes(from source: Int32, to target: Int32, path: String) throws {
        var names = [CChar](repeating: 0, count: 65536)
        let length = flistxattr(source, &names, names.count)
        if length < 0 && errno != ENOTSUP { throw SyscallError.last("flistxattr", path: path) }
        guard length > 0 else { return }  // none, or a file system without them
        var start = 0
        while start < length {
            let end = names[start..<length].firstIndex(of: 0) ?? length
            let name = String(decoding: names[start..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            start = end + 1
            var value = [UInt8](repeating: 0, count: 65536)
            let size = fgetxattr(source, name, &value, value.count)
            if size < 0 && errno == ENODATA { continue }  // removed meanwhile
            if size < 0 { throw SyscallError.last("fgetxattr", path: "\(path) (\(name))") }
            try sys("fsetxattr", path: "\(path) (\(name))") { fsetxattr(target, name, value, size, 0) }
        }
    }

    /// rm -rf of `name` in `parent`, never following a link; nothing there is fine.
    static func removeTree(_ name: String, in parent: Int32, path: String) throws {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            let directory = OwnedFD(try sys("open", path: path) { openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) })
            // Emptied even where it was made read-only.
            _ = fchmod(directory.raw, 0o700)
            for (child, _) in try FileSystem.entries(of: directory.raw, path: path) { try removeTree(child, in: directory.raw, path: "\(path)/\(child)") }
            try sys("rmdir", path: path) { unlinkat(parent, name, AT_REMOVEDIR) }
        } else {
            try sys("unlink", path: path) { unlinkat(parent, name, 0) }
        }
    }
}
