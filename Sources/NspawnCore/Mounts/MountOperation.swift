/// The file systems the machine's PID 1 mounts in its own namespaces and hands over as detached
/// mounts: procfs for its PID namespace, sysfs for its network namespace, cgroup2 rooted at its
/// cgroup namespace, mqueue for its IPC namespace.
enum APIFilesystem: String, CaseIterable, Sendable {
    case proc, sysfs, cgroup2, mqueue
}

/// The mounts of the API file systems that the machine's PID 1 made and handed to the outer child,
/// one for each file system. Stored properties rather than a dictionary, whose storage type the
/// outer child would otherwise instantiate at run time, on the machine's critical path.
struct APIMounts {
    private var proc, sysfs, cgroup2, mqueue: OwnedFD?

    init() {}

    /// Pairs the mounts PID 1 sent, in the order it made them, with the plan's API file systems.
    init(_ mounts: [OwnedFD], plan: MountPlan) {
        var received = mounts.makeIterator()
        var paired = APIMounts()
        plan.forEachAPIFilesystem { filesystem, _ in paired[filesystem] = received.next() }
        self = paired
    }

    subscript(filesystem: APIFilesystem) -> OwnedFD? {
        get {
            switch filesystem {
            case .proc: proc
            case .sysfs: sysfs
            case .cgroup2: cgroup2
            case .mqueue: mqueue
            }
        }
        set {
            switch filesystem {
            case .proc: proc = newValue
            case .sysfs: sysfs = newValue
            case .cgroup2: cgroup2 = newValue
            case .mqueue: mqueue = newValue
            }
        }
    }
}

/// Mount attributes, as MOUNT_ATTR_* bits of mount_setattr(2)/fsmount(2).
struct MountAttributes: OptionSet, Equatable, Sendable {
    let rawValue: UInt64
    init(rawValue: UInt64) { self.rawValue = rawValue }

    static let readOnly = MountAttributes(rawValue: 0x01)
    static let noSUID = MountAttributes(rawValue: 0x02)
    static let noDev = MountAttributes(rawValue: 0x04)
    static let noExec = MountAttributes(rawValue: 0x08)

    /// What systemd-nspawn's "+ro" follow-up sets on API file systems.
    static let lockedDown: MountAttributes = [.readOnly, .noSUID, .noDev, .noExec]
}

/// A character device the machine gets in its /dev. Numbers are the kernel's fixed ones (devices.txt).
struct DeviceNode: Equatable, Sendable {
    /// Below /dev: "null", "net/tun".
    var name: String
    var major: UInt32
    var minor: UInt32
    var block = false
    /// Its permissions, and its owner in the machine (an OCI bundle's linux.devices say).
    var mode: UInt32 = 0o666
    var uid: UInt32 = 0
    var gid: UInt32 = 0

    /// makedev(3), which is a macro.
    var deviceNumber: UInt64 {
        let major = UInt64(major), minor = UInt64(minor)
        return ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
    }

    /// "c 10:229 0666 0:0 net/tun", as the settings carry an OCI bundle's device.
    var text: String { "\(block ? "b" : "c") \(major):\(minor) \(String(mode, radix: 8)) \(uid):\(gid) \(name)" }

    init(name: String, major: UInt32, minor: UInt32, block: Bool = false, mode: UInt32 = 0o666, uid: UInt32 = 0, gid: UInt32 = 0) {
        (self.name, self.major, self.minor, self.block, self.mode, self.uid, self.gid) = (name, major, minor, block, mode, uid, gid)
    }

    init?(parsing text: String) {
        let fields = text.split(separator: " ", maxSplits: 4).map(String.init)
        guard fields.count == 5, fields[0] == "c" || fields[0] == "b" else { return nil }
        let numbers = fields[1].split(separator: ":").compactMap { UInt32($0) }, owner = fields[3].split(separator: ":").compactMap { UInt32($0) }
        guard numbers.count == 2, owner.count == 2, let mode = UInt32(fields[2], radix: 8), Self.isName(fields[4]) else { return nil }
        self.init(name: fields[4], major: numbers[0], minor: numbers[1], block: fields[0] == "b", mode: mode, uid: owner[0], gid: owner[1])
    }

    /// A name below /dev: components that are neither empty, "." nor "..", and no control character.
    static func isName(_ name: String) -> Bool {
        !name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
            && !name.split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty || $0 == "." || $0 == ".." }
    }

    static let standard = [
        DeviceNode(name: "null", major: 1, minor: 3), DeviceNode(name: "zero", major: 1, minor: 5),
        DeviceNode(name: "full", major: 1, minor: 7), DeviceNode(name: "random", major: 1, minor: 8),
        DeviceNode(name: "urandom", major: 1, minor: 9), DeviceNode(name: "tty", major: 5, minor: 0),
    ]
}

/// Whether a mount is made with the machine's user namespace as its ID mapping.
enum IDMapping: Equatable, Sendable {
    /// Raw owners.
    case none
    /// Mapped, or the start fails (--private-users-ownership=map).
    case required
    /// Mapped where the file system can, raw owners with a warning elsewhere (=auto).
    case preferred
}

/// A bind of a host path into the machine, with everything about it decided.
struct OverlayOperation: Equatable, Sendable {
    /// From the lowest up.
    var lowers: [OverlayMount.Layer]
    /// nil: a read-only overlay.
    var upper: OverlayMount.Layer?
    /// Found as the machine will resolve it, as a bind's.
    var path: String
    var attributes: MountAttributes
    /// Its layers ID-mapped to the machine, as the tree is.
    var mapped: Bool
}

struct BindOperation: Equatable, Sendable {
    var source: String
    /// Found as the machine will resolve it, with the tree as "/" (RESOLVE_IN_ROOT), as
    /// systemd-nspawn resolves it: --bind=…:/var/run/x lands in /run/x when /var/run → /run.
    var path: String
    var attributes: MountAttributes
    /// rbind: the mounts below the source come along.
    var recursive: Bool
    var mapping: BindMapping
}

/// How a bind's owners are ID-mapped (systemd-nspawn's noidmap, idmap, rootidmap, owneridmap).
enum BindMapping: Equatable, Sendable {
    /// Raw owners.
    case none
    /// With the machine's user namespace, as the tree is; the policy says what a file system that
    /// cannot be ID-mapped does.
    case machine(IDMapping)
    /// The source's owner shows as the machine's root; every other owner as nobody.
    case sourceOwnerAsRoot
    /// The source's owner shows as the owner of the destination in the machine.
    case sourceOwnerAsTargetOwner
}

/// One step of building the machine's file system tree. Paths are inside the machine.
enum MountOperation: Equatable, Sendable {
    /// A new tmpfs owned by the machine's root. Its place is found with no symlink followed (the
    /// API file systems' places, which the tree has no business redirecting), or, for the user's
    /// --tmpfs, as the machine will resolve it (in root).
    case tmpfs(path: String, options: String, attributes: MountAttributes, resolution: PathResolution.Scope)
    /// A private devpts instance; its ptmx is the machine's /dev/ptmx.
    case devpts(path: String)
    case deviceNodes(directory: String, nodes: [DeviceNode])
    case symlink(path: String, target: String)
    case directory(path: String)
    /// /run/host: a small read-only tmpfs with what the machine may know about its host, and the
    /// socket the machine's service manager sends its sd_notify messages to.
    /// Its credentials, in a ramfs (never swapped out) in credentials/ of it, read-only.
    /// --bind-user's users: their records in userdb/ and their homes' mount points in home/.
    case hostInformation(
        path: String, files: [String: String], osRelease: String?, notifySocket: String, credentials: [Credential], boundUsers: [BoundUser] = [])
    case bind(BindOperation)
    /// --overlay, --overlay-ro: an overlay of the layers, made by the outer child.
    case overlay(OverlayOperation)
    /// The machine's console, bound from the pty's peer.
    case console(path: String)
    case api(APIFilesystem, path: String, attributes: MountAttributes)
    /// The host's own file system bound in (sysfs when the network is shared: a user namespace may
    /// not mount a sysfs for a network namespace it does not own). Submounts stay out.
    case hostBind(source: String, path: String, attributes: MountAttributes)
    /// An API file system the outer child makes itself, with the host's privileges, for the
    /// namespaces it runs in: sysfs for a joined network namespace (--network-namespace-path),
    /// which the machine's user namespace does not own.
    case hostAPI(APIFilesystem, path: String, attributes: MountAttributes)
    /// A subtree of an earlier mount bound over itself with other attributes.
    case rebind(path: String, attributes: MountAttributes, required: Bool)
    /// An entry made unreadable by an inaccessible file bound over it.
    case mask(path: String)
    /// --timezone, --resolv-conf: the machine's /etc/NAME (its /etc found in root, NAME itself
    /// never followed) covered, read-only, by a host file, a symlink, or a file made for it.
    case etcFile(String, EtcFileSource, makeMountPoint: Bool)

    /// Where the mount lands in the machine (nil for steps that mount nothing).
    var path: String? {
        switch self {
        case .tmpfs(let path, _, _, _), .devpts(let path), .console(let path), .api(_, let path, _), .hostAPI(_, let path, _), .hostBind(_, let path, _),
            .rebind(let path, _, _),
            .mask(let path), .hostInformation(let path, _, _, _, _, _):
            path
        case .bind(let bind): bind.path
        case .overlay(let overlay): overlay.path
        case .etcFile(let name, _, _): "/etc/\(name)"
        case .deviceNodes, .symlink, .directory: nil
        }
    }
}
