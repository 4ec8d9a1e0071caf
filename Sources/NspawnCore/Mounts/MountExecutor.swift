#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Carries out mount operations in the outer child, with the machine's tree attached at `root`.
/// Every target is opened below the root by openat2, and every file it creates belongs to the
/// machine's root.
final class MountExecutor {
    let root: OwnedFD
    let rootPath: String
    /// The host UID (and GID) of the machine's root when acting as the host's root: the base of its
    /// range, or 0 (also once we act as the machine's root itself, inside its user namespace).
    let machineRoot: UInt32
    /// The machine's user namespace, for idmapped binds; nil without one.
    let idmapUserNamespace: OwnedFD?
    let quiet: Bool
    /// The binds' sources, opened before anything was mounted.
    let bindSources: BindSources?
    /// Asked once, when the plan first needs a file system only the machine's PID 1 can make.
    let receiveAPIMounts: () throws -> [APIFilesystem: OwnedFD]

    private var apiMounts: [APIFilesystem: OwnedFD]?
    private var inaccessible: OwnedFD?
    private(set) var consoleMaster: OwnedFD?
    private(set) var consolePeer: OwnedFD?
    /// The bound notify socket, for the supervisor.
    private(set) var notify: OwnedFD?

    init(
        root: OwnedFD, rootPath: String, machineRoot: UInt32, idmapUserNamespace: OwnedFD?, quiet: Bool, bindSources: BindSources? = nil,
        receiveAPIMounts: @escaping () throws -> [APIFilesystem: OwnedFD] = { [:] }
    ) {
        self.root = root
        self.bindSources = bindSources
        self.rootPath = rootPath
        self.machineRoot = machineRoot
        self.idmapUserNamespace = idmapUserNamespace
        self.quiet = quiet
        self.receiveAPIMounts = receiveAPIMounts
    }

    /// After the last operation: the masks hold the inaccessible file through their mounts; its name can go.
    func finish() {
        if inaccessible != nil, let run = try? target("/run") { unlinkat(run.raw, Self.inaccessibleName, 0) }
    }

    func run(_ operation: MountOperation) throws {
        switch operation {
        case .tmpfs, .bind:
            let (mount, creation) = try detachedMount(operation)
            try attach(mount, for: operation, creating: creation)

        case .devpts(let path):
            let options = ["newinstance", "ptmxmode=0666", "mode=620", "gid=\(machineRoot + 5)"]
            let mount = try MountCalls.newMount("devpts", options: options, attributes: [.noSUID, .noExec])
            try MountCalls.attach(mount, onto: try target(path), path: path)

        case .deviceNodes(let directory, let nodes):
            let dir = try target(directory)
            for node in nodes {
                // As the host's root (CAP_MKNOD is one of the capabilities a non-zero fsuid drops), then given away.
                let path = "\(directory)/\(node.name)"
                if mknodat(dir.raw, node.name, S_IFCHR | 0o666, dev_t(node.deviceNumber)) != 0 {
                    let error = SyscallError.last("mknod", path: path)
                    // Inside a user namespace (swift-nspawn nested in a machine) only the host's own node
                    // can be had, bound: as systemd-nspawn falls back to.
                    guard error.errno == .notPermitted else { throw error }
                    try bindHostNode(node, into: dir, path: path)
                    continue
                }
                try sys("chown", path: path) { fchownat(dir.raw, node.name, machineRoot, machineRoot, AT_SYMLINK_NOFOLLOW) }
                try sys("chmod", path: path) { fchmodat(dir.raw, node.name, 0o666, 0) }  // past the umask
            }

        case .symlink(let path, let targetText):
            let (parent, name) = try parentAndName(path)
            try asMachineRoot { () throws(SyscallError) in
                try sys("symlink", path: path) { symlinkat(targetText, parent.raw, name) }
            }

        case .directory(let path):
            _ = try target(path, create: .directory)

        case .hostInformation(let path, let files, let osRelease, let notifySocket):
            let mount = try MountCalls.newMount("tmpfs", options: ownedOptions("mode=0755,size=1m,nr_inodes=64"), attributes: [.noSUID, .noDev, .noExec])
            let dir = try target(path)
            try MountCalls.attach(mount, onto: dir, path: path)
            let attached = try target(path)
            try asMachineRoot { () throws(SyscallError) in
                for (name, contents) in files.sorted(by: { $0.key < $1.key }) {
                    let file = OwnedFD(try sys("open", path: "\(path)/\(name)") { openat(attached.raw, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444) })
                    try FileSystem.writeAll(fd: file.raw, Array(contents.utf8), path: "\(path)/\(name)")
                }
            }
            notify = try makeNotifySocket(named: notifySocket, in: attached, path: "\(path)/\(notifySocket)")
            if let osRelease {
                let source = try MountCalls.cloneTree(osRelease, recursive: false)
                try MountCalls.setAttributes(source, .lockedDown, recursive: false, path: osRelease)
                try MountCalls.attach(source, onto: try target("\(path)/os-release", create: .file), path: "\(path)/os-release")
            }
            try MountCalls.setAttributes(try target(path), .lockedDown, recursive: false, path: path)

        case .console(let path):
            try makeConsole(at: path)

        case .api(let filesystem, let path, _):
            if apiMounts == nil { apiMounts = try receiveAPIMounts() }
            guard let mount = apiMounts?[filesystem] else {
                throw UserError("The machine's PID 1 did not hand over its \(filesystem.rawValue) mount.")
            }
            try MountCalls.attach(mount, onto: try target(path, scope: .noSymlinks), path: path)

        case .hostBind(let source, let path, let attributes):
            let mount = try MountCalls.cloneTree(source, recursive: false)
            try MountCalls.setAttributes(mount, attributes, recursive: false, path: source)
            try MountCalls.attach(mount, onto: try target(path, scope: .noSymlinks), path: path)

        case .rebind(let path, let attributes, let required):
            let place: OwnedFD
            do {
                place = try target(path, scope: .noSymlinks)
            } catch let error as SyscallError where error.errno == .noSuchFileOrDirectory && !required {
                return
            }
            let mount = try MountCalls.cloneTree("", in: place, recursive: false)
            // /proc/sys/net is cloned from below the read-only /proc/sys: the one place to clear.
            try MountCalls.setAttributes(mount, attributes, clear: MountAttributes.lockedDown.subtracting(attributes), recursive: false, path: path)
            try MountCalls.attach(mount, onto: place, path: path)

        case .mask(let path):
            let place: OwnedFD
            do {
                place = try target(path, scope: .noSymlinks)
            } catch let error as SyscallError where error.errno == .noSuchFileOrDirectory {
                return  // nothing there to hide
            }
            let mask = try MountCalls.cloneTree("", in: try inaccessibleFile(), recursive: false)
            try MountCalls.setAttributes(mask, .lockedDown, recursive: false, path: path)
            try MountCalls.attach(mask, onto: place, path: path)
        }
    }

    // MARK: The guest's mounts

    /// Makes a tmpfs or bind operation's mount and attaches it at `name` in the staging directory
    /// instead of its place in the tree; returns what its mount point in the tree must be.
    func stage(_ operation: MountOperation, in directory: OwnedFD, name: String, path: String) throws -> Creation {
        let (mount, creation) = try detachedMount(operation)
        if creation == .directory {
            try sys("mkdir", path: path) { mkdirat(directory.raw, name, 0o700) }
        } else {
            Glibc.close(try sys("open", path: path) { openat(directory.raw, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) })
        }
        let place = try PathResolution.open(name, in: directory.raw, flags: NSP_O_PATH, resolve: .noSymlinks)
        try MountCalls.attach(mount, onto: place, path: path)
        return creation
    }

    /// Attaches a tmpfs or bind operation's mount at its place in the tree, making the mount point.
    func attach(_ mount: OwnedFD, for operation: MountOperation, creating creation: Creation) throws {
        switch operation {
        case .tmpfs(let path, _, _, let resolution):
            try MountCalls.attach(mount, onto: try target(path, create: creation, scope: resolution), path: path)
        case .bind(let bind):
            try MountCalls.attach(mount, onto: try target(bind.path, create: creation, scope: .inRoot), path: bind.path)
        default:
            preconditionFailure("only tmpfs and bind mounts are the guest's")
        }
    }

    /// The detached mount a tmpfs or bind operation attaches, and what its mount point must be.
    /// A bind's source is opened once, following symlinks as systemd-nspawn does, and everything
    /// after uses that descriptor.
    func detachedMount(_ operation: MountOperation) throws -> (OwnedFD, Creation) {
        switch operation {
        case .tmpfs(_, let options, let attributes, _):
            return (try MountCalls.newMount("tmpfs", options: ownedOptions(options), attributes: attributes), .directory)
        case .bind(let bind):
            guard let bindSources else { preconditionFailure("binds need their sources opened") }
            let source = try bindSources.descriptor(for: bind.source)
            var st = Glibc.stat()
            try sys("fstat", path: bind.source) { fstat(source.raw, &st) }
            let mount = try MountCalls.cloneTree("", in: source, recursive: bind.recursive, name: bind.source)
            try Self.setAttributes(
                mount, bind.attributes, idmap: bind.idmap, userNamespace: idmapUserNamespace, recursive: true, path: bind.source, quiet: quiet)
            return (mount, FileSystem.isDirectory(st.st_mode) ? .directory : .file)
        default:
            preconditionFailure("only tmpfs and bind mounts are the guest's")
        }
    }

    /// Sets a mount's attributes, ID-mapped to the machine's user namespace as `idmap` says: a file
    /// system that cannot be ID-mapped fails the start (required) or shows its raw owners (preferred).
    static func setAttributes(
        _ mount: OwnedFD, _ attributes: MountAttributes, idmap: IDMapping, userNamespace: OwnedFD?, recursive: Bool, path: String, quiet: Bool
    ) throws {
        guard idmap != .none, let userNamespace else {
            try MountCalls.setAttributes(mount, attributes, recursive: recursive, path: path)
            return
        }
        do {
            try MountCalls.setAttributes(mount, attributes, idmapUserNamespace: userNamespace, recursive: recursive, path: path)
        } catch {
            guard idmap == .preferred else {
                throw UserError(
                    "ID mapped mounts are apparently not available for \(path) (\(error)), sorry. Use --private-users-ownership=off to show raw owners.")
            }
            if !quiet { printError("ID mapped mounts are not available for \(path); showing its raw owners.") }
            try MountCalls.setAttributes(mount, attributes, recursive: recursive, path: path)
        }
    }

    /// Binds /dev/NAME of the namespace we were started in over an empty file, after checking that
    /// it is the character device it should be.
    private func bindHostNode(_ node: DeviceNode, into directory: OwnedFD, path: String) throws {
        let source = "/dev/\(node.name)"
        let st = try FileSystem.stat(source, followSymlinks: false)
        guard st.st_mode & S_IFMT == S_IFCHR, UInt64(st.st_rdev) == node.deviceNumber else {
            throw UserError("Cannot create \(path) (mknod: Operation not permitted), and \(source) is not the device to bind instead.")
        }
        let file = try sys("open", path: path) { openat(directory.raw, node.name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        Glibc.close(file)
        let mount = try MountCalls.cloneTree(source, recursive: false)
        try MountCalls.attach(mount, onto: try target(path), path: path)
    }

    // MARK: Console

    /// A pty from the machine's own devpts; its peer (opened from the master, never by path) is bound
    /// over /dev/console. The master goes to the supervisor, the peer to PID 1.
    private func makeConsole(at path: String) throws {
        let master = try asMachineRoot { () throws(SyscallError) in
            try PathResolution.open("dev/pts/ptmx", in: root.raw, flags: O_RDWR | O_NOCTTY, resolve: .noSymlinks)
        }
        var unlock: Int32 = 0
        try sys("ioctl(TIOCSPTLCK)", path: "/dev/pts/ptmx") { ioctl(master.raw, NSP_TIOCSPTLCK, &unlock) }
        let peer = OwnedFD(try sys("ioctl(TIOCGPTPEER)", path: "/dev/pts/ptmx") { ioctl(master.raw, NSP_TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC) })
        let mount = try MountCalls.cloneTree("", in: peer, recursive: false)
        try MountCalls.attach(mount, onto: try target(path, create: .file, scope: .noSymlinks), path: path)
        consoleMaster = master
        consolePeer = peer
    }

    // MARK: Notify socket

    /// A datagram socket bound in the machine's /run/host, owned by the machine's root and writable
    /// by it alone. SO_PASSCRED makes the kernel attach every sender's PID, which the supervisor checks.
    private func makeNotifySocket(named name: String, in directory: OwnedFD, path: String) throws -> OwnedFD {
        let socket = OwnedFD(
            try sys("socket", path: path) {
                Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            })
        var on: Int32 = 1
        try sys("setsockopt(SO_PASSCRED)", path: path) { setsockopt(socket.raw, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size)) }
        // bind() takes a path: name it relative to the directory we hold, never by resolving /run/host again.
        let saved = try FileSystem.open(".", NSP_O_PATH | O_DIRECTORY)
        try sys("fchdir", path: path) { fchdir(directory.raw) }
        defer { _ = fchdir(saved.raw) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in name.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        let previous = umask(0o177)
        defer { umask(previous) }
        try asMachineRoot { () throws(SyscallError) in
            try sys("bind", path: path) {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(socket.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
        }
        return socket
    }

    // MARK: Paths

    enum Creation { case directory, file }

    /// Opens a path inside the machine as an O_PATH fd, creating it (and its parents) if asked.
    func target(_ path: String, create: Creation? = nil, scope: PathResolution.Scope = .noSymlinks) throws -> OwnedFD {
        let relative = String(path.drop { $0 == "/" })
        let failure: SyscallError
        do {
            return try PathResolution.open(relative, in: root.raw, flags: NSP_O_PATH, resolve: scope)
        } catch {
            failure = error
        }
        switch failure.errno {
        case .noSuchFileOrDirectory where create != nil:
            let (parent, name) = try parentAndName(path, createParents: true, scope: scope)
            try asMachineRoot { () throws(SyscallError) in
                if create == .directory {
                    try sys("mkdir", path: path) { mkdirat(parent.raw, name, 0o755) }
                } else {
                    let fd = try sys("open", path: path) { openat(parent.raw, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
                    Glibc.close(fd)
                }
            }
            return try PathResolution.open(relative, in: root.raw, flags: NSP_O_PATH, resolve: scope)
        case .improperLink:
            throw UserError("Mount destination \(path) resolves outside the machine's tree \(rootPath) through a symlink. Refusing.")
        case .tooManySymbolicLinkLevels:
            throw UserError("\(path) in the machine's tree \(rootPath) is a symlink. Refusing.")
        default:
            throw failure
        }
    }

    private func parentAndName(_ path: String, createParents: Bool = false, scope: PathResolution.Scope = .noSymlinks) throws -> (OwnedFD, String) {
        guard let slash = path.lastIndex(of: "/") else { throw UserError("Not an absolute path: \(path)") }
        let parent = slash == path.startIndex ? "/" : String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        return (try target(parent, create: createParents ? .directory : nil, scope: scope), name)
    }

    // MARK: Ownership

    private func ownedOptions(_ options: String) -> [String] {
        let words = options.split(separator: ",").map(String.init)
        return machineRoot == 0 ? words : words + ["uid=\(machineRoot)", "gid=\(machineRoot)"]
    }

    /// Creates files as the machine's root, so they are its own inside and the host's root never owns them.
    @discardableResult
    private func asMachineRoot<T>(_ body: () throws(SyscallError) -> T) throws(SyscallError) -> T {
        guard machineRoot != 0 else { return try body() }
        nsp_setfsgid(machineRoot)
        nsp_setfsuid(machineRoot)
        defer {
            nsp_setfsuid(0)
            nsp_setfsgid(0)
            // Each fsuid change is a credential change, which makes the kernel forget PDEATHSIG.
            ProcessLifetime.dieWithParent()
        }
        return try body()
    }

    static let inaccessibleName = ".swift-nspawn-inaccessible"

    /// The source of every mask: an empty file, mode 0000, owned by the host's root (whom the
    /// machine cannot act as), made in the machine's /run tmpfs and unlinked when the plan is done.
    /// It must sit on an attached mount: open_tree() clones from never-attached ones only since Linux 6.15.
    private func inaccessibleFile() throws -> OwnedFD {
        if let inaccessible { return inaccessible }
        let run = try target("/run")
        let fd = try sys("open", path: "/run/\(Self.inaccessibleName)") {
            openat(run.raw, Self.inaccessibleName, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0)
        }
        Glibc.close(fd)
        let file = try PathResolution.open("run/\(Self.inaccessibleName)", in: root.raw, flags: NSP_O_PATH, resolve: .noSymlinks)
        inaccessible = file
        return file
    }
}
