#if canImport(Glibc)
    import Glibc
#endif

/// One host-wide lock, held while a machine picks its subnet or address, and while a zone's
/// bridge is made or removed: what one supervisor sees free stays free until it has taken it. A
/// flock on a file in /run, which only root may write: nobody else can take the lock (an
/// abstract socket name could be bound by anyone). The empty file stays, as such locks do.
/// Addresses given to machines behind a zone's bridge are invisible on the host, so each is
/// leased: a file named after it, locked for the machine's life (a dead supervisor's lock goes
/// with it), removed at its end.
enum NetworkLock {
    static let directory = RuntimeDirectory.top + "/network"
    static let lockFile = "/run/swift-nspawn-network.lock"

    static func hold<T>(_ body: () throws -> T) throws -> T {
        let fd = try FileSystem.open(lockFile, O_RDWR | O_CREAT | O_NOFOLLOW, mode: 0o600)
        defer { fd.close() }
        try sys("flock", path: lockFile) { flock(fd.raw, LOCK_EX) }
        return try body()
    }

    /// A lease on `address` for the machine with that MAC address (called with the lock held), or
    /// nil when a live machine holds it.
    static func lease(_ address: IPv4Address, mac: [UInt8]) throws -> Lease? {
        guard let file = try LockFile.take("lease-\(address)", in: directory) else { return nil }
        _ = ftruncate(file.fd.raw, 0)
        try LinuxKernel().write(mac, to: file.fd, name: file.path)
        return Lease(file: file)
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
        guard let listing = try? FileSystem.open(directory, O_RDONLY | O_DIRECTORY), let entries = try? FileSystem.entries(of: listing.raw, path: directory)
        else { return }
        for (name, _) in entries where name.hasPrefix("lease-") {
            let path = Self.directory + "/" + name
            let fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
            close(fd)
        }
    }

    final class Lease {
        private let file: LockFile

        init(file: LockFile) { self.file = file }

        /// Ends it under the host-wide lock: whoever opened its file meanwhile sees it gone.
        func release() { _ = try? NetworkLock.hold { file.release() } }
    }
}
