#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Carries out a mount plan in the outer child: host-privileged, in a mount namespace of its own.
///
/// It works in a small tmpfs laid over the tree's own directory, seen only in its namespace: the
/// tree is attached at root/ in it, and the guest's own mounts are made in stage/, apart from the
/// tree. With a user namespace, the namespace is then copied into one the machine's user namespace
/// owns, which locks every mount in it (the machine's root can neither unmount a mask nor clear a
/// read-only flag; mount_namespaces(7)). Inside that copy the tree is bound again, and each staged
/// mount bound onto its place: the root of a bind is never locked, but its flags and its submounts
/// stay so (fs/namespace.c, __do_loopback). So the guest may unmount /tmp and the user's binds at
/// its shutdown, but never make a read-only bind writable or reveal what a submount hides. Finally
/// the tree becomes the root (pivot_root) and the workspace goes with the host's tree.
struct MountNamespaceBuilder {
    let kernel: any Kernel
    let plan: MountPlan
    /// The host UID of the machine's root (the base of its range), or 0.
    let machineRoot: UInt32
    let quiet: Bool

    /// Builds the namespace and makes the tree its root. Returns the executor of the host's mounts,
    /// which holds the notify socket and the console's pty.
    func build(userNamespace: OwnedFD?, receiveAPIMounts: @escaping () throws -> APIMounts) throws -> MountExecutor {
        let treePath = plan.root.path
        // Nothing we mount may show up on the host; host mounts may still come and go below us.
        try kernel.makeMountsSlave()
        // Before the workspace covers the tree's directory: a bind source may lie inside it. The
        // tree's directory is looked up once, as the host's root; everything after uses descriptors.
        let sources = try BindSources(plan.guestMounts, kernel: kernel)
        let treeDirectory = try openRoot()
        // -x: the tree alone (an overlay layer is one mount), read-only, below the overlay.
        // --volatile=yes: the tree's /usr alone, read-only, goes into a tmpfs root; found in the
        // tree as the machine resolves it (a link the machine made cannot lead it out).
        let ephemeral = plan.root.ephemeral
        let source =
            plan.root.volatileRoot ? try kernel.openBeneath("usr", in: treeDirectory, flags: NSP_O_PATH | O_DIRECTORY, resolve: .inRoot) : treeDirectory
        var tree = try kernel.cloneMount("", in: source, recursive: !ephemeral, name: treePath)
        // The tree falls back to its raw owners where it cannot be ID-mapped (auto); then the
        // idmap binds fall back too, so the machine sees one kind of owner.
        let treeMapped = try kernel.setMountAttributes(
            tree, ephemeral || plan.root.volatileRoot ? plan.root.attributes.union(.readOnly) : plan.root.attributes, idmap: plan.root.idmap,
            userNamespace: userNamespace,
            recursive: true, name: treePath, quiet: quiet)

        // Searchable by all: after the copy, the machine's root (not the host's) finds the tree and
        // the stage in it, starting from the working directory.
        let workspace = try kernel.newMount("tmpfs", options: ["mode=0755", "size=64k", "nr_inodes=1k"], attributes: [.noSUID, .noDev, .noExec])
        try kernel.moveMount(workspace, onto: treeDirectory, name: treePath)
        for name in ["root", "stage"] + (ephemeral || plan.root.volatileRoot ? ["ephemeral"] : []) {
            try kernel.makeDirectory(name, in: workspace, mode: 0o755, path: "\(treePath)/\(name)")
        }
        let layers = ephemeral ? try throwAwayLayers(in: workspace) : nil
        if let layers { tree = try overlay(over: tree, layers: layers, name: "root") }
        if plan.root.volatileRoot { tree = try volatileRoot(usr: tree, tree: treeDirectory, in: workspace) }
        try kernel.moveMount(tree, onto: try kernel.open("root", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0), name: treePath)
        // The root as attached, found again now that the tree is there.
        let root = try kernel.open("root", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
        if let layers {
            // A disk image's other file systems, each under a throw-away overlay of its own too.
            for (index, relative) in plan.root.submounts.enumerated() {
                // Found again without symbolic links (the image has none on the way: DiskImage checked).
                let place = try kernel.openBeneath(relative, in: treeDirectory, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks)
                let lower = try kernel.cloneMount("", in: place, recursive: false, name: "\(treePath)/\(relative)")
                _ = try kernel.setMountAttributes(
                    lower, plan.root.attributes.union(.readOnly), idmap: plan.root.idmap, userNamespace: userNamespace, recursive: false,
                    name: "\(treePath)/\(relative)", quiet: quiet)
                try kernel.moveMount(
                    try overlay(over: lower, layers: layers, name: "\(index)"),
                    onto: try kernel.openBeneath(relative, in: root, flags: NSP_O_PATH | O_DIRECTORY, resolve: .noSymlinks), name: "\(treePath)/\(relative)")
            }
        }
        let hostExecutor = MountExecutor(
            kernel: kernel, root: root, rootPath: treePath, machineRoot: machineRoot, idmapUserNamespace: userNamespace, treeMapped: treeMapped,
            quiet: quiet, bindSources: sources, receiveAPIMounts: receiveAPIMounts)

        for operation in plan.hostMounts { try hostExecutor.run(operation) }
        var staged: [MountExecutor.Creation] = []
        // Staged mounts with an --inaccessible path inside: cloned with their submounts.
        var maskedStages = Set<Int>()
        if plan.copiedIntoUserNamespace {
            let stage = try kernel.open("stage", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
            for (index, operation) in plan.guestMounts.enumerated() {
                staged.append(try hostExecutor.stage(operation, in: stage, name: "\(index)", path: "\(treePath)/stage/\(index)"))
            }
            // Covered now, as the host's root, so that the machine's copy locks them too.
            for path in plan.inaccessible {
                let (guestMount, relative) = plan.inaccessibleLocation(path)
                if let guestMount {
                    let mount = try kernel.open("\(guestMount)", in: stage, flags: NSP_O_PATH, mode: 0)
                    try hostExecutor.makeInaccessible(relative, in: mount, path: path)
                    maskedStages.insert(guestMount)
                } else {
                    try hostExecutor.makeInaccessible(relative, in: root, path: path)
                }
            }
        } else {
            for operation in plan.guestMounts { try hostExecutor.run(operation) }
            for path in plan.inaccessible { try hostExecutor.makeInaccessible(String(path.drop { $0 == "/" }), in: root, path: path) }
        }
        hostExecutor.finish()
        sources.close()

        var newRoot = root
        if let userNamespace, plan.copiedIntoUserNamespace {
            // From the workspace as the working directory, which unshare moves into the copy: found
            // there without a lookup by name, which the machine's root could not make where the
            // host's directories above the tree shut it out.
            try kernel.changeDirectory(to: workspace, name: treePath)
            try kernel.enter(userNamespace, .user, name: "user")
            try kernel.unshare(.mount)
            let copiedWorkspace = try kernel.open(".", in: nil, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
            // The machine's root from here on: what we create is its own, and its capabilities
            // (in its user namespace) are what we act with.
            try kernel.becomeRoot()
            newRoot = try attachGuestMounts(staged: staged, maskedStages: maskedStages, workspace: copiedWorkspace)
        }
        try switchRoot(to: newRoot)
        return hostExecutor
    }

    /// -x: the machine's root is an overlay whose lower layer is the (ID-mapped, read-only) tree and
    /// whose upper layer lives in a tmpfs of the workspace, in this namespace only: the tree is
    /// never written, and everything the machine wrote goes with the namespace, on every exit path
    /// (nothing is made on the host to clean up). This is that tmpfs.
    private func throwAwayLayers(in workspace: OwnedFD) throws -> OwnedFD {
        let layers = try kernel.newMount("tmpfs", options: ["mode=0755"], attributes: [])
        try kernel.moveMount(
            layers, onto: try kernel.open("ephemeral", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0), name: "\(plan.root.path) (ephemeral)")
        return try kernel.open("ephemeral", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
    }

    /// A throw-away overlay over `lower`, its upper and work directories NAME.upper and NAME.work
    /// in the throw-away tmpfs. The upper directory is the overlay's root, so it takes the owner
    /// and mode the machine sees on the lower layer's root.
    private func overlay(over lower: OwnedFD, layers directory: OwnedFD, name: String) throws -> OwnedFD {
        let path = "\(plan.root.path) (ephemeral)"
        let root = try kernel.status(lower, name: plan.root.path)
        let upper = "\(name).upper"
        let work = "\(name).work"
        for name in [upper, work] { try kernel.makeDirectory(name, in: directory, mode: 0o755, path: "\(path)/\(name)") }
        try kernel.changeOwner(upper, in: directory, uid: root.st_uid, gid: root.st_gid, path: "\(path)/\(upper)")
        try kernel.changeMode(upper, in: directory, mode: root.st_mode & 0o7777, path: "\(path)/\(upper)")
        do {
            return try kernel.newOverlay(
                lowers: [lower], upper: try kernel.open(upper, in: directory, flags: NSP_O_PATH | O_DIRECTORY, mode: 0),
                work: try kernel.open(work, in: directory, flags: NSP_O_PATH | O_DIRECTORY, mode: 0), attributes: plan.root.attributes, name: path)
        } catch {
            guard error.syscall == "fsconfig", error.errno.rawValue == EINVAL else { throw error }
            throw UserError("\(error): the kernel takes no ID-mapped detached mount as an overlay layer (Linux 6.15 does); -x and --volatile=overlay need it.")
        }
    }

    /// --volatile=yes: the machine's root is a tmpfs of the outer child's namespace, owned by the
    /// machine's root, holding the tree's /usr (ID-mapped, read-only), the mount points of the API
    /// file systems, and the tree's top-level links into /usr (bin → usr/bin and the like).
    private func volatileRoot(usr: OwnedFD, tree: OwnedFD, in workspace: OwnedFD) throws -> OwnedFD {
        let path = "\(plan.root.path) (volatile)"
        try kernel.moveMount(
            try kernel.newMount("tmpfs", options: ["mode=0755", "uid=\(machineRoot)", "gid=\(machineRoot)"], attributes: [.noDev]),
            onto: try kernel.open("ephemeral", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0), name: path)
        let root = try kernel.open("ephemeral", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
        for name in ["usr", "dev", "proc", "sys", "run", "tmp", "etc", "var", "root"] {
            try kernel.makeDirectory(name, in: root, mode: name == "tmp" ? 0o1777 : 0o755, path: "\(path)/\(name)")
            try kernel.changeOwner(name, in: root, uid: machineRoot, gid: machineRoot, path: "\(path)/\(name)")
        }
        for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            switch PathEntry.look(name, in: tree.raw) {
            case .symlink(let target) where target.hasPrefix("usr/") || target.hasPrefix("/usr/"):
                try kernel.makeSymlink(name, in: root, target: target, path: "\(path)/\(name)")
            case .directory where name == "bin" || name == "sbin":
                // As systemd-nspawn: a /bin of its own would be missing from the machine.
                throw UserError("--volatile=yes needs a tree whose /usr is merged: \(plan.root.path)/\(name) is a directory, not a link into /usr.")
            default:
                continue
            }
        }
        try kernel.moveMount(usr, onto: try kernel.open("usr", in: root, flags: NSP_O_PATH | O_DIRECTORY, mode: 0), name: "\(path)/usr")
        return try kernel.cloneMount("ephemeral", in: workspace, recursive: true, name: path)
    }

    /// The tree's directory, or --pivot-root's found in it anew: between two boots the machine could
    /// have made the path lead elsewhere.
    private func openRoot() throws -> OwnedFD {
        guard let pivot = plan.root.pivot else { return try kernel.open(plan.root.path, in: nil, flags: NSP_O_PATH | O_DIRECTORY, mode: 0) }
        let tree = try kernel.open(pivot.tree, in: nil, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
        return try kernel.openBeneath(pivot.relative, in: tree, flags: NSP_O_PATH | O_DIRECTORY, resolve: .inRoot)
    }

    /// In the copy the machine's user namespace owns: the tree bound again (the root of a bind is
    /// not locked, so it can become the root), and each staged mount bound onto its place in it.
    /// Every descriptor of these mounts is closed before the guest may want to unmount them (an
    /// open one would make that EBUSY). Returns the new root.
    private func attachGuestMounts(staged: [MountExecutor.Creation], maskedStages: Set<Int>, workspace: OwnedFD) throws -> OwnedFD {
        // The tree first, so that mount IDs (and /proc/self/mountinfo's order) go from parents to children.
        let tree = try kernel.cloneMount("root", in: workspace, recursive: true, name: plan.root.path)
        try kernel.moveMount(tree, onto: try kernel.open("root", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0), name: plan.root.path)
        tree.close()
        let stage = try kernel.open("stage", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
        var clones: [OwnedFD] = []
        for index in plan.guestMounts.indices {
            let operation = plan.guestMounts[index]
            var recursive = maskedStages.contains(index)
            if case .bind(let bind) = operation { recursive = recursive || bind.recursive }
            clones.append(try kernel.cloneMount("\(index)", in: stage, recursive: recursive, name: operation.path ?? "\(index)"))
        }
        let executor = MountExecutor(
            kernel: kernel, root: try kernel.open("root", in: workspace, flags: NSP_O_PATH | O_DIRECTORY, mode: 0), rootPath: plan.root.path,
            machineRoot: 0, idmapUserNamespace: nil, quiet: quiet)
        // By index, not zip(zip(…), …): the outer child would instantiate the nested iterators'
        // metadata at run time, ~70 µs of its start, which is on the machine's critical path.
        for index in clones.indices {
            try executor.attach(clones[index], for: plan.guestMounts[index], creating: staged[index])
            clones[index].close()
        }
        return executor.root
    }

    /// pivot_root into the tree: pivot_root(".", ".") stacks the old root on the new one, and
    /// detaching it leaves only the tree (the workspace goes with the host's tree).
    private func switchRoot(to root: OwnedFD) throws {
        try kernel.changeDirectory(to: root, name: plan.root.path)
        try kernel.pivotRoot(name: plan.root.path)
        try kernel.detachMount(".")
        try kernel.changeDirectory("/")
        if let propagation = plan.root.propagation, propagation != .private { try kernel.setRootPropagation(propagation) }
    }
}

/// The sources of the plan's binds, each opened once (O_PATH, following symlinks as
/// systemd-nspawn does) before anything covers them; every later step uses the descriptor.
final class BindSources {
    private var opened: [String: OwnedFD] = [:]

    init(_ operations: [MountOperation], kernel: any Kernel) throws {
        var sources: [(String, String)] = []
        for operation in operations {
            switch operation {
            case .bind(let bind):
                sources.append((bind.source, "bind source"))
            case .overlay(let overlay):
                for case .host(let path) in overlay.lowers { sources.append((path, "overlay layer")) }
                // The upper layer's parent, where its work directory is too.
                if case .host(let path)? = overlay.upper {
                    let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
                    sources.append((parent.isEmpty ? "/" : parent, "overlay layer"))
                }
            default:
                continue
            }
        }
        for (source, what) in sources where opened[source] == nil {
            do {
                opened[source] = try kernel.open(source, in: nil, flags: NSP_O_PATH, mode: 0)
            } catch {
                throw UserError("Failed to resolve \(what) \(source): \(error.errno.message)")
            }
        }
    }

    func descriptor(for source: String) throws -> OwnedFD {
        guard let fd = opened[source] else { throw UserError("Bind source \(source) was not opened.") }
        return fd
    }

    func close() {
        for fd in opened.values { fd.close() }
        opened = [:]
    }
}
