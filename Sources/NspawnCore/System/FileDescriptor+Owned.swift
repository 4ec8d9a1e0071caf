#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// A file descriptor that this process owns and closes once, when the last reference goes away
/// (or earlier, with `close()`).
public final class OwnedFD {
    public private(set) var raw: Int32

    public init(_ raw: Int32) { self.raw = raw }

    deinit { close() }

    public func close() {
        if raw >= 0 { Glibc.close(raw) }
        raw = -1
    }

    /// Gives up ownership without closing, for a descriptor handed to exec or another owner.
    public func release() -> Int32 {
        defer { raw = -1 }
        return raw
    }
}

/// For a freshly cloned child: every descriptor above stderr closed but those it keeps, so that
/// nothing of the supervisor's (host sockets, locks) goes where the child goes.
func closeDescriptors(except kept: [Int32]) {
    try? closeAllDescriptors(except: kept)
}

/// closeDescriptors(), failing if close_range(2) does (a seccomp profile may refuse it): for what
/// must not keep a descriptor of ours when it execs.
func closeAllDescriptors(except kept: [Int32]) throws(SyscallError) {
    // Sorted, duplicates and all (the second of two is skipped): no Set, whose storage type PID 1
    // would instantiate at run time just before its exec.
    var first: Int32 = 3
    for fd in kept.sorted() where fd >= first {
        if first < fd { try sys("close_range") { nsp_close_range(UInt32(first), UInt32(fd - 1), 0) } }
        first = fd &+ 1
    }
    try sys("close_range") { nsp_close_range(UInt32(first), UInt32.max, 0) }
}

enum FileSystem {
    /// A directory's entries but . and .., with their d_type, read whole (so that no listing stays
    /// open while the caller works on them); readdir's errors are errors.
    static func entries(of directory: Int32, path: String) throws(SyscallError) -> [(name: String, type: UInt8)] {
        let copy = try sys("dup", path: path) { fcntl(directory, F_DUPFD_CLOEXEC, 0) }
        guard let listing = fdopendir(copy) else {
            let error = SyscallError.last("fdopendir", path: path)
            Glibc.close(copy)
            throw error
        }
        defer { closedir(listing) }
        var entries: [(name: String, type: UInt8)] = []
        while true {
            errno = 0
            guard let entry = readdir(listing) else {
                if errno != 0 { throw SyscallError.last("readdir", path: path) }
                return entries
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { entries.append((name, entry.pointee.d_type)) }
        }
    }

    /// getcwd(3), or "/" where it cannot say (a removed directory).
    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// open(2) with O_CLOEXEC always added.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0, at dir: Int32 = AT_FDCWD) throws(SyscallError) -> OwnedFD {
        OwnedFD(try sys("open", path: path) { openat(dir, path, flags | O_CLOEXEC, mode) })
    }

    static func readAll(fd: Int32, path: String) throws(SyscallError) -> [UInt8] {
        // Small files are the rule here (procfs, cgroupfs, passwd): a page-sized buffer, reused.
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try sys("read", path: path) { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { return result }
            result.append(contentsOf: buffer[0..<n])
        }
    }

    /// An open file's bytes where it is a regular file of at most `limit` bytes, else nil: what
    /// someone else chose could be a FIFO (we would block), a device, or endless.
    static func readRegular(_ fd: OwnedFD, path: String, limit: Int) throws(SyscallError) -> [UInt8]? {
        let st = try status(fd, path: path)
        guard st.st_mode & S_IFMT == S_IFREG, st.st_size <= limit else { return nil }
        return try readAll(fd: fd.raw, path: path)
    }

    /// realpath(3): the path with no symbolic link, "." or ".." left in it.
    static func canonicalPath(_ path: String) throws(SyscallError) -> String {
        guard let resolved = realpath(path, nil) else { throw SyscallError.last("realpath", path: path) }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func readFile(_ path: String, at dir: Int32 = AT_FDCWD) throws(SyscallError) -> String {
        let fd = try open(path, O_RDONLY, at: dir)
        return String(decoding: try readAll(fd: fd.raw, path: path), as: UTF8.self)
    }

    static func write(_ string: String, to path: String, at dir: Int32 = AT_FDCWD) throws(SyscallError) {
        let fd = try open(path, O_WRONLY, at: dir)
        try writeAll(fd: fd.raw, Array(string.utf8), path: path)
    }

    /// Writes `.NAME` beside `path` and renames it into place: readers see the old file or the whole
    /// new one, never part of it.
    static func replace(_ path: String, contents: String, mode: mode_t) throws(SyscallError) {
        let slash = path.lastIndex(of: "/")
        let temporary = slash.map { String(path[...$0]) + "." + path[path.index(after: $0)...] } ?? "." + path
        do {
            let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: mode)
            try writeAll(fd: fd.raw, Array(contents.utf8), path: temporary)
            try sys("rename", path: path) { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    static func writeAll(fd: Int32, _ bytes: [UInt8], path: String) throws(SyscallError) {
        var offset = 0
        while offset < bytes.count {
            let n = try sys("write", path: path) { bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) } }
            offset += n
        }
    }

    static func stat(_ path: String, followSymlinks: Bool = true) throws(SyscallError) -> Glibc.stat {
        var st = Glibc.stat()
        try sys(followSymlinks ? "stat" : "lstat", path: path) {
            fstatat(AT_FDCWD, path, &st, followSymlinks ? 0 : AT_SYMLINK_NOFOLLOW)
        }
        return st
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// flock(LOCK_NB), exclusive or shared; false when another holder has it.
    static func lock(_ fd: OwnedFD, exclusive: Bool, path: String) throws(SyscallError) -> Bool {
        do {
            try sys("flock", path: path) { flock(fd.raw, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) }
            return true
        } catch {
            guard error.errno == .wouldBlock else { throw error }
            return false
        }
    }

    /// fstat.
    static func status(_ fd: OwnedFD, path: String) throws(SyscallError) -> Glibc.stat {
        var st = Glibc.stat()
        try sys("fstat", path: path) { fstat(fd.raw, &st) }
        return st
    }

    static func isDirectory(_ mode: mode_t) -> Bool { mode & S_IFMT == S_IFDIR }
}

/// Writes a line to standard error with one write(2), so lines from several processes never interleave.
public func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    if let copy = errorCopy { bytes.withUnsafeBytes { _ = Glibc.write(copy, $0.baseAddress, $0.count) } }
}

/// Where printError also writes, in this process and the children cloned from it: the OCI runtime's
/// `create`, whose standard error is the container's, reads its children's errors back for its log.
/// A pipe end that never blocks (what does not fit is only on standard error), closed on exec.
/// The supervisor is single-threaded.
nonisolated(unsafe) var errorCopy: Int32?
