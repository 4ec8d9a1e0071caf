#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Carries out mount operations in the outer child, with the machine's tree attached at `root`.
/// Every target is opened below the root by openat2, and every file it creates belongs to the
/// machine's root.
final class MountExecutor {
    let kernel: any Kernel
    let root: OwnedFD
    let rootPath: String
    /// The host UID (and GID) of the machine's root when acting as the host's root: the base of its
    /// range, or 0 (also once we act as the machine's root itself, inside its user namespace).
    let machineRoot: UInt32
    /// The machine's user namespace, for idmapped binds; nil without one.
    let idmapUserNamespace: OwnedFD?
    /// The tree is ID-mapped: an idmap bind that may fall back (auto) shows raw owners where it is not.
    let treeMapped: Bool
    let quiet: Bool
    /// The binds' sources, opened before anything was mounted.
    let bindSources: BindSources?
    /// Asked once, when the plan first needs a file system only the machine's PID 1 can make.
    let receiveAPIMounts: () throws -> APIMounts

    private var apiMounts: APIMounts?
    /// The masks' sources, once made (see inaccessibleNode): stored properties rather than a
    /// dictionary, whose storage type the outer child would instantiate at run time.
    private var inaccessibleFile, inaccessibleDirectory: OwnedFD?
    private(set) var consoleMaster: OwnedFD?
    private(set) var consolePeer: OwnedFD?
    /// The bound notify socket, for the supervisor.
    private(set) var notify: OwnedFD?

    init(
        kernel: any Kernel, root: OwnedFD, rootPath: String, machineRoot: UInt32, idmapUserNamespace: OwnedFD?, treeMapped: Bool = true, quiet: Bool,
        bindSources: BindSources? = nil, receiveAPIMounts: @escaping () throws -> APIMounts = { APIMounts() }
    ) {
        self.kernel = kernel
        self.treeMapped = treeMapped
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
        guard let run = try? target("/run") else { return }
        func remove(_ kind: Creation, made node: OwnedFD?) {
            guard node != nil else { return }
            let name = Self.inaccessibleName(kind)
            try? kernel.remove(name, in: run, directory: kind == .directory, path: "/run/\(name)")
        }
        remove(.file, made: inaccessibleFile)
        remove(.directory, made: inaccessibleDirectory)
    }

    func run(_ operation: MountOperation) throws {
        switch operation {
        case .tmpfs, .bind, .overlay:
            let (mount, creation) = try detachedMount(operation)
            try attach(mount, for: operation, creating: creation)

        case .devpts(let path):
            let options = ["newinstance", "ptmxmode=0666", "mode=620", "gid=\(machineRoot + 5)"]
            let mount = try kernel.newMount("devpts", options: options, attributes: [.noSUID, .noExec])
            try kernel.moveMount(mount, onto: try target(path), name: path)

        case .deviceNodes(let directory, let nodes):
            let top = try target(directory)
            for node in nodes {
                // As the host's root (CAP_MKNOD is one of the capabilities a non-zero fsuid drops), then given away.
                let path = "\(directory)/\(node.name)"
                // An OCI bundle's node may lie in a subdirectory (net/tun): made as the machine's root
                // and found without following a symlink, as every mount point, so it lands in this /dev.
                let (dir, leaf) = node.name.contains("/") ? try parentAndName(path, createParents: true) : (top, node.name)
                var refused: SyscallError?
                do {
                    try kernel.makeDevice(leaf, in: dir, block: node.block, mode: mode_t(node.mode), device: node.deviceNumber, path: path)
                } catch {
                    refused = error
                }
                if let refused {
                    // Inside a user namespace (swift-nspawn nested in a machine) only the host's own node
                    // can be had, bound: as systemd-nspawn falls back to.
                    guard refused.errno == .notPermitted else { throw refused }
                    try bindHostNode(node, into: dir, leaf: leaf, path: path)
                    continue
                }
                try kernel.changeOwner(leaf, in: dir, uid: machineRoot + node.uid, gid: machineRoot + node.gid, path: path)
                try kernel.changeMode(leaf, in: dir, mode: mode_t(node.mode), path: path)  // past the umask
            }

        case .symlink(let path, let targetText):
            let (parent, name) = try parentAndName(path)
            try asMachineRoot { () throws(SyscallError) in
                try kernel.makeSymlink(name, in: parent, target: targetText, path: path)
            }

        case .directory(let path):
            _ = try target(path, create: .directory)

        case .hostInformation(let path, let files, let osRelease, let notifySocket, let credentials, let boundUsers):
            let mount = try kernel.newMount(
                "tmpfs", options: ownedOptions("mode=0755,size=1m,nr_inodes=\(64 + 8 * boundUsers.count)"), attributes: [.noSUID, .noDev, .noExec])
            try kernel.moveMount(mount, onto: try target(path), name: path)
            let attached = try target(path)
            try asMachineRoot { () throws(SyscallError) in
                for (name, contents) in files.sorted(by: { $0.key < $1.key }) {
                    try kernel.writeNewFile(name, in: attached, contents: Array(contents.utf8), mode: 0o444, path: "\(path)/\(name)")
                }
            }
            // Owned by the machine's root and writable by it alone; SO_PASSCRED makes the kernel
            // attach every sender's PID, which the supervisor checks.
            notify = try kernel.bindDatagramSocket(notifySocket, in: attached, path: "\(path)/\(notifySocket)")
            try kernel.changeOwner(notifySocket, in: attached, uid: machineRoot, gid: machineRoot, path: "\(path)/\(notifySocket)")
            if !credentials.isEmpty { try makeCredentials(credentials, in: attached, path: "\(path)/credentials") }
            if !boundUsers.isEmpty { try makeBoundUsers(boundUsers, in: attached, path: path) }
            if let osRelease {
                let source = try kernel.cloneMount(osRelease, in: nil, recursive: false, name: osRelease)
                try kernel.setMountAttributes(source, .lockedDown, recursive: false, name: osRelease)
                try kernel.moveMount(source, onto: try target("\(path)/os-release", create: .file), name: "\(path)/os-release")
            }
            try kernel.setMountAttributes(try target(path), .lockedDown, recursive: false, name: path)

        case .console(let path):
            try makeConsole(at: path)

        case .api(let filesystem, let path, _):
            if apiMounts == nil { apiMounts = try receiveAPIMounts() }
            guard let mount = apiMounts?[filesystem] else {
                throw UserError("The machine's PID 1 did not hand over its \(filesystem.rawValue) mount.")
            }
            try kernel.moveMount(mount, onto: try target(path, scope: .noSymlinks), name: path)

        case .hostAPI(let filesystem, let path, let attributes):
            let mount = try kernel.newMount(filesystem.rawValue, options: [], attributes: attributes)
            try kernel.moveMount(mount, onto: try target(path, scope: .noSymlinks), name: path)

        case .hostBind(let source, let path, let attributes):
            let mount = try kernel.cloneMount(source, in: nil, recursive: false, name: source)
            try kernel.setMountAttributes(mount, attributes, recursive: false, name: source)
            try kernel.moveMount(mount, onto: try target(path, scope: .noSymlinks), name: path)

        case .rebind(let path, let attributes, let required):
            let place: OwnedFD
            do {
                place = try target(path, scope: .noSymlinks)
            } catch let error as SyscallError where error.errno == .noSuchFileOrDirectory && !required {
                return
            }
            let mount = try kernel.cloneMount("", in: place, recursive: false, name: path)
            // /proc/sys/net is cloned from below the read-only /proc/sys: the one place to clear.
            try kernel.setMountAttributes(
                mount, set: attributes, clear: MountAttributes.lockedDown.subtracting(attributes), idmap: nil, recursive: false, name: path)
            try kernel.moveMount(mount, onto: place, name: path)

        case .mask(let path):
            let place: OwnedFD
            do {
                place = try target(path, scope: .noSymlinks)
            } catch let error as SyscallError where error.errno == .noSuchFileOrDirectory {
                return  // nothing there to hide
            }
            let mask = try kernel.cloneMount("", in: try inaccessibleNode(.file), recursive: false, name: path)
            try kernel.setMountAttributes(mask, .lockedDown, recursive: false, name: path)
            try kernel.moveMount(mask, onto: place, name: path)

        case .etcFile(let name, let source, let makeMountPoint):
            try coverEtcFile(name, with: source, makeMountPoint: makeMountPoint)
        }
    }

    /// --bind-user: userdb/ with each user's records (NAME.user, NAME.group, and UID.user and
    /// GID.group linking to them), and home/ with each home's mount point, all the machine root's.
    private func makeBoundUsers(_ users: [BoundUser], in hostDirectory: OwnedFD, path: String) throws {
        try asMachineRoot { () throws(SyscallError) in
            for name in ["userdb", "home"] { try kernel.makeDirectory(name, in: hostDirectory, mode: 0o755, path: "\(path)/\(name)") }
            let userdb = try kernel.openBeneath("userdb", in: hostDirectory, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
            let home = try kernel.openBeneath("home", in: hostDirectory, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
            for user in users {
                for (name, record) in [("\(user.name).user", user.userRecord), ("\(user.name).group", user.groupRecord)] {
                    try kernel.writeNewFile(name, in: userdb, contents: Array((record + "\n").utf8), mode: 0o644, path: "\(path)/userdb/\(name)")
                }
                try kernel.makeSymlink("\(user.machineID).user", in: userdb, target: "\(user.name).user", path: "\(path)/userdb/\(user.machineID).user")
                try kernel.makeSymlink("\(user.machineID).group", in: userdb, target: "\(user.name).group", path: "\(path)/userdb/\(user.machineID).group")
                try kernel.makeDirectory(user.name, in: home, mode: 0o755, path: user.machineHome)
            }
        }
    }

    /// A mount lands on the link itself (a symlink or a file may cover a symlink): the zone file it
    /// points to stays what it is for every other user of that zone.
    private func coverEtcFile(_ name: String, with source: EtcFileSource, makeMountPoint: Bool) throws {
        let path = "/etc/\(name)"
        let etc = try target("/etc", scope: .inRoot)
        func open() throws(SyscallError) -> OwnedFD {
            try kernel.openBeneath(name, in: etc, flags: NSP_O_PATH | O_NOFOLLOW, resolve: .noSymlinks)
        }
        if makeMountPoint, (try? open()) == nil { try makeWithHostPrivileges(.file, name, in: etc, path: path) }
        let place = try open()
        let mount: OwnedFD
        var made: (name: String, in: OwnedFD)?
        defer { if let made { try? kernel.remove(made.name, in: made.in, directory: false, path: "/run/\(made.name)") } }
        switch source {
        case .hostFile(let file):
            mount = try kernel.cloneMount(file, in: nil, recursive: false, name: file)
        case .symlink, .contents:
            // Made in the machine's /run tmpfs (open_tree clones only from an attached mount before
            // Linux 6.15), and its name removed once its clone is attached.
            let name = ".swift-nspawn-\(name)"
            let run = try target("/run")
            try asMachineRoot { () throws(SyscallError) in
                switch source {
                case .symlink(let text): try kernel.makeSymlink(name, in: run, target: text, path: "/run/\(name)")
                case .contents(let text): try kernel.writeNewFile(name, in: run, contents: Array(text.utf8), mode: 0o644, path: "/run/\(name)")
                case .hostFile: preconditionFailure("cloned above")
                }
            }
            made = (name, run)
            let file = try kernel.openBeneath(name, in: run, flags: NSP_O_PATH | O_NOFOLLOW, resolve: .noSymlinks)
            mount = try kernel.cloneMount("", in: file, recursive: false, name: path)
        }
        try kernel.setMountAttributes(mount, .lockedDown, recursive: false, name: path)
        try kernel.moveMount(mount, onto: place, name: path)
    }

    // MARK: The guest's mounts

    /// Makes a tmpfs or bind operation's mount and attaches it at `name` in the staging directory
    /// instead of its place in the tree; returns what its mount point in the tree must be.
    func stage(_ operation: MountOperation, in directory: OwnedFD, name: String, path: String) throws -> Creation {
        let (mount, creation) = try detachedMount(operation)
        try prepareMountPoint(for: operation, creating: creation)
        try kernel.make(creation, name, in: directory, modes: (directory: 0o700, file: 0o600), path: path)
        try kernel.moveMount(mount, onto: try kernel.openBeneath(name, in: directory, flags: NSP_O_PATH, resolve: .noSymlinks), name: path)
        return creation
    }

    /// The places of the guest's mounts staged so far (device and inode): a later one inside them is
    /// made in that mount once it is attached, never in the tree below it.
    private var guestPlaces: [(dev: UInt64, ino: UInt64)] = []

    /// Makes a staged mount's mount point in the tree now, while we are the host's root: a directory
    /// of mode 0555, or one whose owner the machine's user namespace does not map, does not stop it.
    /// Made as the machine root's own, found as the machine will resolve it (never out of the tree),
    /// and not made at all where it lies inside the place of an earlier guest mount (/tmp/x with /tmp),
    /// which would write into the tree below that mount.
    private func prepareMountPoint(for operation: MountOperation, creating creation: Creation) throws {
        guard let path = operation.path else { return }
        var scope = PathResolution.Scope.inRoot
        if case .tmpfs(_, _, _, let resolution) = operation { scope = resolution }
        if let place = try placeWithHostPrivileges(path, creation, scope: scope) {
            let st = try kernel.status(place, name: path)
            guestPlaces.append((UInt64(st.st_dev), UInt64(st.st_ino)))
        }
    }

    /// The place at `path`, made (with its missing parents) if missing; nil when it is, or would be,
    /// inside an earlier guest mount's place.
    private func placeWithHostPrivileges(_ path: String, _ creation: Creation, scope: PathResolution.Scope) throws -> OwnedFD? {
        let existing: OwnedFD
        do {
            existing = try kernel.openBeneath(String(path.drop { $0 == "/" }), in: root, flags: NSP_O_PATH, resolve: scope)
            return try isInsideGuestPlace(existing, path: path, scope: scope) ? nil : existing
        } catch let error as SyscallError where error.errno == .noSuchFileOrDirectory {
            // Made below.
        } catch let error as SyscallError where error.errno == .tooManySymbolicLinkLevels {
            throw UserError("\(path) in the machine's tree \(rootPath) is a symlink. Refusing.")
        }
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex || path.count > 1 else { return nil }
        let parentPath = slash == path.startIndex ? "/" : String(path[..<slash])
        let name = String(path[path.index(after: slash)...])
        guard let parent = try placeWithHostPrivileges(parentPath, .directory, scope: scope) else { return nil }
        try makeWithHostPrivileges(creation, name, in: parent, path: path)
        return try kernel.openBeneath(String(path.drop { $0 == "/" }), in: root, flags: NSP_O_PATH, resolve: scope)
    }

    /// Whether the place, or a directory above it up to the machine's root, is an earlier guest
    /// mount's place.
    private func isInsideGuestPlace(_ place: OwnedFD, path: String, scope: PathResolution.Scope) throws -> Bool {
        guard !guestPlaces.isEmpty else { return false }
        let top = try kernel.status(root, name: "/")
        var current = place
        // A file has no "..": it is compared itself, then the walk goes on from its directory.
        let own = try kernel.status(place, name: path)
        if !FileSystem.isDirectory(own.st_mode) {
            if guestPlaces.contains(where: { $0.dev == UInt64(own.st_dev) && $0.ino == UInt64(own.st_ino) }) { return true }
            let parent = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? ""
            current = try kernel.openBeneath(String(parent.drop { $0 == "/" }), in: root, flags: NSP_O_PATH | O_DIRECTORY, resolve: scope)
        }
        for _ in 0..<256 {
            let st = try kernel.status(current, name: path)
            if guestPlaces.contains(where: { $0.dev == UInt64(st.st_dev) && $0.ino == UInt64(st.st_ino) }) { return true }
            if st.st_dev == top.st_dev && st.st_ino == top.st_ino { return false }
            current = try kernel.open("..", in: current, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
        }
        return false
    }

    /// Attaches a tmpfs or bind operation's mount at its place in the tree, making the mount point.
    func attach(_ mount: OwnedFD, for operation: MountOperation, creating creation: Creation) throws {
        switch operation {
        case .tmpfs(let path, _, _, let resolution):
            try kernel.moveMount(mount, onto: try target(path, create: creation, scope: resolution), name: path)
        case .bind(let bind):
            try kernel.moveMount(mount, onto: try target(bind.path, create: creation, scope: .inRoot), name: bind.path)
        case .overlay(let overlay):
            try kernel.moveMount(mount, onto: try target(overlay.path, create: creation, scope: .inRoot), name: overlay.path)
        default:
            preconditionFailure("only tmpfs, bind and overlay mounts are the guest's")
        }
    }

    /// The detached mount a tmpfs or bind operation attaches, and what its mount point must be.
    /// A bind's source is opened once, following symlinks as systemd-nspawn does, and everything
    /// after uses that descriptor.
    func detachedMount(_ operation: MountOperation) throws -> (OwnedFD, Creation) {
        switch operation {
        case .tmpfs(_, let options, let attributes, _):
            return (try kernel.newMount("tmpfs", options: ownedOptions(options), attributes: attributes), .directory)
        case .bind(let bind):
            guard let bindSources else { preconditionFailure("binds need their sources opened") }
            let source = try bindSources.descriptor(for: bind.source)
            let st = try kernel.status(source, name: bind.source)
            let mount = try kernel.cloneMount("", in: source, recursive: bind.recursive, name: bind.source)
            switch bind.mapping {
            case .none:
                try kernel.setMountAttributes(mount, bind.attributes, recursive: true, name: bind.source)
            case .machine(let policy):
                guard let idmapUserNamespace else { throw UserError("\(bind.source): idmap needs the machine's user namespace.") }
                if policy == .preferred && !treeMapped {
                    try kernel.setMountAttributes(mount, bind.attributes, recursive: true, name: bind.source)
                } else {
                    try kernel.setMountAttributes(
                        mount, bind.attributes, idmap: policy, userNamespace: idmapUserNamespace, recursive: true, name: bind.source, quiet: quiet)
                }
            case .sourceOwnerAsRoot, .sourceOwnerAsTargetOwner:
                // The source's owner (on disk) shows as the machine's root, or as whoever owns the
                // destination (as the host sees it, through the tree's own mapping); nobody else has an ID there.
                var shownAs = (uid: machineRoot, gid: machineRoot)
                if bind.mapping == .sourceOwnerAsTargetOwner, let destination = try? target(bind.path, scope: .inRoot),
                    let owner = try? kernel.status(destination, name: bind.path)
                {
                    shownAs = (owner.st_uid, owner.st_gid)
                }
                let namespace = try kernel.makeIDMapNamespace(uidMap: "\(st.st_uid) \(shownAs.uid) 1\n", gidMap: "\(st.st_gid) \(shownAs.gid) 1\n")
                try kernel.setMountAttributes(
                    mount, bind.attributes, idmap: .required, userNamespace: namespace, recursive: true, name: bind.source, quiet: quiet)
            }
            return (mount, FileSystem.isDirectory(st.st_mode) ? .directory : .file)
        case .overlay(let overlay):
            return (try overlayMount(overlay), .directory)
        default:
            preconditionFailure("only tmpfs, bind and overlay mounts are the guest's")
        }
    }

    /// --overlay: each layer a detached clone (read-only below the upper one), ID-mapped to the
    /// machine as the tree is; a host upper layer cloned with its parent, where its work
    /// directory is (the kernel wants both on one mount); a throw-away one in a tmpfs of this
    /// namespace only. overlayfs clones its upper layer's mount, which must be attached for that:
    /// it is, in the workspace the tree sits in (this namespace's only, gone with it).
    private func overlayMount(_ overlay: OverlayOperation) throws -> OwnedFD {
        func attached(_ mount: OwnedFD) throws -> OwnedFD {
            let workspace = try kernel.open("..", in: root, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
            let name = ".overlay-\(overlay.path.utf8.count)-\(UInt32(truncatingIfNeeded: StableHash.fnv1a(Array(overlay.path.utf8))))"
            try kernel.makeDirectory(name, in: workspace, mode: 0o700, path: "\(rootPath)/\(name)")
            try kernel.moveMount(mount, onto: try kernel.open(name, in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0), name: overlay.path)
            return try kernel.open(name, in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
        }
        /// A layer's directory, and whether its clone is to be ID-mapped: a host one as the tree
        /// is, one of the tree not again (it is mapped already).
        func directory(_ layer: OverlayMount.Layer) throws -> (OwnedFD, String, Bool) {
            switch layer {
            case .host(let path):
                guard let bindSources else { preconditionFailure("overlays need their host layers opened") }
                return (try bindSources.descriptor(for: path), path, true)
            case .tree(let path):
                return (
                    try kernel.openBeneath(String(path.drop { $0 == "/" }), in: root, flags: NSP_O_PATH | O_DIRECTORY, resolve: .inRoot), "+" + path, false
                )
            case .temporary:
                preconditionFailure("only the upper layer is temporary")
            }
        }
        func layer(_ source: OwnedFD, _ attributes: MountAttributes, name: String, mapped: Bool) throws -> OwnedFD {
            let mount = try kernel.cloneMount("", in: source, recursive: false, name: name)
            if mapped, overlay.mapped, treeMapped, let idmapUserNamespace {
                try kernel.setMountAttributes(
                    mount, attributes, idmap: .required, userNamespace: idmapUserNamespace, recursive: false, name: name, quiet: quiet)
            } else {
                try kernel.setMountAttributes(mount, attributes, recursive: false, name: name)
            }
            return mount
        }
        let lowers = try overlay.lowers.map { lower in
            let (source, name, mapped) = try directory(lower)
            return try layer(source, [.readOnly], name: name, mapped: mapped)
        }
        var upper: OwnedFD?
        var work: OwnedFD?
        switch overlay.upper {
        case .host(let path)?:
            let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            guard let bindSources else { preconditionFailure("overlays need their host layers opened") }
            // Not ID-mapped: overlayfs writes it with the credentials of whoever mounted it, the
            // host's root, whom no mapping covers. What the machine writes there gets the host IDs
            // of its range, as a bind without idmap does.
            let both = try attached(try layer(try bindSources.descriptor(for: parent.isEmpty ? "/" : parent), [], name: parent, mapped: false))
            upper = try kernel.openBeneath(
                String(path[path.index(after: path.lastIndex(of: "/")!)...]), in: both, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
            let workPath = OverlayMount.workDirectory(for: path)
            work = try kernel.openBeneath(
                String(workPath[workPath.index(after: workPath.lastIndex(of: "/")!)...]), in: both, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
        case .temporary?:
            let layers = try attached(try kernel.newMount("tmpfs", options: ["mode=0755", "uid=\(machineRoot)", "gid=\(machineRoot)"], attributes: []))
            for name in ["upper", "work"] { try kernel.makeDirectory(name, in: layers, mode: 0o755, path: "\(overlay.path) (\(name))") }
            try kernel.changeOwner("upper", in: layers, uid: machineRoot, gid: machineRoot, path: "\(overlay.path) (upper)")
            upper = try kernel.openBeneath("upper", in: layers, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
            work = try kernel.openBeneath("work", in: layers, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
        case .tree?:
            preconditionFailure("an upper layer in the tree is refused when parsed")
        case nil:
            break
        }
        // overlayfs takes its lower layers from the highest down.
        return try kernel.newOverlay(lowers: lowers.reversed(), upper: upper, work: work, attributes: overlay.attributes, name: overlay.path)
    }

    /// Binds /dev/NAME of the namespace we were started in over an empty file, after checking that
    /// it is the character device it should be (the node itself, opened once without following).
    private func bindHostNode(_ node: DeviceNode, into directory: OwnedFD, leaf: String, path: String) throws {
        let source = "/dev/\(node.name)"
        let hostNode = try kernel.open(source, in: nil, flags: NSP_O_PATH | O_NOFOLLOW, mode: 0)
        let st = try kernel.status(hostNode, name: source)
        guard st.st_mode & S_IFMT == (node.block ? S_IFBLK : S_IFCHR), UInt64(st.st_rdev) == node.deviceNumber else {
            throw UserError("Cannot create \(path) (mknod: Operation not permitted), and \(source) is not the device to bind instead.")
        }
        try kernel.makeFile(leaf, in: directory, mode: 0o644, path: path)
        let mount = try kernel.cloneMount("", in: hostNode, recursive: false, name: source)
        try kernel.moveMount(mount, onto: try target(path), name: path)
    }

    // MARK: Credentials

    /// A ramfs (never swapped out) at `path`, mode 0500, with a file of mode 0400 for each credential,
    /// all the machine root's, then read-only, nosuid, nodev, noexec. Written as the host's root
    /// (the directory is not writable, even by its owner), then given away.
    private func makeCredentials(_ credentials: [Credential], in directory: OwnedFD, path: String) throws {
        try asMachineRoot { () throws(SyscallError) in try kernel.makeDirectory("credentials", in: directory, mode: 0o500, path: path) }
        let mount = try kernel.newMount("ramfs", options: ["mode=0500"], attributes: [.noSUID, .noDev, .noExec])
        try kernel.moveMount(mount, onto: try kernel.openBeneath("credentials", in: directory, flags: NSP_O_PATH, resolve: .noSymlinks), name: path)
        let attached = try kernel.openBeneath("credentials", in: directory, flags: NSP_O_PATH, resolve: .noSymlinks)
        for credential in credentials {
            try kernel.writeNewFile(credential.id, in: attached, contents: credential.value, mode: 0o400, path: "\(path)/\(credential.id)")
            try kernel.changeOwner(credential.id, in: attached, uid: machineRoot, gid: machineRoot, path: "\(path)/\(credential.id)")
        }
        try kernel.changeOwner("credentials", in: directory, uid: machineRoot, gid: machineRoot, path: path)
        try kernel.setMountAttributes(attached, .lockedDown, recursive: false, name: path)
    }

    // MARK: Console

    /// A pty from the machine's own devpts; its peer (opened from the master, never by path) is bound
    /// over /dev/console. The master goes to the supervisor, the peer to PID 1.
    private func makeConsole(at path: String) throws {
        let master = try asMachineRoot { () throws(SyscallError) in
            try kernel.openBeneath("dev/pts/ptmx", in: root, flags: O_RDWR | O_NOCTTY, resolve: .noSymlinks)
        }
        let peer = try kernel.openPTYPeer(master, name: "/dev/pts/ptmx")
        let mount = try kernel.cloneMount("", in: peer, recursive: false, name: path)
        try kernel.moveMount(mount, onto: try target(path, create: .file, scope: .noSymlinks), name: path)
        consoleMaster = master
        consolePeer = peer
    }

    // MARK: Paths

    enum Creation { case directory, file }

    /// Opens a path inside the machine as an O_PATH fd, creating it (and its parents) if asked.
    func target(_ path: String, create: Creation? = nil, scope: PathResolution.Scope = .noSymlinks) throws -> OwnedFD {
        let relative = String(path.drop { $0 == "/" })
        let failure: SyscallError
        do {
            return try kernel.openBeneath(relative, in: root, flags: NSP_O_PATH, resolve: scope)
        } catch {
            failure = error
        }
        switch failure.errno {
        case .noSuchFileOrDirectory where create != nil:
            let (parent, name) = try parentAndName(path, createParents: true, scope: scope)
            if let create { try asMachineRoot { () throws(SyscallError) in try kernel.make(create, name, in: parent, path: path) } }
            return try kernel.openBeneath(relative, in: root, flags: NSP_O_PATH, resolve: scope)
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

    /// A mount point made as the machine's root (an ID-mapped tree stores only IDs its mapping has),
    /// with the host root's right to override permissions: a directory of mode 0555, or one whose
    /// owner the machine's user namespace does not map, does not stop it.
    private func makeWithHostPrivileges(_ creation: Creation, _ name: String, in parent: OwnedFD, path: String) throws(SyscallError) {
        try asMachineRoot { () throws(SyscallError) in
            if machineRoot != 0 { try kernel.raiseFileOverrides() }
            try kernel.make(creation, name, in: parent, path: path)
        }
    }

    /// Creates files as the machine's root, so they are its own inside and the host's root never owns them.
    @discardableResult
    private func asMachineRoot<T>(_ body: () throws(SyscallError) -> T) throws(SyscallError) -> T {
        guard machineRoot != 0 else { return try body() }
        kernel.setFilesystemIDs(uid: machineRoot, gid: machineRoot)
        defer { kernel.setFilesystemIDs(uid: 0, gid: 0) }
        return try body()
    }

    static func inaccessibleName(_ kind: Creation) -> String {
        kind == .file ? ".swift-nspawn-inaccessible" : ".swift-nspawn-inaccessible-dir"
    }

    /// The source of every mask: an empty file (or directory), mode 0000, owned by the host's root
    /// (whom the machine cannot act as), made in the machine's /run tmpfs and removed when the plan is
    /// done. It must sit on an attached mount: open_tree() clones from never-attached ones only since
    /// Linux 6.15.
    private func inaccessibleNode(_ kind: Creation) throws -> OwnedFD {
        if let node = kind == .file ? inaccessibleFile : inaccessibleDirectory { return node }
        let name = Self.inaccessibleName(kind)
        try kernel.make(kind, name, in: try target("/run"), modes: (directory: 0, file: 0), path: "/run/\(name)")
        let node = try kernel.openBeneath("run/\(name)", in: root, flags: NSP_O_PATH, resolve: .noSymlinks)
        if kind == .file { inaccessibleFile = node } else { inaccessibleDirectory = node }
        return node
    }

    /// --inaccessible=PATH: PATH, which must exist, covered by an empty node of its kind that nobody
    /// in the machine may open; found in `directory` (the tree, or a staged mount of the guest's).
    func makeInaccessible(_ relative: String, in directory: OwnedFD, path: String) throws {
        let place: OwnedFD
        if relative.isEmpty {
            place = directory  // the place of a guest mount itself
        } else {
            do {
                place = try kernel.openBeneath(relative, in: directory, flags: NSP_O_PATH, resolve: .inRoot)
            } catch {
                throw UserError("Failed to make \(path) inaccessible: \(error.errno.message)")
            }
            // Found in the tree through a symlink of the image's, but inside the place of a guest
            // mount: covering it there would cover what that mount hides, not what it shows.
            if directory === root, try isInsideGuestPlace(place, path: path, scope: .inRoot) {
                throw UserError(
                    "--inaccessible=\(path) leads, through a symlink in the tree, into the place of a --bind or --tmpfs given; name it by the path that mount has. Refusing."
                )
            }
        }
        let isDirectory = FileSystem.isDirectory(try kernel.status(place, name: path).st_mode)
        let mask = try kernel.cloneMount("", in: try inaccessibleNode(isDirectory ? .directory : .file), recursive: false, name: path)
        try kernel.setMountAttributes(mask, .lockedDown, recursive: false, name: path)
        try kernel.moveMount(mask, onto: place, name: path)
    }
}

extension Kernel {
    /// mkdirat or an empty file (O_CREAT|O_EXCL), as `creation` says.
    func make(
        _ creation: MountExecutor.Creation, _ name: String, in parent: OwnedFD, modes: (directory: mode_t, file: mode_t) = (0o755, 0o644), path: String
    ) throws(SyscallError) {
        if creation == .directory {
            try makeDirectory(name, in: parent, mode: modes.directory, path: path)
        } else {
            try makeFile(name, in: parent, mode: modes.file, path: path)
        }
    }

    /// A new file (never an existing one, never through a symlink) with these contents.
    func writeNewFile(_ name: String, in directory: OwnedFD, contents: [UInt8], mode: mode_t, path: String) throws(SyscallError) {
        let file = try open(name, in: directory, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: mode)
        try write(contents, to: file, name: path)
    }

    /// Sets a mount's attributes, ID-mapped to the machine's user namespace as `idmap` says: a file
    /// system that cannot be ID-mapped fails the start (required) or shows its raw owners (preferred).
    /// Returns whether the mount is ID-mapped.
    @discardableResult
    func setMountAttributes(
        _ mount: OwnedFD, _ attributes: MountAttributes, idmap: IDMapping, userNamespace: OwnedFD?, recursive: Bool, name: String, quiet: Bool
    ) throws -> Bool {
        guard idmap != .none, let userNamespace else {
            try setMountAttributes(mount, attributes, recursive: recursive, name: name)
            return false
        }
        do {
            try setMountAttributes(mount, set: attributes, clear: [], idmap: userNamespace, recursive: recursive, name: name)
            return true
        } catch {
            let fileSystem = FileSystemName.of(fileSystemType(mount))
            guard idmap == .preferred else {
                throw UserError(
                    "ID mapped mounts are apparently not available for \(name) on \(fileSystem) (\(error)), sorry. Use --private-users-ownership=off for the tree, noidmap for a bind."
                )
            }
            if !quiet { printError("ID mapped mounts are not available for \(name) on \(fileSystem); showing its raw owners.") }
            try setMountAttributes(mount, attributes, recursive: recursive, name: name)
            return false
        }
    }
}
