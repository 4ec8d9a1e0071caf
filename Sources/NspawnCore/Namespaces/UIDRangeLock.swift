#if canImport(Glibc)
    import Glibc
#endif

/// The flocks on /run/swift-nspawn/uid-range/BASE, one for each 64K slot the range covers, so that
/// two machines' ranges never overlap whatever their sizes. Released and the files removed by
/// `release()`; a SIGKILLed run leaves only unlocked files, which the next run takes over.
public final class UIDRangeLock {
    private var held: [(path: String, fd: OwnedFD)]

    private init(held: [(path: String, fd: OwnedFD)]) { self.held = held }

    /// nil when another machine holds any slot of the range.
    static func acquire(_ range: UIDRange) throws -> UIDRangeLock? {
        let lock = UIDRangeLock(held: [])
        let firstSlot = range.base / UIDRange.machineSize * UIDRange.machineSize
        for slot in stride(from: UInt64(firstSlot), through: UInt64(range.last), by: Int(UIDRange.machineSize)) {
            guard let fd = try lockSlot("\(UIDRangeAllocator.lockDirectory)/\(slot)") else {
                lock.release()
                return nil
            }
            lock.held.append(fd)
        }
        return lock
    }

    private static func lockSlot(_ path: String) throws -> (path: String, fd: OwnedFD)? {
        while true {
            // The directory may be removed (by hand) between our mkdir and open: then again.
            try RuntimeDirectory.create(UIDRangeAllocator.lockDirectory)
            let fd: OwnedFD
            do {
                fd = try FileSystem.open(path, O_RDWR | O_CREAT | O_NOFOLLOW, mode: 0o600)
            } catch {
                if error.errno == .noSuchFileOrDirectory { continue }
                throw error
            }
            guard try FileSystem.lock(fd, exclusive: true, path: path) else { return nil }
            // The previous holder may have unlinked the file between our open and our lock:
            // then we hold a lock nobody else can see, so start again.
            let locked = try FileSystem.status(fd, path: path)
            if let current = try? FileSystem.stat(path, followSymlinks: false), locked.st_ino == current.st_ino {
                return (path, fd)
            }
        }
    }

    public func release() {
        guard !held.isEmpty else { return }
        for (path, fd) in held {
            unlink(path)
            fd.close()
        }
        held = []
    }

    deinit { release() }
}
