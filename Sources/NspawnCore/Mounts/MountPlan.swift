/// The file systems the machine's PID 1 mounts in its own namespaces and hands over as detached
/// mounts: procfs for its PID namespace, sysfs for its network namespace, cgroup2 rooted at its
/// cgroup namespace, mqueue for its IPC namespace.
public enum APIFilesystem: String, CaseIterable, Sendable {
    case proc, sysfs, cgroup2, mqueue
}

/// Mount attributes, as MOUNT_ATTR_* bits of mount_setattr(2)/fsmount(2).
public struct MountAttributes: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let readOnly = MountAttributes(rawValue: 0x01)
    public static let noSUID = MountAttributes(rawValue: 0x02)
    public static let noDev = MountAttributes(rawValue: 0x04)
    public static let noExec = MountAttributes(rawValue: 0x08)

    /// What systemd-nspawn's "+ro" follow-up sets on API file systems.
    public static let lockedDown: MountAttributes = [.readOnly, .noSUID, .noDev, .noExec]
}

/// A character device the machine gets in its /dev. Numbers are the kernel's fixed ones (devices.txt).
public struct DeviceNode: Equatable, Sendable {
    public var name: String
    public var major: UInt32
    public var minor: UInt32

    /// makedev(3), which is a macro.
    public var deviceNumber: UInt64 {
        let major = UInt64(major), minor = UInt64(minor)
        return ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
    }

    public static let standard = [
        DeviceNode(name: "null", major: 1, minor: 3), DeviceNode(name: "zero", major: 1, minor: 5),
        DeviceNode(name: "full", major: 1, minor: 7), DeviceNode(name: "random", major: 1, minor: 8),
        DeviceNode(name: "urandom", major: 1, minor: 9), DeviceNode(name: "tty", major: 5, minor: 0),
    ]
}

/// One step of building the machine's file system tree. Paths are inside the machine.
public enum MountOperation: Equatable, Sendable {
    /// A new tmpfs owned by the machine's root.
    case tmpfs(path: String, options: String, attributes: MountAttributes)
    /// A private devpts instance; its ptmx is the machine's /dev/ptmx.
    case devpts(path: String)
    case deviceNodes(directory: String, nodes: [DeviceNode])
    case symlink(path: String, target: String)
    case directory(path: String)
    /// /run/host: a small read-only tmpfs with what the machine may know about its host, and the
    /// socket the machine's service manager sends its sd_notify messages to.
    case hostInformation(path: String, files: [String: String], osRelease: String?, notifySocket: String)
    case bind(BindMount)
    /// The machine's console, bound from the pty's peer.
    case console(path: String)
    case api(APIFilesystem, path: String, attributes: MountAttributes)
    /// The host's own file system bound in (sysfs when the network is shared: a user namespace may
    /// not mount a sysfs for a network namespace it does not own). Submounts stay out.
    case hostBind(source: String, path: String, attributes: MountAttributes)
    /// A subtree of an earlier mount bound over itself with other attributes.
    case rebind(path: String, attributes: MountAttributes, required: Bool)
    /// An entry made unreadable by an inaccessible file bound over it.
    case mask(path: String)
}

/// The ordered list of mounts that turns a directory into a machine (systemd-nspawn's mount table,
/// reference §2). Building it makes no system call; the executor runs it in the outer child.
public struct MountPlan: Equatable, Sendable {
    public var operations: [MountOperation]
    /// --read-only: the tree itself is mounted read-only (the tmpfs mounts on it stay writable).
    public var readOnlyRoot = false

    /// /proc entries that leak host kernel state or act on the host; an empty unreadable file hides them.
    public static let maskedProcEntries = ["/proc/kallsyms", "/proc/kcore", "/proc/keys", "/proc/sched_debug", "/proc/sysrq-trigger", "/proc/timer_list"]
    /// /proc directories whose writable files act on host hardware; they stay readable.
    public static let readOnlyProcEntries = ["/proc/acpi", "/proc/apm", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/scsi"]

    /// Where the machine's payload finds the notify socket ($NOTIFY_SOCKET).
    public static let notifySocketPath = "/run/host/notify"

    public init(operations: [MountOperation]) { self.operations = operations }

    public init(configuration c: Configuration, machineID: MachineID, console: ConsoleMode, hostOSRelease: String?) {
        var ops: [MountOperation] = [
            .tmpfs(path: "/dev", options: "mode=0755,size=4m,nr_inodes=64k", attributes: [.noSUID]),
            .deviceNodes(directory: "/dev", nodes: DeviceNode.standard),
            .symlink(path: "/dev/fd", target: "/proc/self/fd"),
            .symlink(path: "/dev/stdin", target: "/proc/self/fd/0"),
            .symlink(path: "/dev/stdout", target: "/proc/self/fd/1"),
            .symlink(path: "/dev/stderr", target: "/proc/self/fd/2"),
            .symlink(path: "/dev/ptmx", target: "pts/ptmx"),
            .directory(path: "/dev/pts"),
            .devpts(path: "/dev/pts"),
            .directory(path: "/dev/shm"),
            .tmpfs(path: "/dev/shm", options: "mode=01777", attributes: [.noSUID, .noDev]),
            .directory(path: "/dev/mqueue"),
            .tmpfs(path: "/run", options: "mode=0755,size=20%,nr_inodes=800k", attributes: [.noSUID, .noDev]),
            .tmpfs(path: "/tmp", options: "mode=01777,size=10%,nr_inodes=400k", attributes: [.noSUID, .noDev]),
            .directory(path: "/run/host"),
            .hostInformation(
                path: "/run/host",
                files: ["container-manager": "swift-nspawn\n", "container-uuid": machineID.uuidString + "\n"],
                osRelease: hostOSRelease, notifySocket: "notify"),
        ]
        if console.usesPTY { ops.append(.console(path: "/dev/console")) }

        ops.append(.api(.proc, path: "/proc", attributes: [.noSUID, .noDev, .noExec]))
        ops.append(.rebind(path: "/proc/sys", attributes: .lockedDown, required: true))
        if c.privateNetwork {
            // The network namespace is the machine's own, so its sysctls may be too.
            ops.append(.rebind(path: "/proc/sys/net", attributes: [.noSUID, .noDev, .noExec], required: true))
        }
        ops += Self.maskedProcEntries.map { .mask(path: $0) }
        ops += Self.readOnlyProcEntries.map { .rebind(path: $0, attributes: .lockedDown, required: false) }
        if c.privateNetwork {
            ops.append(.api(.sysfs, path: "/sys", attributes: .lockedDown))
        } else {
            ops.append(.hostBind(source: "/sys", path: "/sys", attributes: .lockedDown))
        }
        ops.append(.api(.cgroup2, path: "/sys/fs/cgroup", attributes: [.noSUID, .noDev, .noExec]))
        ops.append(.api(.mqueue, path: "/dev/mqueue", attributes: [.noSUID, .noDev, .noExec]))
        // Last, so that a mount below /proc, /sys or /dev/mqueue lands on the API file system, not under it.
        for mount in c.customMountsInOrder {
            switch mount {
            case .bind(let b): ops.append(.bind(b))
            case .tmpfs(let t): ops.append(.tmpfs(path: t.destination, options: t.options, attributes: [.noSUID, .noDev]))
            }
        }
        operations = ops
        readOnlyRoot = c.readOnly
    }

    /// The API file systems the plan needs from the machine's PID 1.
    public var apiFilesystems: [APIFilesystem] {
        operations.compactMap { if case .api(let fs, _, _) = $0 { fs } else { nil } }
    }
}
