#if canImport(Glibc)
    import Glibc
#endif

/// One host-wide lock, held while a machine picks its subnet or address, and while a zone's
/// bridge is made or removed: what one supervisor sees free stays free until it has taken it.
/// Addresses given to machines behind a zone's bridge are invisible on the host, so each is
/// leased: a file named after it, locked for the machine's life (a dead supervisor's lock goes
/// with it), removed at its end.
enum NetworkLock {
    static let directory = RuntimeDirectory.top + "/network"

    static func hold<T>(_ body: () throws -> T) throws -> T {
        try RuntimeDirectory.create(directory)
        let fd = OwnedFD(try sys("open", path: directory + "/lock") { open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600) })
        defer { fd.close() }
        try sys("flock", path: directory + "/lock") { flock(fd.raw, LOCK_EX) }
        return try body()
    }

    /// A lease on `address` for the machine with that MAC address (called with the lock held), or
    /// nil when a live machine holds it.
    static func lease(_ address: IPv4Address, mac: [UInt8]) throws -> Lease? {
        let path = directory + "/lease-\(address)"
        let fd = OwnedFD(try sys("open", path: path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) })
        guard flock(fd.raw, LOCK_EX | LOCK_NB) == 0 else {
            fd.close()
            return nil
        }
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
    }

    final class Lease {
        private let fd: OwnedFD
        let path: String

        init(fd: OwnedFD, path: String) {
            self.fd = fd
            self.path = path
        }

        /// Ends it under the host-wide lock, so no one takes the file between unlink and close.
        func release() {
            _ = try? NetworkLock.hold {
                unlink(path)
                fd.close()
            }
        }
    }
}
