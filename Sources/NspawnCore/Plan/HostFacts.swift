#if canImport(Glibc)
    import Glibc
#endif

/// What the host is, asked once, in one place, before anything is planned: the plan itself makes
/// no system call, so everything it depends on about the host is here.
struct HostFacts: Equatable, Sendable {
    /// systemd is PID 1: the machine's cgroup is a scope systemd delegates, and machined exists.
    var systemd = false
    /// Where cgroup2 is mounted: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
    var cgroupHierarchy: String?
    /// swift-nspawn's own cgroup2 path, from the "0::" line of /proc/self/cgroup.
    var ownCgroup: String?
    /// The host's os-release, shown to the machine as /run/host/os-release.
    var osRelease: String?
    /// Its identifying fields as the payload's container_host_* variables.
    var hostEnvironment: [String] = []
    var stdinIsTerminal = false
    var stdoutIsTerminal = false
    var term: String?
    /// The capabilities swift-nspawn holds: all a machine without a user namespace can have.
    var heldCapabilities = CapabilitySet()
    /// swift-nspawn runs inside a machine: its manager says so in /run/host (systemd's container interface).
    var insideMachine = false
    /// The IDs this process's user namespace maps (uid_map and gid_map both): a machine's range must
    /// lie inside them. The whole ID space on a host; less inside a machine.
    var mappedIDs: [UIDRange] = [UIDRange(base: 0, count: UInt32.max)]
    /// The host's /etc/machine-id: the key of the machine's MAC addresses (read for machines with links).
    var machineID = ""
    /// systemd-networkd runs in our network namespace (asked only for machines it would address):
    /// its 80-container-*.network files then configure the machine's links.
    var networkdRunsHere = false

    /// - Parameters:
    ///   - askNetworkd: whether to look for systemd-networkd (a scan of /proc, on a systemd host only).
    ///   - askMachineID: whether the host's machine ID is needed (for the MAC addresses of links).
    static func probe(askNetworkd: Bool = false, askMachineID: Bool = false) -> HostFacts {
        var facts = HostFacts()
        // sd_booted(3)'s test, made here: libsystemd is opened only once it is needed.
        facts.systemd = FileSystem.exists("/run/systemd/system/")
        facts.cgroupHierarchy = MachineCgroup.findHierarchy()
        facts.ownCgroup = try? MachineCgroup.ownPath()
        facts.osRelease = ["/etc/os-release", "/usr/lib/os-release"].first(where: FileSystem.exists)
        if let osRelease = facts.osRelease, let text = try? FileSystem.readFile(osRelease) {
            facts.hostEnvironment = OSRelease.hostEnvironment(text)
        }
        facts.stdinIsTerminal = isatty(0) != 0
        facts.stdoutIsTerminal = isatty(1) != 0
        facts.term = Configuration.processEnvironment("TERM")
        facts.heldCapabilities = CapabilityPolicy.held()
        facts.insideMachine = FileSystem.exists("/run/host/container-manager")
        let uids = IDMap.parse((try? FileSystem.readFile("/proc/self/uid_map")) ?? "")
        let gids = IDMap.parse((try? FileSystem.readFile("/proc/self/gid_map")) ?? "")
        if !uids.isEmpty && !gids.isEmpty { facts.mappedIDs = IDMap.intersection(uids, gids) }
        if askMachineID { facts.machineID = ((try? FileSystem.readFile("/etc/machine-id")) ?? "").filter { !$0.isWhitespace } }
        if askNetworkd && facts.systemd { facts.networkdRunsHere = Self.networkdRunsInOurNetworkNamespace() }
        return facts
    }
}

extension HostFacts {
    /// A process named systemd-networkd ("systemd-network" in /proc/PID/comm, 15 characters)
    /// shares our network namespace.
    static func networkdRunsInOurNetworkNamespace() -> Bool {
        let own = try? PathEntry.readLink("/proc/self/ns/net")
        guard let own, let proc = try? FileSystem.open("/proc", O_RDONLY | O_DIRECTORY), let entries = try? FileSystem.entries(of: proc.raw, path: "/proc")
        else { return false }
        for (name, _) in entries {
            guard name.first?.isNumber == true, (try? FileSystem.readFile("/proc/\(name)/comm")) == "systemd-network\n" else { continue }
            if (try? PathEntry.readLink("/proc/\(name)/ns/net")) == own { return true }
        }
        return false
    }
}

/// /proc/PID/uid_map and gid_map: "INSIDE OUTSIDE COUNT" lines; what matters here is which IDs
/// of this namespace (INSIDE) are mapped at all.
enum IDMap {
    static func parse(_ text: String) -> [UIDRange] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 3, let inside = UInt32(fields[0]), let count = UInt32(fields[2]), count > 0 else { return nil }
            return UIDRange(base: inside, count: count)
        }
    }

    /// The IDs both lists map, as ranges.
    static func intersection(_ a: [UIDRange], _ b: [UIDRange]) -> [UIDRange] {
        var result: [UIDRange] = []
        for x in a {
            for y in b where x.overlaps(y) {
                let base = max(x.base, y.base)
                result.append(UIDRange(base: base, count: min(x.last, y.last) - base + 1))
            }
        }
        return result.sorted { $0.base < $1.base }
    }
}
