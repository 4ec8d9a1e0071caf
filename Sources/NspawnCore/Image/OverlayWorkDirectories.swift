#if canImport(Glibc)
    import Glibc
#endif

/// The kernel's work directories for --overlay's host upper layers: each beside its upper layer
/// (overlayfs wants both on one file system), made or emptied before the machine starts, locked
/// for its life (two machines never write one upper layer), and removed at its end; a killed
/// run's is emptied and taken over by the next run with that upper layer.
final class OverlayWorkDirectories {
    private var held: [(parent: OwnedFD, name: String, path: String, lock: OwnedFD)] = []

    init(_ overlays: [OverlayMount]) throws {
        do {
            for case .host(let upper)? in overlays.map(\.upper) {
                let st = try FileSystem.stat(upper)
                guard FileSystem.isDirectory(st.st_mode) else { throw UserError("Overlay upper layer \(upper) is not a directory.") }
                let path = OverlayMount.workDirectory(for: upper)
                let slash = path.lastIndex(of: "/")!
                let name = String(path[path.index(after: slash)...])
                let parent = try FileSystem.open(slash == path.startIndex ? "/" : String(path[..<slash]), O_RDONLY | O_DIRECTORY)
                if mkdirat(parent.raw, name, 0o700) != 0 && errno != EEXIST { throw SyscallError.last("mkdir", path: path) }
                let lock = OwnedFD(try sys("open", path: path) { openat(parent.raw, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) })
                guard flock(lock.raw, LOCK_EX | LOCK_NB) == 0 else {
                    throw UserError("Overlay upper layer \(upper) is in use by another machine.")
                }
                held.append((parent, name, path, lock))
                // What a killed run's kernel left.
                for (child, _) in try FileSystem.entries(of: lock.raw, path: path) { try TreeCopy.removeTree(child, in: lock.raw, path: "\(path)/\(child)") }
            }
        } catch {
            remove()
            throw error
        }
    }

    func remove() {
        for entry in held {
            try? TreeCopy.removeTree(entry.name, in: entry.parent.raw, path: entry.path)
            entry.lock.close()
        }
        held = []
    }
}
