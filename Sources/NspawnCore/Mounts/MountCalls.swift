#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The new mount API (fsopen, fsmount, open_tree, mount_setattr, move_mount): every mount is made
/// as a detached mount we hold by fd and attached to a target we opened ourselves, so no path is
/// ever resolved twice. Descriptors are passed as OwnedFD so that each stays open for the whole call.
enum MountCalls {
    private static let AT_EMPTY_PATH: UInt32 = 0x1000
    private static let AT_RECURSIVE: UInt32 = 0x8000
    private static let OPEN_TREE_CLONE: UInt32 = 1
    private static let MOVE_MOUNT_F_EMPTY_PATH: UInt32 = 0x04
    private static let MOVE_MOUNT_T_EMPTY_PATH: UInt32 = 0x40
    private static let MOUNT_ATTR_IDMAP: UInt64 = 0x0010_0000

    /// fsopen + fsconfig + fsmount. Options are "key=value" strings or bare flags.
    static func newMount(_ type: String, options: [String], attributes: MountAttributes) throws(SyscallError) -> OwnedFD {
        let context = OwnedFD(try sys("fsopen", path: type) { fsopen(type, UInt32(FSOPEN_CLOEXEC)) })
        for option in options where !option.isEmpty {
            if let equals = option.firstIndex(of: "=") {
                let key = String(option[..<equals])
                let value = String(option[option.index(after: equals)...])
                try sys("fsconfig", path: "\(type): \(option)") {
                    fsconfig(context.raw, FSCONFIG_SET_STRING.rawValue, key, value, 0)
                }
            } else {
                try sys("fsconfig", path: "\(type): \(option)") { fsconfig(context.raw, FSCONFIG_SET_FLAG.rawValue, option, nil, 0) }
            }
        }
        try sys("fsconfig", path: type) { fsconfig(context.raw, FSCONFIG_CMD_CREATE.rawValue, nil, nil, 0) }
        return OwnedFD(try sys("fsmount", path: type) { fsmount(context.raw, UInt32(FSMOUNT_CLOEXEC), UInt32(attributes.rawValue)) })
    }

    /// A detached copy of the mount at path (or of the fd itself with an empty path); `name` is what
    /// an error calls it.
    static func cloneTree(_ path: String, in directory: OwnedFD? = nil, recursive: Bool, name: String? = nil) throws(SyscallError) -> OwnedFD {
        var flags = OPEN_TREE_CLONE | UInt32(O_CLOEXEC)
        if recursive { flags |= AT_RECURSIVE }
        if path.isEmpty { flags |= AT_EMPTY_PATH }
        return OwnedFD(try sys("open_tree", path: name ?? path) { open_tree(directory?.raw ?? AT_FDCWD, path, flags) })
    }

    /// Adds attributes to a mount (and, recursive, to every mount below it), and clears `clear`.
    /// Nothing else is cleared: a nosuid, nodev or read-only submount of a bind source stays so.
    /// An ID mapping to the user namespace behind idmapUserNamespace is set when given.
    static func setAttributes(
        _ mount: OwnedFD, _ attributes: MountAttributes, clear: MountAttributes = [], idmapUserNamespace: OwnedFD? = nil, recursive: Bool, path: String
    ) throws(SyscallError) {
        var attr = mount_attr()
        attr.attr_set = attributes.rawValue
        attr.attr_clr = clear.rawValue
        if let userns = idmapUserNamespace {
            attr.attr_set |= MOUNT_ATTR_IDMAP
            attr.userns_fd = UInt64(userns.raw)
        }
        guard attr.attr_set != 0 || attr.attr_clr != 0 else { return }
        let flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0)
        try sys("mount_setattr", path: path) { mount_setattr(mount.raw, "", flags, &attr, MemoryLayout<mount_attr>.size) }
    }

    /// Attaches a detached mount (or moves an attached one) onto the object the target fd refers to.
    static func attach(_ mount: OwnedFD, onto target: OwnedFD, path: String) throws(SyscallError) {
        try sys("move_mount", path: path) {
            move_mount(mount.raw, "", target.raw, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
        }
    }
}
