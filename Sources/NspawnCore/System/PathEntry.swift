#if canImport(Glibc)
    import Glibc
#endif

/// What is at a path, looked at without following it: nothing, a directory, a symbolic link (and
/// its text), or anything else.
enum PathEntry: Equatable, Sendable {
    case missing, file, directory
    case symlink(to: String)

    /// lstat (fstatat with AT_SYMLINK_NOFOLLOW) of `name` in `directory`, and readlink for a link.
    static func look(_ name: String, in directory: Int32 = AT_FDCWD) -> PathEntry {
        var st = stat()
        guard fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            return .directory
        case S_IFLNK:
            return (try? readLink(name, in: directory)).map { .symlink(to: $0) } ?? .file
        default:
            return .file
        }
    }

    /// readlinkat: a symbolic link's text (or a /proc/self/fd link's path).
    static func readLink(_ name: String, in directory: Int32 = AT_FDCWD) throws(SyscallError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try sys("readlink", path: name) { readlinkat(directory, name, &buffer, buffer.count - 1) }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
