#if canImport(Glibc)
    import Glibc
#endif

/// Directories under /run/swift-nspawn, made on demand and kept, as systemd keeps /run/systemd/nspawn:
/// /run may be a disk file system (it is on the build machine), where making and removing them
/// (/run/swift-nspawn and the two every start locks in) cost ~0.3 ms of each start. What is in them
/// is removed with its user.
enum RuntimeDirectory {
    static let top = "/run/swift-nspawn"
    /// One lock file for each running machine, by name (Launcher).
    static let machineLocks = top + "/machine"

    /// `mode` is the last directory's; those above it that are missing are made 0755 (they stay,
    /// whichever user made them first).
    static func create(_ path: String, mode: mode_t = 0o755) throws(SyscallError) {
        // Kept once made: one mkdir usually finds it there, and only a missing parent sends us down
        // the path.
        if mkdir(path, mode) == 0 || Glibc.errno == EEXIST { return }
        guard Glibc.errno == ENOENT else { throw SyscallError.last("mkdir", path: path) }
        let parts = path.split(separator: "/")
        var prefix = ""
        for (index, part) in parts.enumerated() {
            prefix += "/" + part
            if mkdir(prefix, index == parts.count - 1 ? mode : 0o755) != 0 && Glibc.errno != EEXIST { throw SyscallError.last("mkdir", path: prefix) }
        }
    }
}

/// A file in a runtime directory, flock'ed exclusively for as long as something lives: the lock of a
/// process that dies, SIGKILL included, goes with it, and the file left behind is taken over by the
/// next one to lock it. Released by unlinking it while still locked, so whoever opened it meanwhile
/// finds it gone and opens it anew.
final class LockFile {
    let fd: OwnedFD
    let path: String

    private init(fd: OwnedFD, path: String) {
        self.fd = fd
        self.path = path
    }

    /// The lock on `name` in `directory`, or nil when a live holder has it.
    static func take(_ name: String, in directory: String) throws -> LockFile? {
        let path = directory + "/" + name
        // A file unlinked (released, or removed as a leftover) between our open and our lock, or
        // its directory removed (by hand) before our open: then again.
        for _ in 0..<8 {
            try RuntimeDirectory.create(directory)
            let raw = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if raw < 0 && errno == ENOENT { continue }
            guard raw >= 0 else { throw SyscallError.last("open", path: path) }
            let candidate = OwnedFD(raw)
            guard try FileSystem.lock(candidate, exclusive: true, path: path) else { return nil }
            var named = stat()
            let opened = try FileSystem.status(candidate, path: path)
            if stat(path, &named) == 0 && opened.st_ino == named.st_ino && opened.st_dev == named.st_dev {
                return LockFile(fd: candidate, path: path)
            }
        }
        throw UserError("Failed to lock \(path): the file kept changing.")
    }

    /// Unlinks the file while still holding it.
    func release() {
        guard fd.raw >= 0 else { return }
        unlink(path)
        fd.close()
    }
}
