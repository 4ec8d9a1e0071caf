#if canImport(Glibc)
    import Glibc
#endif

/// A flock(2) on the tree's own directory: nothing is written anywhere to take it, and it goes away
/// with the process. Read-write runs lock exclusively, read-only runs shared.
public struct ImageLock {
    let fd: OwnedFD

    public init(_ image: MachineImage, readOnly: Bool) throws {
        fd = try FileSystem.open(image.directory, O_RDONLY | O_DIRECTORY)
        guard try FileSystem.lock(fd, exclusive: !readOnly, path: image.directory) else {
            throw UserError("Directory tree \(image.directory) is currently busy.")
        }
    }
}
