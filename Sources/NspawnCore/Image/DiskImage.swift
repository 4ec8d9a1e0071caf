#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// -i: a disk image's file systems mounted as the machine's tree, in the supervisor's own mount
/// namespace only. The supervisor leaves the host's namespace for one whose mounts are slaves of
/// it (host mounts still arrive, ours never leave), so the host never sees the image mounted and
/// the kernel unmounts it, and releases its auto-clearing loop devices, when the supervisor and its
/// machine are gone, SIGKILL included. The tree is mounted on an empty directory of
/// /run/swift-nspawn/image named by our PID: the one thing a killed run leaves, which the next run
/// removes. Everything after sees a directory tree there, as with -D.
public final class DiskImage {
    /// The image file as given, canonical.
    public let file: String
    /// Where its root file system is mounted (in our namespace).
    public let root: String
    /// The machine is read-only: asked for, or implied by a read-only file or a root partition
    /// flagged read-only (the image itself is only read with -x and --volatile too).
    public let readOnly: Bool
    /// Where its other file systems are mounted, relative to the root (usr, home …), in mount order.
    public private(set) var submounts: [String] = []
    /// The flock on the image file: shared when read-only, exclusive otherwise.
    private let lock: OwnedFD

    static let stagingDirectory = RuntimeDirectory.top + "/image"

    /// Where -M NAME finds a disk image when no -D or -i is given: NAME.raw in the search path, where
    /// no directory NAME comes first in the same place (as systemd-nspawn).
    public static func find(_ configuration: Configuration) -> String? {
        if let image = configuration.image { return image }
        guard configuration.directory == nil, let name = configuration.machineName, let found = MachineImage.search(name), found.diskImage else {
            return nil
        }
        return found.path
    }

    /// Opens, locks, reads and mounts the image; on any failure nothing is left mounted or attached.
    /// - Parameters:
    ///   - throwAway: -x or --volatile: the image is only read, the machine writes elsewhere.
    ///   - lock: take the image's lock (not with SYSTEMD_NSPAWN_LOCK=0).
    public init(_ given: String, policy: ImagePolicy, readOnly askedReadOnly: Bool, throwAway: Bool, lock: Bool, quiet: Bool) throws {
        do {
            file = try FileSystem.canonicalPath(given)
        } catch {
            throw UserError("Failed to resolve image path \(given): \(error.errno.message)")
        }
        var readOnly = askedReadOnly
        var image: OwnedFD
        do {
            image = try FileSystem.open(file, (readOnly || throwAway ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        } catch {
            guard !readOnly, [.readOnlyFileSystem, .permissionDenied, .notPermitted].contains(error.errno) else { throw error }
            // A read-only image makes a read-only machine, as with systemd-nspawn.
            image = try FileSystem.open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            readOnly = true
        }
        let st = try FileSystem.status(image, path: file)
        guard st.st_mode & S_IFMT == S_IFREG || st.st_mode & S_IFMT == S_IFBLK else {
            throw UserError("Image \(file) is neither a regular file nor a block device.")
        }
        if lock, !(try FileSystem.lock(image, exclusive: !(readOnly || throwAway), path: file)) {
            throw UserError("Disk image \(file) is currently busy.")
        }
        self.lock = image
        guard let size = DiskImageProbe.size(image), size > 0 else { throw UserError("Image \(file) is empty.") }

        let contents = try DiskImageProbe.read(image, size: size, image: file)
        let layout = try DiskImageLayout(
            table: contents.table, entries: contents.entries, wholeFileSystem: contents.wholeFileSystem, size: size, policy: policy,
            readOnly: readOnly || throwAway, image: file)
        // A read-only root (its partition's flag, the policy) is a read-only machine; with -x and
        // --volatile the root is only read anyway, and the machine writes above it.
        self.readOnly = readOnly || (!throwAway && layout.mounts[0].readOnly)

        let kernel = LinuxKernel()
        try kernel.unshare(.mount)
        try kernel.makeMountsSlave()
        root = "\(Self.stagingDirectory)/\(getpid())"
        try Self.makeStagingDirectory(root)
        do {
            try mount(layout, from: image, kernel: kernel, quiet: quiet)
        } catch {
            release()
            throw error
        }
    }

    /// Each file system from a loop device of its own, the root first, the others on their mount
    /// points in it (found in it as the machine will resolve them).
    private func mount(_ layout: DiskImageLayout, from image: OwnedFD, kernel: LinuxKernel, quiet: Bool) throws {
        var rootFD: OwnedFD?
        let control = try LoopDevice.openControl()
        for mount in layout.mounts {
            let name = "\(file)" + (mount.partition.map { " (partition \($0), \(mount.designator.rawValue))" } ?? "")
            let target: OwnedFD
            var relative: String?
            if let rootFD {
                guard let (found, path) = try mountPoint(mount, in: rootFD, writable: !layout.mounts[0].readOnly, kernel: kernel, quiet: quiet)
                else { continue }
                (target, relative) = (found, path)
            } else {
                target = try kernel.open(root, in: nil, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
            }
            let loop: LoopDevice
            do {
                loop = try LoopDevice.attach(image, offset: mount.offset, size: mount.size, readOnly: mount.readOnly, control: control)
            } catch {
                throw UserError("Failed to set up a loop device for \(name): \(error)")
            }
            let fileSystem: OwnedFD
            do {
                fileSystem = try kernel.newMount(
                    mount.fileSystem, options: ["source=\(loop.path)"] + (mount.readOnly ? ["ro"] + Self.noReplay(mount.fileSystem) : []),
                    attributes: mount.readOnly ? [.readOnly, .noDev] : [.noDev])
            } catch {
                // The ESP and XBOOTLDR are FAT, which not every kernel has; the machine runs without them.
                if mount.designator == .esp || mount.designator == .xbootldr, error.errno.rawValue == ENODEV {
                    if !quiet {
                        printError("Not mounting the \(mount.designator.rawValue) partition of \(file): this kernel has no \(mount.fileSystem) file system.")
                    }
                    continue
                }
                throw UserError("Failed to mount \(name) (\(mount.fileSystem) from \(loop.path)): \(error)")
            }
            try kernel.moveMount(fileSystem, onto: target, name: name)
            if let relative {
                submounts.append(relative)
            } else {
                rootFD = try kernel.open(root, in: nil, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
            }
        }
    }

    /// A read-only mount replays no journal (it could not write the replay on a read-only loop
    /// device, and would fail on an image whose journal is dirty), as systemd-nspawn mounts them.
    private static func noReplay(_ fileSystem: String) -> [String] {
        switch fileSystem {
        case "ext3", "ext4", "xfs": ["norecovery"]
        case "btrfs": ["rescue=nologreplay"]
        default: []
        }
    }

    /// The directory a partition is mounted on, and its path relative to the root: the first of its
    /// mount points the root has (for the ESP: empty), made where the root is mounted writable and
    /// has none; nil where it is skipped. Mount points are plain directories of the image: a symbolic
    /// link on the way is refused (followed, it could lead a later mount, or -x's overlays, which find
    /// the place again by its path, onto another partition's or the host's directories).
    private func mountPoint(
        _ mount: DiskImageLayout.Mount, in root: OwnedFD, writable: Bool, kernel: LinuxKernel, quiet: Bool
    ) throws -> (OwnedFD, String)? {
        let boot = mount.designator == .esp || mount.designator == .xbootldr
        let partition = "\(mount.designator.rawValue) partition of \(file)"
        for place in mount.mountPoints {
            let relative = String(place.dropFirst())
            let directory: OwnedFD
            do {
                directory = try kernel.openBeneath(relative, in: root, flags: O_RDONLY | O_DIRECTORY, resolve: .noSymlinks)
            } catch {
                guard error.errno == .noSuchFileOrDirectory else {
                    throw UserError("Cannot mount the \(partition) on \(place): \(error.errno.message) (mount points must be directories, not symbolic links).")
                }
                continue
            }
            if boot, (try? FileSystem.entries(of: directory.raw, path: place))?.isEmpty == false { continue }
            return (try kernel.openBeneath(relative, in: root, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks), relative)
        }
        if boot { return nil }
        let place = mount.mountPoints[0]
        guard writable else {
            if mount.designator == .usr {
                throw UserError("Image \(file) has a usr partition but its root has no /usr directory to mount it on, and is read-only.")
            }
            if !quiet { printError("Not mounting the \(partition): its read-only root has no \(place) directory.") }
            return nil
        }
        let relative = String(place.dropFirst())
        let parent = try kernel.openBeneath(
            relative.split(separator: "/").dropLast().joined(separator: "/"), in: root, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
        try kernel.makeDirectory(String(relative.split(separator: "/").last ?? ""), in: parent, mode: 0o755, path: place)
        return (try kernel.openBeneath(relative, in: root, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks), relative)
    }

    /// Unmounts the image from our namespace and removes its directory. The kernel releases the loop
    /// devices once no namespace holds the file systems (the machine's went with it).
    public func release() {
        _ = umount2(root, Int32(MNT_DETACH))
        _ = rmdir(root)
    }

    /// Our directory, after removing those of killed runs. The parent may be removed (by hand) as we
    /// make ours in it: then again. One with our own PID can only be a killed run's.
    private static func makeStagingDirectory(_ path: String) throws(SyscallError) {
        removeStale()
        var attempts = 0
        while true {
            try RuntimeDirectory.create(stagingDirectory, mode: 0o700)
            if mkdir(path, 0o700) == 0 { return }
            let error = SyscallError.last("mkdir", path: path)
            attempts += 1
            guard attempts < 16 else { throw error }
            switch error.errno {
            case .noSuchFileOrDirectory: continue
            case .fileExists: _ = rmdir(path)
            default: throw error
            }
        }
    }

    /// The directories of killed runs: only ever empty on the host (the mounts were in their
    /// namespaces), removed where their process is gone.
    private static func removeStale() {
        guard let directory = try? FileSystem.open(stagingDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC),
            let entries = try? FileSystem.entries(of: directory.raw, path: stagingDirectory)
        else { return }
        for entry in entries {
            guard let pid = pid_t(entry.name), kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = unlinkat(directory.raw, entry.name, AT_REMOVEDIR)
        }
    }
}
