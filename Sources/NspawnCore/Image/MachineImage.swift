#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The machine's tree on the host: where it is, what it is called, and whether it can be booted.
public struct MachineImage: Equatable, Sendable {
    /// The machine's root: the canonical path, with no symlinks left in it, of the tree or, with
    /// --pivot-root, of the directory in it that becomes the root.
    public var path: String
    public var name: String
    /// The tree as given (-D, -M or the working directory), canonical: what is locked and named.
    public var directory: String
    /// --pivot-root's directory, relative to the tree. The machine's tree can change it (through OLD,
    /// or another machine on a part of the tree), so it is found again in the tree, never outside,
    /// wherever it is opened: `path` only names it.
    public var pivotRoot: String?
    /// -i: the disk image file whose file systems are mounted at `directory`.
    public var diskImage: String?
    /// -i: where the image's other file systems (/usr, /home …) are mounted, relative to the root.
    public var submounts: [String] = []

    public init(path: String, name: String, directory: String? = nil, pivotRoot: String? = nil) {
        self.path = path
        self.name = name
        self.directory = directory ?? path
        self.pivotRoot = pivotRoot
    }

    /// The tree as the user named it: the disk image, or the directory.
    public var shown: String { diskImage ?? directory }

    /// The machine's root, opened (O_PATH): the tree, or --pivot-root's directory found in it.
    func openRoot() throws -> OwnedFD {
        let tree = try FileSystem.open(directory, NSP_O_PATH | O_DIRECTORY)
        guard let pivotRoot else { return tree }
        do {
            return try PathResolution.open(pivotRoot, in: tree.raw, flags: NSP_O_PATH | O_DIRECTORY, resolve: .inRoot)
        } catch {
            throw UserError("Failed to find --pivot-root= directory /\(pivotRoot) in \(directory): \(error.errno.message)")
        }
    }

    /// Where -M NAME is looked up when no -D is given, as systemd-nspawn does.
    public static let searchPath = ["/etc/machines", "/run/machines", "/var/lib/machines", "/usr/local/lib/machines", "/usr/lib/machines"]

    /// -M NAME without -D or -i: the first tree NAME or disk image NAME.raw in the search path (in
    /// each directory the tree first), and whether it is the image.
    static func search(_ name: String) -> (path: String, diskImage: Bool)? {
        for directory in searchPath {
            if FileSystem.exists("\(directory)/\(name)") { return ("\(directory)/\(name)", false) }
            if FileSystem.exists("\(directory)/\(name).raw") { return ("\(directory)/\(name).raw", true) }
        }
        return nil
    }

    /// Finds the tree the configuration names: the mounted disk image, -D, else -M in the search
    /// path, else the current directory.
    public static func locate(_ configuration: Configuration, diskImage: DiskImage? = nil) throws -> MachineImage {
        let given: String
        if let diskImage {
            given = diskImage.root
        } else if let directory = configuration.directory {
            given = directory
        } else if let name = configuration.machineName {
            guard let found = search(name)?.path else {
                throw UserError("No image for machine '\(name)' found in \(searchPath.joined(separator: ", ")).")
            }
            given = found
        } else {
            given = "."
        }
        let path: String
        do {
            path = try FileSystem.canonicalPath(given)
        } catch {
            throw UserError("Failed to resolve path \(given): \(error.errno.message)")
        }

        let st = try FileSystem.stat(path)
        guard FileSystem.isDirectory(st.st_mode) else {
            throw UserError("Path \(path) is not a directory; give a disk image with --image=.")
        }
        guard path != "/" else {
            throw UserError("Spawning a machine on the root directory is not supported. Refusing.")
        }
        // A disk image's machine is named after its file, less ".raw".
        var base = String((diskImage?.file ?? path).split(separator: "/").last ?? "")
        if diskImage != nil, base.hasSuffix(".raw") { base.removeLast(4) }
        let name = configuration.machineName ?? MachineName.cleanup(base)
        guard MachineName.isValid(name) else {
            throw UserError("Cannot derive a machine name from \(diskImage?.file ?? path); name it with -M.")
        }
        var image = MachineImage(path: path, name: name)
        image.diskImage = diskImage?.file
        image.submounts = diskImage?.submounts ?? []
        if let newRoot = configuration.pivotRoot?.newRoot, newRoot != "/" {
            image.pivotRoot = String(newRoot.dropFirst())
            let root = try image.openRoot()
            image.path = try PathEntry.readLink("/proc/self/fd/\(root.raw)")
        }
        // Without an OS tree there is nothing to run; nspawn checks /usr the same way.
        guard let usr = try? FileSystem.stat(image.path + "/usr", followSymlinks: false), FileSystem.isDirectory(usr.st_mode) else {
            throw UserError(
                "\(image.diskImage.map { "Image \($0)" } ?? "Directory \(image.path)") doesn't look like it has an OS tree (/usr/ directory is missing). Refusing."
            )
        }
        return image
    }

    /// The machine's name and the directory its tree or image lies in, where its untrusted .nspawn
    /// file would be: found as `locate` and DiskImage.find find them, without mounting anything.
    /// nil where the tree cannot be found (locate says why).
    static func settingsLocation(_ c: Configuration) -> (name: String, directory: String)? {
        var given = c.image ?? c.directory
        var diskImage = c.image != nil
        if given == nil, let name = c.machineName, let found = search(name) { (given, diskImage) = (found.path, found.diskImage) }
        // A tree --template= has yet to make has no canonical path: its name is in the one given.
        var path = given ?? "."
        if let canonical = try? FileSystem.canonicalPath(path) {
            path = canonical
        } else {
            path = (path.hasPrefix("/") ? "" : FileSystem.currentDirectory() + "/") + path
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        }
        var base = String(path.split(separator: "/").last ?? "")
        if diskImage, base.hasSuffix(".raw") { base.removeLast(4) }
        let name = c.machineName ?? MachineName.cleanup(base)
        guard MachineName.isValid(name) else { return nil }
        let slash = path.lastIndex(of: "/") ?? path.startIndex
        return (name, slash == path.startIndex ? "/" : String(path[..<slash]))
    }

    /// The tree's /etc/machine-id when it holds a valid ID. Read through a no-follow open so that a
    /// symlink in the tree cannot point us at a host file.
    public func machineID() -> MachineID? {
        guard let bytes = readTreeFile("etc/machine-id", resolve: .beneath, limit: 64) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: "\n ")
        guard let id = MachineID(parsing: text), !id.isNull else { return nil }
        return id
    }

    /// The tree's /etc/NAME (passwd, group) as text, "" where it has none: found in the tree as
    /// the machine resolves it, up to 4 MiB.
    func readEtcFile(_ name: String) -> String {
        readTreeFile("etc/\(name)", resolve: .inRoot, limit: 4 << 20).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// A file of the tree, if it is a regular file of at most `limit` bytes: the image could put a
    /// FIFO (we would block), a device (we would open it on the host) or an endless file there.
    private func readTreeFile(_ relative: String, resolve: PathResolution.Scope, limit: Int) -> [UInt8]? {
        guard let root = try? openRoot(),
            let file = try? PathResolution.open(relative, in: root.raw, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY, resolve: resolve)
        else { return nil }
        return (try? FileSystem.readRegular(file, path: relative, limit: limit)) ?? nil
    }
}

extension MachineImage {
    /// The directories the machine's API file systems are mounted on. swift-nspawn never creates
    /// them inside the tree, and a symlink there could aim a host-privileged mount elsewhere.
    public static let mountPoints = ["/dev", "/proc", "/sys", "/run", "/tmp"]

    public func requireMountPoints() throws {
        for mountPoint in Self.mountPoints {
            guard let st = try? FileSystem.stat(path + mountPoint, followSymlinks: false) else {
                throw UserError(
                    "\(diskImage.map { "Image \($0)" } ?? "Directory \(path)") has no \(mountPoint) directory to mount on; create it in the tree. Refusing.")
            }
            guard FileSystem.isDirectory(st.st_mode) else {
                throw UserError("\(mountPoint) in \(diskImage ?? path) is not a directory (a symlink?). Refusing.")
            }
        }
    }

    /// With --boot the tree must be an OS: os-release in /etc or /usr/lib, as systemd-nspawn checks.
    public func requireOSRelease() throws {
        guard ["/etc/os-release", "/usr/lib/os-release"].contains(where: { (try? FileSystem.stat(path + $0, followSymlinks: false)) != nil }) else {
            throw UserError(
                "\(diskImage.map { "Image \($0)" } ?? "Directory \(path)") doesn't look like an OS root directory (os-release file is missing). Refusing.")
        }
    }
}
