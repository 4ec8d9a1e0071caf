#if canImport(Glibc)
    import Glibc
#endif

/// A flock(2) on the tree's own directory: nothing is written anywhere to take it, and it goes away
/// with the process. Read-write runs lock exclusively, read-only runs shared.
public struct ImageLock {
    let fd: OwnedFD

    public init(_ image: MachineImage, readOnly: Bool) throws {
        fd = try FileSystem.open(image.path, O_RDONLY | O_DIRECTORY)
        if flock(fd.raw, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0 {
            let error = SyscallError.last("flock", path: image.path)
            if error.errno == .wouldBlock { throw UserError("Directory tree \(image.path) is currently busy.") }
            throw error
        }
    }
}
