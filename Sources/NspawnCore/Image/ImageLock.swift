#if canImport(Glibc)
    import Glibc
#endif

/// A flock(2) on the tree's own directory: nothing is written anywhere to take it, and it goes away
/// with the process. Read-write runs lock exclusively, read-only runs shared.
public struct ImageLock {
    let fd: OwnedFD

    public init(_ image: MachineImage, readOnly: Bool) throws {
        fd = try FileSystem.open(image.path, O_RDONLY | O_DIRECTORY)
        guard try FileSystem.lock(fd, exclusive: !readOnly, path: image.path) else {
            throw UserError("Directory tree \(image.path) is currently busy.")
        }
    }
}
