/// The SYSTEMD_NSPAWN_* environment switches systemd-nspawn 252 reads. Those that make sense for
/// swift-nspawn are honoured; those that would break its guarantees are refused in one line that
/// says why (swift-nspawn(1), ENVIRONMENT). Anything else in swift-nspawn's environment is ignored.
public struct EnvironmentSwitches: Equatable, Sendable {
    /// SYSTEMD_NSPAWN_TMPFS_TMP=0: the tree's own /tmp, no tmpfs over it.
    public var tmpfsTmp = true
    /// SYSTEMD_NSPAWN_LOCK=0: the tree is not locked against other runs.
    public var lockImage = true
    /// SYSTEMD_NSPAWN_CHECK_OS_RELEASE=0: --boot does without an os-release file in the tree.
    public var checkOSRelease = true
    /// SYSTEMD_NSPAWN_CONTAINER_SERVICE=NAME: what $container and /run/host/container-manager say, and
    /// the service machined lists the machine under (systemd-nspawn: "LXC sets container=lxc, so
    /// follow the scheme").
    public var containerService = "swift-nspawn"
    /// SWIFT_NSPAWN_OWN_ADDRESSES=: whether swift-nspawn gives -n and zone machines their
    /// addresses, DHCP server and masquerade (yes), or leaves them to the host's and the guest's
    /// systemd-networkd as systemd-nspawn does (no); unset: no where systemd-networkd runs in
    /// swift-nspawn's network namespace, yes elsewhere.
    public var ownAddresses: Bool?

    public init() {}

    /// Switches that would take away what swift-nspawn promises, the one value that changes nothing,
    /// and why any other is refused.
    static let refused: [(name: String, harmless: Bool, why: String)] = [
        (
            "SYSTEMD_NSPAWN_API_VFS_WRITABLE", false,
            "swift-nspawn keeps /proc/sys, /sys and the /proc masks read-only and locked for every machine (its own network sysctls are writable with a private network; --nesting=yes takes the masks away)"
        ),
        ("SYSTEMD_NSPAWN_USE_CGNS", true, "every machine gets a cgroup namespace, so it never sees the host's cgroup paths"),
        ("SYSTEMD_NSPAWN_SHARE_NS_IPC", false, "every machine gets its own IPC namespace"),
        ("SYSTEMD_NSPAWN_SHARE_NS_PID", false, "every machine gets its own PID namespace"),
        ("SYSTEMD_NSPAWN_SHARE_NS_UTS", false, "every machine gets its own UTS namespace"),
        ("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", true, "machines get the unified cgroup hierarchy (cgroup v2) only"),
    ]

    static func read(_ lookup: (String) -> String?) throws(UserError) -> EnvironmentSwitches {
        for switchSpec in refused {
            guard let value = lookup(switchSpec.name) else { continue }
            // "network" is API_VFS_WRITABLE's third value: writable in part, refused all the same.
            let parsed = try? Configuration.parseBoolean(value, option: switchSpec.name)
            guard parsed != switchSpec.harmless else { continue }
            throw UserError("\(switchSpec.name)=\(value) is not supported: \(switchSpec.why).")
        }
        var switches = EnvironmentSwitches()
        func flag(_ name: String) throws(UserError) -> Bool? {
            guard let value = lookup(name) else { return nil }
            do {
                return try Configuration.parseBoolean(value, option: name)
            } catch {
                throw UserError("Failed to parse \(name)=\(value): a boolean (1, yes, true, on, or 0, no, false, off).")
            }
        }
        if let value = try flag("SYSTEMD_NSPAWN_TMPFS_TMP") { switches.tmpfsTmp = value }
        if let value = try flag("SYSTEMD_NSPAWN_LOCK") { switches.lockImage = value }
        if let value = try flag("SYSTEMD_NSPAWN_CHECK_OS_RELEASE") { switches.checkOSRelease = value }
        switches.ownAddresses = try flag("SWIFT_NSPAWN_OWN_ADDRESSES")
        if let service = lookup("SYSTEMD_NSPAWN_CONTAINER_SERVICE") {
            guard !service.isEmpty, service.utf8.count <= 255, !service.contains(where: { $0 == "/" || $0.isWhitespace }) else {
                throw UserError("Invalid SYSTEMD_NSPAWN_CONTAINER_SERVICE=\(service): a service name without / or spaces.")
            }
            switches.containerService = service
        }
        return switches
    }
}
