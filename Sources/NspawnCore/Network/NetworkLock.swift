#if canImport(Glibc)
    import Glibc
#endif

/// One lock for each network namespace, held while a machine picks its subnet or address, and
/// while a zone's bridge is made or removed: what one supervisor sees free stays free until it has
/// taken it. It is a unix socket bound to an abstract name, which lives in the network namespace
/// (as the links and routes it guards do) and goes with its holder, even a killed one: no file
/// is left behind. Addresses given to machines behind a zone's bridge are invisible on the host,
/// so each is leased: a file named after it, locked for the machine's life (a dead supervisor's
/// lock goes with it), removed at its end.
enum NetworkLock {
    static let directory = RuntimeDirectory.top + "/network"
    private static let name = "swift-nspawn/network-lock"

    /// Waits (at most ten seconds) for the lock, runs `body`, and lets go.
    static func hold<T>(_ body: () throws -> T) throws -> T {
        let fd = OwnedFD(try sys("socket", path: "@" + name) { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        defer { fd.close() }
        // struct sockaddr_un with a leading zero byte: the abstract namespace.
        var address = UInt16(AF_UNIX).littleEndianBytes + [0] + Array(name.utf8)
        let deadline = Clock.monotonicNanoseconds() + 10_000_000_000
        while address.withUnsafeMutableBytes({ bind(fd.raw, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }) != 0 {
            guard errno == EADDRINUSE else { throw SyscallError.last("bind", path: "@" + name) }
            guard Clock.monotonicNanoseconds() < deadline else { throw UserError("Another swift-nspawn held the network lock @\(name) for ten seconds.") }
            usleep(500)
        }
        return try body()
    }

    /// A lease on `address` for the machine with that MAC address (called with the lock held), or
    /// nil when a live machine holds it.
    static func lease(_ address: IPv4Address, mac: [UInt8]) throws -> Lease? {
        let path = directory + "/lease-\(address)"
        var fd: OwnedFD?
        // The directory goes when its last lease does (a run in another network namespace may
        // remove it meanwhile), and a lease file may be unlinked by its releaser between our
        // open and our lock: then again.
        for _ in 0..<8 where fd == nil {
            try RuntimeDirectory.create(directory)
            let raw = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if raw < 0 && errno == ENOENT { continue }
            let candidate = OwnedFD(try sys("open", path: path) { raw })
            guard flock(candidate.raw, LOCK_EX | LOCK_NB) == 0 else { return nil }
            var opened = stat()
            var named = stat()
            if fstat(candidate.raw, &opened) == 0 && stat(path, &named) == 0 && opened.st_ino == named.st_ino && opened.st_dev == named.st_dev {
                fd = candidate
            }
        }
        guard let fd else { throw UserError("Failed to lease \(address) in \(directory): its file kept changing.") }
        _ = ftruncate(fd.raw, 0)
        try LinuxKernel().write(mac, to: fd, name: path)
        return Lease(fd: fd, path: path)
    }

    /// The MAC address a live lease of `address` records (a zone member's DHCP server renews its
    /// zone's other machines).
    static func leaseHolder(_ address: IPv4Address) -> [UInt8]? {
        let path = directory + "/lease-\(address)"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // Free to take means nobody holds it.
        if flock(fd, LOCK_SH | LOCK_NB) == 0 { return nil }
        var mac = [UInt8](repeating: 0, count: 6)
        return pread(fd, &mac, 6, 0) == 6 ? mac : nil
    }

    /// Lease files whose machine is gone (called with the lock held).
    static func removeStaleLeases() {
        guard let directory = opendir(directory) else { return }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("lease-") else { continue }
            let path = Self.directory + "/" + name
            let fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
            close(fd)
        }
        RuntimeDirectory.removeIfEmpty(Self.directory)
    }

    final class Lease {
        private let fd: OwnedFD
        let path: String

        init(fd: OwnedFD, path: String) {
            self.fd = fd
            self.path = path
        }

        /// Ends it: unlinked while still locked (whoever opened it meanwhile sees it gone), then
        /// the directory if it was the last.
        func release() {
            unlink(path)
            fd.close()
            RuntimeDirectory.removeIfEmpty(NetworkLock.directory)
        }
    }
}
