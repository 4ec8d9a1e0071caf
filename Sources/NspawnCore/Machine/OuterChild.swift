#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The outer child: host-privileged, in a mount namespace of its own. It builds the machine's tree
/// there, then copies that namespace into one owned by the machine's user namespace, which locks
/// every mount in it: the machine's root can neither unmount a mask nor make a read-only mount
/// writable (mount_namespaces(7), "Restrictions on mount namespaces").
enum OuterChild {
    static func run(_ spec: MachineSpec, userNamespace: OwnedFD?, supervisor: SetupChannel, inner: SetupChannel) throws -> Never {
        let rootPath = spec.image.path
        // Nothing we mount may show up on the host; host mounts may still come and go below us.
        try sys("mount", path: "/") { mount(nil, "/", nil, UInt(MS_SLAVE | MS_REC), nil) }

        let tree = try MountCalls.cloneTree(rootPath, recursive: true)
        // nodev: a device node the image ships must not open a host device (the cgroup's device
        // filter says the same; this holds where no filter can be attached).
        let attributes: MountAttributes = spec.plan.readOnlyRoot ? [.readOnly, .noDev] : [.noDev]
        var idmap: OwnedFD? = nil
        if let userNamespace, spec.ownership != .off, let range = spec.idRange, range.base != 0 {
            do {
                try MountCalls.setAttributes(tree, attributes, idmapUserNamespace: userNamespace, recursive: true, path: rootPath)
                idmap = userNamespace
            } catch {
                guard spec.ownership == .auto else {
                    throw UserError(
                        "ID mapped mounts are apparently not available for \(rootPath) (\(error)), sorry. Use --private-users-ownership=off to show raw owners."
                    )
                }
                if !spec.quiet { printError("ID mapped mounts are not available for \(rootPath); showing its raw owners.") }
            }
        }
        if idmap == nil { try MountCalls.setAttributes(tree, attributes, recursive: true, path: rootPath) }
        try MountCalls.attach(tree, onto: try FileSystem.open(rootPath, NSP_O_PATH | O_DIRECTORY), path: rootPath)

        let executor = MountExecutor(
            root: try FileSystem.open(rootPath, NSP_O_PATH | O_DIRECTORY), rootPath: rootPath,
            machineRoot: spec.idRange?.base ?? 0, idmapUserNamespace: idmap, ownershipFallback: spec.ownership == .auto, quiet: spec.quiet,
            receiveAPIMounts: {
                let fds = try inner.receive(.apiMounts, from: "The machine's PID 1")
                return Dictionary(uniqueKeysWithValues: zip(spec.plan.apiFilesystems, fds))
            })
        try executor.run(spec.plan)

        // pivot_root here, while the tree is still an ordinary mount: in the copy made for the
        // machine's user namespace it is locked, and pivot_root refuses locked mounts.
        let hostProc = try FileSystem.open("/proc", NSP_O_PATH | O_DIRECTORY)
        try sys("fchdir", path: rootPath) { fchdir(executor.root.raw) }
        try sys("pivot_root", path: rootPath) { nsp_pivot_root(".", ".") }
        // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the tree.
        try sys("umount2", path: "/") { umount2(".", Int32(MNT_DETACH)) }
        try sys("chdir", path: "/") { chdir("/") }

        if let userNamespace {
            try sys("setns", path: "user") { nsp_setns(userNamespace.raw, NSP_CLONE_NEWUSER) }
            try sys("unshare", path: "mount") { nsp_unshare(NSP_CLONE_NEWNS) }
        }
        // Through the host's procfs, where this process has a PID (the tree's /proc is the machine's).
        let namespace = try FileSystem.open("thread-self/ns/mnt", O_RDONLY, at: hostProc.raw)
        try inner.send(.mountNamespace, fds: [namespace] + [executor.consolePeer].compactMap { $0 })
        try supervisor.send(.treeReady, fds: [executor.notify, executor.consoleMaster].compactMap { $0 })
        _exit(0)
    }
}
