#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The outer child: host-privileged, in a mount namespace of its own, it carries out the plan's
/// mount table and hands the finished namespace to the machine's PID 1.
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
enum OuterChild {
    static func run(_ plan: MachinePlan, userNamespace: OwnedFD?, supervisor: SetupChannel, inner: SetupChannel) throws -> Never {
        let mounts = plan.mounts
        let treePath = mounts.root.path
        // Nothing we mount may show up on the host; host mounts may still come and go below us.
        try sys("mount", path: "/") { mount(nil, "/", nil, UInt(MS_SLAVE | MS_REC), nil) }
        // Before the workspace covers the tree's directory: a bind source may lie inside it.
        let sources = try BindSources(mounts.guestMounts)
        let tree = try MountCalls.cloneTree(treePath, recursive: true)
        try MountExecutor.setAttributes(
            tree, mounts.root.attributes, idmap: mounts.root.idmap, userNamespace: userNamespace, recursive: true, path: treePath, quiet: plan.quiet)

        // Searchable by all: the machine's root, which the host's files above it may shut out,
        // finds its way in from descriptors of the workspace opened before it became that root.
        let workspaceMount = try MountCalls.newMount("tmpfs", options: ["mode=0755", "size=64k", "nr_inodes=1k"], attributes: [.noSUID, .noDev, .noExec])
        try MountCalls.attach(workspaceMount, onto: try FileSystem.open(treePath, NSP_O_PATH | O_DIRECTORY), path: treePath)
        let workspace = try FileSystem.open(treePath, NSP_O_PATH | O_DIRECTORY)
        for name in ["root", "stage"] { try sys("mkdir", path: "\(treePath)/\(name)") { mkdirat(workspace.raw, name, 0o755) } }
        let stagePath = "\(treePath)/stage"
        try MountCalls.attach(tree, onto: try FileSystem.open("root", NSP_O_PATH | O_DIRECTORY, at: workspace.raw), path: treePath)

        let executor = MountExecutor(
            root: try FileSystem.open("root", NSP_O_PATH | O_DIRECTORY, at: workspace.raw), rootPath: treePath, machineRoot: plan.idRange?.base ?? 0,
            idmapUserNamespace: userNamespace, quiet: plan.quiet, bindSources: sources,
            receiveAPIMounts: {
                let fds = try inner.receive(.apiMounts, from: "The machine's PID 1")
                return Dictionary(uniqueKeysWithValues: zip(mounts.apiFilesystems.map(\.0), fds))
            })
        for operation in mounts.hostMounts { try executor.run(operation) }
        var staged: [MountExecutor.Creation] = []
        if mounts.copiedIntoUserNamespace {
            let stage = try FileSystem.open(stagePath, NSP_O_PATH | O_DIRECTORY)
            for (index, operation) in mounts.guestMounts.enumerated() {
                staged.append(try executor.stage(operation, in: stage, name: "\(index)", path: "\(stagePath)/\(index)"))
            }
        } else {
            for operation in mounts.guestMounts { try executor.run(operation) }
        }
        executor.finish()
        sources.close()

        // Through the host's procfs, where this process has a PID (the tree's /proc is the machine's).
        let hostProc = try FileSystem.open("/proc", NSP_O_PATH | O_DIRECTORY)
        var root = executor.root
        if let userNamespace, mounts.copiedIntoUserNamespace {
            try sys("setns", path: "user") { nsp_setns(userNamespace.raw, NSP_CLONE_NEWUSER) }
            try sys("unshare", path: "mount") { nsp_unshare(NSP_CLONE_NEWNS) }
            // The workspace as this copy has it, found while we are still the host's root.
            let copiedWorkspace = try FileSystem.open(treePath, NSP_O_PATH | O_DIRECTORY)
            // The machine's root from here on: what we create is its own, and its capabilities
            // (in its user namespace) are what we act with.
            try MachineRoot.become()
            root = try attachGuestMounts(mounts, staged: staged, workspace: copiedWorkspace, quiet: plan.quiet)
        }
        try switchRoot(to: root, path: treePath)

        let namespace = try FileSystem.open("thread-self/ns/mnt", O_RDONLY, at: hostProc.raw)
        try inner.send(.mountNamespace, fds: [namespace] + [executor.consolePeer].compactMap { $0 })
        try supervisor.send(.treeReady, fds: [executor.notify, executor.consoleMaster].compactMap { $0 })
        _exit(0)
    }

    /// In the copy the machine's user namespace owns: the tree bound again (the root of a bind is
    /// not locked, so it can become the root), and each staged mount bound onto its place in it.
    /// Every descriptor of these mounts is closed before the guest may want to unmount them (an
    /// open one would make that EBUSY). Returns the new root.
    private static func attachGuestMounts(_ mounts: MountPlan, staged: [MountExecutor.Creation], workspace: OwnedFD, quiet: Bool) throws -> OwnedFD {
        // The tree first, so that mount IDs (and /proc/self/mountinfo's order) go from parents to children.
        let tree = try MountCalls.cloneTree("root", in: workspace, recursive: true, name: mounts.root.path)
        try MountCalls.attach(tree, onto: try FileSystem.open("root", NSP_O_PATH | O_DIRECTORY, at: workspace.raw), path: mounts.root.path)
        tree.close()
        let stage = try FileSystem.open("stage", NSP_O_PATH | O_DIRECTORY, at: workspace.raw)
        var clones: [OwnedFD] = []
        for (index, operation) in mounts.guestMounts.enumerated() {
            var recursive = false
            if case .bind(let bind) = operation { recursive = bind.recursive }
            clones.append(try MountCalls.cloneTree("\(index)", in: stage, recursive: recursive, name: operation.path))
        }
        let executor = MountExecutor(
            root: try FileSystem.open("root", NSP_O_PATH | O_DIRECTORY, at: workspace.raw), rootPath: mounts.root.path, machineRoot: 0,
            idmapUserNamespace: nil, quiet: quiet)
        for ((operation, creation), clone) in zip(zip(mounts.guestMounts, staged), clones) {
            try executor.attach(clone, for: operation, creating: creation)
            clone.close()
        }
        return executor.root
    }

    /// pivot_root into the tree: pivot_root(".", ".") stacks the old root on the new one, and
    /// detaching it leaves only the tree (the workspace goes with the host's tree).
    private static func switchRoot(to root: OwnedFD, path: String) throws {
        try sys("fchdir", path: path) { fchdir(root.raw) }
        try sys("pivot_root", path: path) { nsp_pivot_root(".", ".") }
        try sys("umount2", path: "/") { umount2(".", Int32(MNT_DETACH)) }
        try sys("chdir", path: "/") { chdir("/") }
    }
}

/// The sources of the plan's binds, each opened once (O_PATH, following symlinks as
/// systemd-nspawn does) before anything covers them; every later step uses the descriptor.
final class BindSources {
    private var opened: [String: OwnedFD] = [:]

    init(_ operations: [MountOperation]) throws {
        for case .bind(let bind) in operations where opened[bind.source] == nil {
            do {
                opened[bind.source] = try FileSystem.open(bind.source, NSP_O_PATH)
            } catch {
                throw UserError("Failed to resolve bind source \(bind.source): \(error.errno.message)")
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
