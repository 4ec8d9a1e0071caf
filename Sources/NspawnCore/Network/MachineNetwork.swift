#if canImport(Glibc)
    import Glibc
#endif

/// The machine's links, made by the supervisor once PID 1 exists (its network namespace is where
/// the machine's ends are born) and before PID 1 goes on, so that host0 has its address and
/// route when the payload starts. After a failed start `tearDown()` undoes everything, in
/// reverse; after the machine's end `finish()` undoes what the kernel does not undo with the
/// namespace. What the kernel undoes after a SIGKILL (the veth pair dies with the namespace, the
/// NAT table with our socket, a moved link returns to the host's first namespace) needs nothing
/// from us; the next run removes a zone's bridge left without members.
final class MachineNetwork {
    /// What the machine was given, for the DHCP server and for the user.
    struct Addressing: Equatable {
        var hostLink: String
        /// Where the gateway address lives: the host link, or the zone's bridge.
        var gatewayLink: String
        var subnet: IPv4Subnet
        var gateway: IPv4Address
        var machine: IPv4Address
        var machineMAC: [UInt8]
        /// A /64 of the host's unique local prefix, where the host has IPv6: the gateway is its
        /// ::1, the machine's address ends in its IPv4 address.
        var subnet6: IPNetwork?

        var gateway6: [UInt8]? { subnet6?.address(suffix: 1) }
        var machine6: [UInt8]? { subnet6?.address(suffix: machine.value) }
    }

    private let plan: NetworkPlan
    private let machineNamespace: OwnedFD
    private let host: RouteNetlink
    private let inside: RouteNetlink
    /// What was made, to be undone in reverse: some of it only when the start fails (the kernel
    /// removes it with the machine's namespace after a normal end).
    private enum Undo {
        case always(() -> Void)
        case onFailure(() -> Void)
    }

    private var undo: [Undo] = []
    private(set) var addressing: Addressing?
    private var natTable: OwnedNatTable?
    private var natTableName = ""
    /// Tables made so far: a new one cannot take the name of one whose socket is still being
    /// closed (SlowClose), so each after the first gets a number.
    nonisolated(unsafe) private static var natTables = 0
    private var addressWatch: MachineAddressWatch?

    init(_ plan: NetworkPlan, machinePID: pid_t, machine: String) throws {
        self.plan = plan
        machineNamespace = try FileSystem.open("/proc/\(machinePID)/ns/net", O_RDONLY)
        host = try RouteNetlink()
        inside = try RouteNetlink(namespace: machineNamespace)
        do {
            try build(machine: machine)
        } catch {
            tearDown()
            throw error
        }
    }

    /// What marks a zone's bridge as ours (IFLA_IFALIAS), so that only ours are ever removed.
    static let zoneAlias = "swift-nspawn network zone"

    private func build(machine: String) throws {
        try NetworkLock.hold { try removeLeftovers() }
        // First, so that a taken port fails the start before any link exists.
        let reservations = try plan.ports.map(PortReservation.init)
        undo.append(.always { reservations.forEach { $0.close() } })
        var hostEnd: String?
        if let veth = plan.veth {
            hostEnd = try addVeth(veth, resolvingClashes: true)
            switch plan.attachment {
            case .routed where !plan.ownAddresses:
                // The host's systemd-networkd configures it (80-container-ve.network).
                try host.setLink(hostEnd!, up: true)
            case .routed:
                try NetworkLock.hold {
                    let subnet = try freeSubnet(prefix: NetworkPlan.machinePrefix, key: "machine:" + machine)
                    try host.addAddress(subnet.host(1).bytes, prefix: subnet.prefix, to: hostEnd!)
                    addressing = Addressing(
                        hostLink: hostEnd!, gatewayLink: hostEnd!, subnet: subnet, gateway: subnet.host(1), machine: subnet.host(2),
                        machineMAC: veth.machineMAC,
                        subnet6: try addIPv6Network(key: "machine:" + machine, to: hostEnd!))
                }
                try host.setLink(hostEnd!, up: true)
            case .bridge(let bridge):
                let index: Int32
                do { index = try host.linkIndex(bridge) } catch let error as NetlinkError where error.isMissingLink {
                    throw UserError("Bridge \(bridge) does not exist; --network-bridge= joins an existing bridge (--network-zone= makes one).")
                }
                try host.setLink(hostEnd!, up: true, master: index)
            case .zone(let zone):
                try joinZone(zone, link: hostEnd!, machine: machine, veth: veth)
            }
        }
        natTableName = "swift-nspawn-" + (hostEnd ?? machine)
        for extra in plan.extraVeths { _ = try addVeth(extra, resolvingClashes: false) }
        for link in plan.lowerLinks { try addLowerLink(link) }
        for link in plan.movedInterfaces { try move(link) }
        if let addressing {
            try inside.setLink("host0", up: true)
            try inside.addAddress(addressing.machine.bytes, prefix: addressing.subnet.prefix, to: "host0")
            try inside.addDefaultRoute(via: addressing.gateway.bytes, on: "host0")
            if let machine6 = addressing.machine6, let gateway6 = addressing.gateway6 {
                try inside.addAddress(machine6, prefix: 64, to: "host0")
                try inside.addDefaultRoute(via: gateway6, on: "host0")
            }
            // localhost:PORT reaches the machine through its own veth only: that link gets
            // route_localnet (gone with it), and the table drops whatever the machine sends to or
            // from 127.0.0.0/8 on it, so the host's localhost services stay out of its reach. Not
            // on a zone's bridge, which outlives any one member's table.
            let localhostLink = plan.ports.isEmpty || addressing.gatewayLink != addressing.hostLink ? nil : addressing.hostLink
            var targets = [OwnedNatTable.Target(machine: addressing.machine.bytes, masqueraded: addressing.subnet.network4)]
            if let machine6 = addressing.machine6 { targets.append(OwnedNatTable.Target(machine: machine6, masqueraded: addressing.subnet6)) }
            natTable = try OwnedNatTable(name: nextNatTableName(), targets: targets, forwards: plan.ports, localhostLink: localhostLink)
            if let localhostLink { try LinuxKernel().writeFile("1", to: "/proc/sys/net/ipv4/conf/\(localhostLink)/route_localnet") }
            try enableForwarding()
        }
        undo.append(.always { [unowned self] in natTable?.remove() })
    }

    /// The host end of a veth pair; the machine's end is born in its namespace. A host name taken
    /// (by a machine of the same name elsewhere, or a shortened name another machine's shortens
    /// to) is not an error: the next hashed name is tried.
    private func addVeth(_ veth: NetworkPlan.Veth, resolvingClashes: Bool) throws -> String {
        var name = veth.hostName
        var attempt = 0
        var waited = false
        while true {
            do {
                try host.addVeth(
                    name: name, mac: veth.hostMAC, peer: veth.machineName, peerMAC: veth.machineMAC, peerNamespace: .descriptor(machineNamespace.raw))
                break
            } catch let error as NetlinkError where error.errno == .fileExists && resolvingClashes && attempt < 16 {
                // Our own MAC: this machine's last run, whose link the kernel is still removing
                // with its namespace (a reboot, a quick restart). Anything else: the next name.
                if !waited, attempt == 0 {
                    waited = true
                    if try waitForPreviousRun(name: name, mac: veth.hostMAC) { continue }
                }
                attempt += 1
                name = NetworkPlan.shortenedInterfaceName(veth.fullName, attempt: attempt)
            }
        }
        // After a normal end the link goes with the machine's namespace, without the 20 ms that
        // removing it here would cost; a failed start removes it at once.
        undo.append(.onFailure { [unowned self] in try? host.deleteLink(name) })
        if name != veth.fullName {
            // The whole name, so `ip link show ve-long-machine-name` finds it; where it is taken,
            // or the kernel has no alternative names (before 5.5), it is left out.
            try? host.addAlternativeName(veth.fullName, to: name)
        }
        return name
    }

    private func addLowerLink(_ link: NetworkPlan.LowerLink) throws {
        let parent: Int32
        do { parent = try host.linkIndex(link.parent) } catch let error as NetlinkError where error.isMissingLink {
            throw UserError("Network interface \(link.parent) does not exist (--network-\(link.kind.rawValue)=).")
        }
        // MACVLAN_MODE_BRIDGE (4); IPVLAN_MODE_L2 (0).
        try host.addLink(
            name: link.name, kind: link.kind.rawValue, mac: link.mac, parent: parent, mode: link.kind == .macvlan ? 4 : 0,
            namespace: .descriptor(machineNamespace.raw))
        undo.append(.onFailure { [unowned self] in try? inside.deleteLink(link.name) })
    }

    /// Moved in under its machine name; moved back under its own name at the end: the link of
    /// the index it has in the machine, if it still has its MAC address (a name in the machine is
    /// the machine's to give: it could put a link of its own under it).
    private func move(_ link: NetworkConfiguration.NamedLink) throws {
        let original: RouteNetlink.LinkInfo
        do {
            guard let found = try host.links().first(where: { $0.name == link.host }) else { throw NetlinkError(operation: "", errno: .noSuchFileOrDirectory) }
            original = found
            try host.setLink(link.host, newName: link.machine == link.host ? nil : link.machine, namespace: .descriptor(machineNamespace.raw))
        } catch let error as NetlinkError where error.isMissingLink {
            throw UserError("Network interface \(link.host) does not exist (--network-interface=).")
        }
        let moved = try inside.links().first { $0.name == link.machine }
        undo.append(
            .always { [unowned self] in
                guard let moved, let now = try? inside.links().first(where: { $0.index == moved.index }), now.mac == original.mac else { return }
                guard let home = try? NetworkNamespace.current() else { return }
                try? inside.setLink(index: now.index, now.name, newName: link.host, namespace: .descriptor(home.raw))
            })
    }

    /// A zone's bridge vz-ZONE is made by its first member, with the zone's subnet and the
    /// gateway address on it; each member leases an address of it for its machine. (Without
    /// addresses of our own, the host's systemd-networkd configures the bridge.)
    private func joinZone(_ zone: String, link: String, machine: String, veth: NetworkPlan.Veth) throws {
        let bridgeName = "vz-" + zone
        try NetworkLock.hold {
            var subnet: IPv4Subnet?
            var subnet6: IPNetwork?
            if let bridge = try host.links().first(where: { $0.name == bridgeName }) {
                let existing = try host.addresses(of: bridgeName, family: AF_INET).first
                guard isZoneBridge(bridge), existing != nil || !plan.ownAddresses else {
                    throw UserError("Interface \(bridgeName) exists but is no zone's bridge; remove it or pick another zone.")
                }
                subnet = existing.map(IPv4Subnet.init)
                if let subnet, subnet.prefix > 29 { throw UserError("Zone bridge \(bridgeName) has a subnet too small for machines (\(subnet)).") }
                subnet6 = try? host.addresses(of: bridgeName, family: AF_INET6).first { $0.prefix == 64 && $0.bytes.first == 0xfd }
            } else {
                // IFLA_IFALIAS is taken by a change only, not when the link is made.
                try host.addLink(name: bridgeName, kind: "bridge", mac: NetworkPlan.zoneBridgeMAC(hostMachineID: plan.hostMachineID, zone: zone))
                undo.append(.onFailure { [unowned self] in try? host.deleteLink(bridgeName) })
                try host.setLink(bridgeName, up: true, alias: Self.zoneAlias)
                if plan.ownAddresses {
                    let made = try freeSubnet(prefix: NetworkPlan.zonePrefix, key: "zone:" + zone)
                    try host.addAddress(made.host(1).bytes, prefix: made.prefix, to: bridgeName)
                    subnet = made
                    subnet6 = try addIPv6Network(key: "zone:" + zone, to: bridgeName)
                }
            }
            undo.append(
                .always { [unowned self] in
                    // The last member out removes the bridge: its ports are listed under the lock,
                    // ours gone first.
                    _ = try? NetworkLock.hold {
                        try? host.deleteLink(link)
                        guard let index = try? host.linkIndex(bridgeName), let links = try? host.links(), !links.contains(where: { $0.master == index }) else {
                            return
                        }
                        try? host.deleteLink(bridgeName)
                    }
                })
            if plan.ownAddresses, let subnet {
                // Deterministic where free: the same machine gets the same address again.
                let start = UInt32(StableHash.fnv1a(Array(machine.utf8)) % UInt64(subnet.hostCount - 1))
                for step in 0..<(subnet.hostCount - 1) {
                    let candidate = subnet.host(2 + (start + step) % (subnet.hostCount - 1))
                    if let lease = try NetworkLock.lease(candidate, mac: veth.machineMAC) {
                        undo.append(.always { lease.release() })
                        addressing = Addressing(
                            hostLink: link, gatewayLink: bridgeName, subnet: subnet, gateway: subnet.host(1), machine: candidate, machineMAC: veth.machineMAC,
                            subnet6: subnet6)
                        break
                    }
                }
                guard addressing != nil else { throw UserError("Zone \(zone) has no free address left in \(subnet).") }
            }
            // Still under the lock: the last member leaving cannot remove the bridge meanwhile.
            try host.setLink(link, up: true, master: try host.linkIndex(bridgeName))
        }
    }

    /// What a SIGKILLed supervisor could not undo, found under the lock, where no member is
    /// between making a zone's bridge and joining it: our zone bridges without ports, and
    /// leases nobody holds.
    private func removeLeftovers() throws {
        let links = try host.links()
        for bridge in links where isZoneBridge(bridge) && !links.contains(where: { $0.master == bridge.index }) {
            try? host.deleteLink(bridge.name)
        }
        NetworkLock.removeStaleLeases()
    }

    /// Ours: marked so, or, when a run was killed before it could mark it, with the MAC address
    /// we give the zone's bridge when we make it.
    private func isZoneBridge(_ link: RouteNetlink.LinkInfo) -> Bool {
        guard link.kind == "bridge", link.name.hasPrefix("vz-") else { return false }
        return link.alias == Self.zoneAlias || link.mac == NetworkPlan.zoneBridgeMAC(hostMachineID: plan.hostMachineID, zone: String(link.name.dropFirst(3)))
    }

    /// Waits (at most two seconds) while a link of that name with that MAC address exists.
    /// Returns whether it is gone.
    private func waitForPreviousRun(name: String, mac: [UInt8]) throws -> Bool {
        let deadline = Clock.monotonicNanoseconds() + 2_000_000_000
        while let link = try host.links().first(where: { $0.name == name }) {
            guard link.mac == mac, Clock.monotonicNanoseconds() < deadline else { return false }
            usleep(5000)
        }
        return true
    }

    /// A subnet of the pool that overlaps no route and no address of the host: found from a
    /// hash of `key` on, so that a machine or zone finds its subnet of last time again.
    private func freeSubnet(prefix: UInt8, key: String) throws -> IPv4Subnet {
        let used = try host.usedNetworks(family: AF_INET).map(IPv4Subnet.init)
        let count = UInt32(1) << UInt32(prefix - NetworkPlan.pool.prefix)
        let start = UInt32(truncatingIfNeeded: StableHash.fnv1a(Array(key.utf8))) % count
        for step in 0..<min(count, 4096) {
            let index = (start + step) % count
            let candidate = IPv4Subnet(IPv4Address(NetworkPlan.pool.network.value | index << UInt32(32 - prefix)), prefix: prefix)
            if !used.contains(where: { $0.overlaps(candidate) }) { return candidate }
        }
        throw UserError("No free /\(prefix) subnet is left in \(NetworkPlan.pool) for the machine.")
    }

    /// A /64 of the host's unique local prefix (fd00::/8 and 40 bits from the host's machine ID,
    /// RFC 4193) that no route or address of the host overlaps, found from a hash of `key` on,
    /// with its ::1 on `link`; nil where the host has no IPv6 (disabled, or the link refuses it).
    private func addIPv6Network(key: String, to link: String) throws -> IPNetwork? {
        guard let used = try? host.usedNetworks(family: AF_INET6) else { return nil }
        let global = Array(StableHash.fnv1a(Array("\(plan.hostMachineID) unique local".utf8)).bigEndianBytes.prefix(5))
        let start = UInt16(truncatingIfNeeded: StableHash.fnv1a(Array(key.utf8)))
        for step in 0..<UInt16(256) {
            let candidate = IPNetwork([0xfd] + global + (start &+ step).bigEndianBytes + [UInt8](repeating: 0, count: 8), prefix: 64)
            guard !used.contains(where: { $0.overlaps(candidate) }) else { continue }
            do {
                try host.addAddress(candidate.address(suffix: 1), prefix: 64, to: link)
            } catch let error as NetlinkError where [EACCES, EAFNOSUPPORT, EPERM].contains(error.errno.rawValue) {
                return nil
            }
            return candidate
        }
        return nil
    }

    /// Routing for the machine's subnet needs the host to forward IPv4: set when off, never
    /// reset (other machines and the host's own uses may rely on it by then).
    private func enableForwarding() throws {
        let path = "/proc/sys/net/ipv4/ip_forward"
        if (try? FileSystem.readFile(path))?.hasPrefix("1") == true { return }
        try LinuxKernel().writeFile("1", to: path)
    }

    /// Where the machine's addresses are not ours (a bridge, lower or moved links, or the host's
    /// systemd-networkd addressing its veth): -p forwards to the addresses its links are given,
    /// as systemd-nspawn does. The table is made anew when the machine's first global address of
    /// either family changes.
    func watchMachineAddresses(loop: EventLoop) throws {
        guard !plan.addressed, !plan.ports.isEmpty else { return }
        addressWatch = try MachineAddressWatch(namespace: machineNamespace, lookup: inside, loop: loop) { [unowned self] addresses in
            natTable?.remove()
            natTable = nil
            guard !addresses.isEmpty else { return }
            do {
                natTable = try OwnedNatTable(
                    name: nextNatTableName(), targets: addresses.map { OwnedNatTable.Target(machine: $0, masqueraded: nil) }, forwards: plan.ports,
                    localhostLink: nil)
            } catch {
                printError("Failed to forward ports to the machine's addresses: \(error)")
            }
        }
    }

    private func nextNatTableName() -> String {
        Self.natTables += 1
        return Self.natTables == 1 ? natTableName : "\(natTableName)-\(Self.natTables)"
    }

    /// After the machine's end: undoes what the kernel does not undo with its namespace.
    func finish() {
        addressWatch = nil
        unwind(failed: false)
    }

    /// After a failed start: undoes everything at once.
    func tearDown() { unwind(failed: true) }

    private func unwind(failed: Bool) {
        while let step = undo.popLast() {
            switch step {
            case .always(let body): body()
            case .onFailure(let body): if failed { body() }
            }
        }
    }
}
