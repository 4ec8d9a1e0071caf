/// The machine's root: the tree itself, bound onto itself with the machine's attributes.
struct RootMount: Equatable, Sendable {
    var path: String
    /// nodev always: a device node the image ships must not open a host device (the cgroup's device
    /// filter says the same; this holds where no filter can be attached). Read-only with --read-only.
    var attributes: MountAttributes
    var idmap: IDMapping
    /// -x: an overlay with a throw-away upper layer (a tmpfs in the outer child's namespace) over
    /// the tree, which is mounted read-only below it.
    var ephemeral = false
    /// --volatile=yes: the root is a tmpfs, with only the tree's /usr in it (read-only).
    var volatileRoot = false
    /// -i: the other file systems of the disk image, mounted in the tree (relative paths, parents
    /// first). With -x each gets a throw-away overlay of its own, as the root does.
    var submounts: [String] = []
    /// With --pivot-root: the tree as given, and the directory in it (relative) that is the root,
    /// found again in the tree, never outside it, when the namespace is built (`path` only names it).
    var pivot: Pivot?
    /// An OCI bundle's rootfsPropagation, applied to every mount once the tree is the root.
    var propagation: RootPropagation?

    struct Pivot: Equatable, Sendable {
        var tree: String
        var relative: String
    }
}

/// An OCI bundle's rootfsPropagation. A machine's mounts are private anyway (clones of the tree, in
/// no peer group): nothing the host mounts later shows up in the machine, nothing of the machine's
/// on the host. Unbindable is stricter still; shared and slave would need the host's peer groups.
enum RootPropagation: String, Equatable, Sendable {
    case `private`, unbindable
}

/// The mounts that turn a directory into a machine (systemd-nspawn's mount table, reference §2), in
/// order. Building it makes no system call; the outer child carries it out.
///
/// With a user namespace, the outer child builds the tree with host privileges and then copies its
/// mount namespace into one the machine's user namespace owns. The kernel locks every mount in that
/// copy (mount_namespaces(7)): the machine's root can neither unmount it nor clear its read-only,
/// nosuid, nodev or noexec flags. That is what the host's mounts need (the /proc masks, read-only
/// /proc/sys and /sys), and what the guest's own mounts must not have: its init unmounts /tmp and
/// the user's binds and tmpfs mounts at shutdown. So those are made apart and attached after the
/// copy, each as a fresh bind whose flags stay locked but which the guest may unmount.
struct MountPlan: Equatable, Sendable {
    var root: RootMount
    /// Made by the host; locked in the machine when it has a user namespace.
    var hostMounts: [MountOperation]
    /// The guest's own, attached after the host's: unmountable by the guest's root.
    var guestMounts: [MountOperation]
    /// --inaccessible paths, covered after all the others (also inside the guest's mounts), locked.
    var inaccessible: [String] = []
    /// The machine has a user namespace, so the namespace the outer child built is copied into it
    /// (and locked) before the guest's mounts are attached.
    var copiedIntoUserNamespace: Bool

    /// /proc entries that leak host kernel state or act on the host; an empty unreadable file hides them.
    static let maskedProcEntries = ["/proc/kallsyms", "/proc/kcore", "/proc/keys", "/proc/sched_debug", "/proc/sysrq-trigger", "/proc/timer_list"]
    /// /proc directories whose writable files act on host hardware; they stay readable.
    static let readOnlyProcEntries = ["/proc/acpi", "/proc/apm", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/scsi"]

    /// Where the machine's payload finds the notify socket ($NOTIFY_SOCKET).
    static let notifySocketPath = "/run/host/notify"
    /// Where its credentials are ($CREDENTIALS_DIRECTORY), as under systemd-nspawn.
    static let credentialsPath = "/run/host/credentials"

    init(root: RootMount, hostMounts: [MountOperation], guestMounts: [MountOperation] = [], copiedIntoUserNamespace: Bool = false) {
        self.root = root
        self.hostMounts = hostMounts
        self.guestMounts = guestMounts
        self.copiedIntoUserNamespace = copiedIntoUserNamespace
    }

    /// - Parameters:
    ///   - idMapping: how the tree and the binds that ask for it are ID-mapped (none without a user namespace).
    ///   - identity: the machine's IDs map onto the same host IDs: an idmap bind changes nothing.
    ///   - nesting: the machine may run containers of its own, which mount a procfs of their own:
    ///     the kernel allows that only where a procfs is "fully visible", with no locked mount over
    ///     any of its entries (fs/namespace.c, mnt_already_visible). Then /proc gets no masks and
    ///     no read-only /proc/sys.
    init(
        configuration c: Configuration, rootPath: String, machineID: MachineID, console: ConsoleMode, hostOSRelease: String?, userNamespace: Bool,
        idMapping: IDMapping, nesting: Bool, identity: Bool = false, credentials: [Credential] = [], boundUsers: [BoundUser] = []
    ) {
        // --volatile=state keeps the tree read-only (its /var a tmpfs, below); overlay is -x's root.
        let readOnly = c.readOnly || c.volatile == .state
        root = RootMount(
            path: rootPath, attributes: readOnly ? [.readOnly, .noDev] : [.noDev], idmap: idMapping, ephemeral: c.ephemeral || c.volatile == .overlay,
            volatileRoot: c.volatile == .yes)
        root.propagation = c.rootPropagation
        copiedIntoUserNamespace = userNamespace
        var ops: [MountOperation] = [
            .tmpfs(path: "/dev", options: "mode=0755,size=4m,nr_inodes=64k", attributes: [.noSUID], resolution: .noSymlinks),
            .deviceNodes(directory: "/dev", nodes: DeviceNode.standard + c.devices),
            .symlink(path: "/dev/fd", target: "/proc/self/fd"),
            .symlink(path: "/dev/stdin", target: "/proc/self/fd/0"),
            .symlink(path: "/dev/stdout", target: "/proc/self/fd/1"),
            .symlink(path: "/dev/stderr", target: "/proc/self/fd/2"),
            .symlink(path: "/dev/ptmx", target: "pts/ptmx"),
            .directory(path: "/dev/pts"),
            .devpts(path: "/dev/pts"),
            .directory(path: "/dev/shm"),
            .tmpfs(path: "/dev/shm", options: "mode=01777", attributes: [.noSUID, .noDev], resolution: .noSymlinks),
            .directory(path: "/dev/mqueue"),
            .tmpfs(path: "/run", options: "mode=0755,size=20%,nr_inodes=800k", attributes: [.noSUID, .noDev], resolution: .noSymlinks),
            .directory(path: "/run/host"),
            .hostInformation(
                path: "/run/host",
                files: ["container-manager": c.switches.containerService + "\n", "container-uuid": machineID.uuidString + "\n"],
                osRelease: hostOSRelease, notifySocket: "notify", credentials: credentials, boundUsers: boundUsers),
        ]
        if console.usesPTY { ops.append(.console(path: "/dev/console")) }

        ops.append(.api(.proc, path: "/proc", attributes: [.noSUID, .noDev, .noExec]))
        if !nesting {
            ops.append(.rebind(path: "/proc/sys", attributes: .lockedDown, required: true))
            if c.privateNetwork && c.network.namespacePath == nil && !c.procSysReadOnly {
                // The network namespace is the machine's own, so its sysctls may be too.
                ops.append(.rebind(path: "/proc/sys/net", attributes: [.noSUID, .noDev, .noExec], required: true))
            }
            ops += Self.maskedProcEntries.map { .mask(path: $0) }
            ops += Self.readOnlyProcEntries.map { .rebind(path: $0, attributes: .lockedDown, required: false) }
        }
        if c.network.namespacePath != nil {
            ops.append(.hostAPI(.sysfs, path: "/sys", attributes: .lockedDown))
        } else if c.privateNetwork {
            ops.append(.api(.sysfs, path: "/sys", attributes: .lockedDown))
        } else {
            ops.append(.hostBind(source: "/sys", path: "/sys", attributes: .lockedDown))
        }
        ops.append(.api(.cgroup2, path: "/sys/fs/cgroup", attributes: c.cgroupReadOnly ? .lockedDown : [.noSUID, .noDev, .noExec]))
        ops.append(.api(.mqueue, path: "/dev/mqueue", attributes: [.noSUID, .noDev, .noExec]))
        hostMounts = ops

        // The guest's, after all of the host's, so that a mount below /proc, /sys or /dev lands on
        // the API file system, not under it; in destination order, so a parent comes before what
        // goes inside it.
        var guest: [MountOperation] = []
        if c.switches.tmpfsTmp {
            guest.append(.tmpfs(path: "/tmp", options: "mode=01777,size=10%,nr_inodes=400k", attributes: [.noSUID, .noDev], resolution: .noSymlinks))
        }
        if c.volatile == .state {
            guest.append(.tmpfs(path: "/var", options: "mode=0755", attributes: [.noSUID, .noDev], resolution: .noSymlinks))
        }
        for mount in c.customMountsInOrder {
            switch mount {
            case .bind(let b):
                let mapping: BindMapping
                switch b.ownership {
                case .raw: mapping = .none
                // Asked for by name: mapped even where the tree is not (--private-users-ownership=off);
                // a file system that cannot be mapped fails the start unless the tree may fall back.
                case .machine: mapping = identity ? .none : .machine(idMapping == .preferred ? .preferred : .required)
                case .sourceOwnerAsRoot: mapping = .sourceOwnerAsRoot
                case .sourceOwnerAsTargetOwner: mapping = .sourceOwnerAsTargetOwner
                }
                var attributes: MountAttributes = b.readOnly ? [.readOnly, .noDev] : [.noDev]
                if b.noSUID { attributes.insert(.noSUID) }
                if b.noExec { attributes.insert(.noExec) }
                guest.append(.bind(BindOperation(source: b.source, path: b.destination, attributes: attributes, recursive: b.recursive, mapping: mapping)))
            case .tmpfs(let t):
                guest.append(.tmpfs(path: t.destination, options: t.options, attributes: [.noSUID, .noDev], resolution: .inRoot))
            case .overlay(let o):
                guest.append(
                    .overlay(
                        OverlayOperation(
                            lowers: o.lowers, upper: o.upper, path: o.destination, attributes: o.upper == nil ? [.readOnly, .noDev] : [.noDev],
                            mapped: idMapping != .none)))
            }
        }
        // The bound users' homes: their owners map onto the users' machine IDs through the user
        // namespace itself, so no ID-mapping.
        for user in boundUsers {
            // nosuid: a setuid file of the user's would act as the host user for anyone in the machine.
            guest.append(
                .bind(BindOperation(source: user.home, path: user.machineHome, attributes: [.noDev, .noSUID], recursive: false, mapping: .none)))
        }
        guestMounts = guest
        inaccessible = c.inaccessible
    }

    /// Where an inaccessible path is covered: inside the last guest mount whose place contains it
    /// (relative to that mount's root), or in the tree.
    func inaccessibleLocation(_ path: String) -> (guestMount: Int?, relative: String) {
        for (index, operation) in guestMounts.enumerated().reversed() {
            guard let place = operation.path else { continue }
            if path == place { return (index, "") }
            if path.hasPrefix(place == "/" ? "/" : place + "/") { return (index, String(path.dropFirst(place.count + 1))) }
        }
        return (nil, String(path.drop { $0 == "/" }))
    }

    /// The API file systems the plan needs from the machine's PID 1, in the plan's order: the order
    /// PID 1 makes and sends them in and the outer child pairs them by. A loop over the host mounts
    /// rather than an array of pairs, whose type each child would instantiate at run time.
    func forEachAPIFilesystem(_ body: (APIFilesystem, MountAttributes) throws -> Void) rethrows {
        for case .api(let filesystem, _, let attributes) in hostMounts { try body(filesystem, attributes) }
    }
}
