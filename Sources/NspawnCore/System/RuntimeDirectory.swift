#if canImport(Glibc)
    import Glibc
#endif

/// Directories under /run/swift-nspawn, made on demand and removed when the last user leaves them empty.
enum RuntimeDirectory {
    static let top = "/run/swift-nspawn"

    static func create(_ path: String, mode: mode_t = 0o755) throws(SyscallError) {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, mode) != 0 && Glibc.errno != EEXIST { throw SyscallError.last("mkdir", path: prefix) }
        }
    }

    static func removeIfEmpty(_ path: String) {
        var current = path
        while current.hasPrefix(top) {
            guard rmdir(current) == 0 else { return }
            guard let slash = current.lastIndex(of: "/") else { return }
            current = String(current[..<slash])
        }
    }
}
