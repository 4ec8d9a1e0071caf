/// The machine's network, decided: which namespace it lives in, every link with its names on
/// both sides and its MAC addresses, and the ports forwarded to it. Pure: the host's state (free
/// subnets, names already taken) is consulted only when the links are made (MachineNetwork).
struct NetworkPlan: Equatable, Sendable {
    enum Namespace: Equatable, Sendable {
        /// The host's (--no-private-network).
        case host
        /// A new one, the machine's own.
        case own
        /// --network-namespace-path.
        case joined(String)
    }

    /// Where the host end of the machine's veth goes.
    enum Attachment: Equatable, Sendable {
        /// A subnet of its own, with the host end as the machine's gateway (-n).
        case routed
        /// The user's bridge; its network is the user's (--network-bridge).
        case bridge(String)
        /// The zone's bridge, made by its first member, removed after its last (--network-zone).
        case zone(String)
    }

    struct Veth: Equatable, Sendable {
        /// On the host: ve-NAME or vb-NAME, shortened to 15 characters when longer.
        var hostName: String
        /// The full name, given as the link's alternative name when `hostName` is shortened.
        var fullName: String
        var machineName: String
        var hostMAC: [UInt8]
        var machineMAC: [UInt8]
    }

    /// A macvlan (bridge mode) or ipvlan (L2 mode) on a host link, made inside the machine.
    struct LowerLink: Equatable, Sendable {
        enum Kind: String, Sendable { case macvlan, ipvlan }
        var kind: Kind
        var parent: String
        var name: String
        /// Macvlans only: ipvlans share their parent's.
        var mac: [UInt8]?
    }

    var namespace: Namespace
    var veth: Veth?
    var attachment: Attachment = .routed
    var extraVeths: [Veth] = []
    var lowerLinks: [LowerLink] = []
    var movedInterfaces: [NetworkConfiguration.NamedLink] = []
    var ports: [PortForward] = []
    /// The key of the MAC addresses made at run time (a zone's bridge).
    var hostMachineID: String
    /// Whether swift-nspawn addresses the veth's ends (-n, zones), runs their DHCP server and
    /// masquerades them, or leaves that to systemd-networkd on both sides (SWIFT_NSPAWN_OWN_ADDRESSES).
    var ownAddresses = true

    /// The host's IPv4 pool for machine subnets: a /28 for a machine of its own, a /24 per zone.
    static let pool = IPv4Subnet(IPv4Address(0x0a00_0000), prefix: 8)
    static let machinePrefix: UInt8 = 28
    static let zonePrefix: UInt8 = 24

    /// - Parameter hostMachineID: the host's /etc/machine-id, the key of every MAC address (so
    ///   that a machine keeps its MACs, and so its DHCP leases, across runs, and no two hosts share them).
    init(configuration n: NetworkConfiguration, machine: String, hostMachineID: String, ownAddresses: Bool = true) {
        self.hostMachineID = hostMachineID
        self.ownAddresses = ownAddresses
        if let path = n.namespacePath {
            namespace = .joined(path)
        } else {
            namespace = n.privateNetwork ? .own : .host
        }
        func mac(_ role: String) -> [UInt8] { Self.macAddress(hostMachineID: hostMachineID, machine: machine, role: role) }
        if n.veth {
            let prefix = n.bridge != nil || n.zone != nil ? "vb-" : "ve-"
            veth = Veth(
                hostName: Self.shortenedInterfaceName(prefix + machine), fullName: prefix + machine, machineName: "host0", hostMAC: mac("host-side"),
                machineMAC: mac("container-side"))
            if let bridge = n.bridge { attachment = .bridge(bridge) }
            if let zone = n.zone { attachment = .zone(zone) }
        }
        extraVeths = n.vethExtras.enumerated().map { index, link in
            Veth(
                hostName: link.host, fullName: link.host, machineName: link.machine, hostMAC: mac("veth-extra-host-side-\(index)"),
                machineMAC: mac("veth-extra-container-side-\(index)"))
        }
        lowerLinks =
            n.macvlans.enumerated().map { index, link in
                LowerLink(
                    kind: .macvlan, parent: link.host, name: link.machine.isEmpty ? Self.shortenedInterfaceName("mv-" + link.host) : link.machine,
                    mac: mac("macvlan-\(index)"))
            }
            + n.ipvlans.map { link in
                LowerLink(
                    kind: .ipvlan, parent: link.host, name: link.machine.isEmpty ? Self.shortenedInterfaceName("iv-" + link.host) : link.machine, mac: nil)
            }
        movedInterfaces = n.interfaces
        ports = n.ports
    }

    /// Whether there is anything to make once PID 1 exists.
    var hasLinks: Bool { veth != nil || !extraVeths.isEmpty || !lowerLinks.isEmpty || !movedInterfaces.isEmpty }

    /// Whether swift-nspawn gives the machine its addresses (and a DHCP server, and NAT).
    var addressed: Bool {
        guard veth != nil, ownAddresses else { return false }
        if case .bridge = attachment { return false }
        return true
    }

    /// Names of 16 bytes or more keep their first 11 and end in 4 characters of a hash of the
    /// whole name, as systemd-nspawn shortens them: "ve-" and 8 characters of the machine's name
    /// still show, and machines whose names share a prefix get different links.
    static func shortenedInterfaceName(_ name: String, attempt: Int = 0) -> String {
        let bytes = Array(name.utf8)
        guard bytes.count > 15 || attempt > 0 else { return name }
        let hash = StableHash.fnv1a(bytes + (attempt > 0 ? Array("#\(attempt)".utf8) : []))
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let bits = UInt32(truncatingIfNeeded: hash ^ (hash >> 32)) & 0xff_ffff
        let suffix = (0..<4).map { alphabet[Int((bits >> (18 - 6 * UInt32($0))) & 0x3f)] }
        return String(decoding: bytes.prefix(11) + suffix, as: UTF8.self)
    }

    /// A zone's bridge has one MAC address whoever makes it: stable for its members' neighbours,
    /// and how a bridge left by a killed run is known as ours.
    static func zoneBridgeMAC(hostMachineID: String, zone: String) -> [UInt8] {
        macAddress(hostMachineID: hostMachineID, machine: "", role: "zone-bridge-" + zone)
    }

    /// A locally administered unicast MAC address from a hash of the host's machine ID, the
    /// machine's name and the link's role.
    static func macAddress(hostMachineID: String, machine: String, role: String) -> [UInt8] {
        let hash = StableHash.fnv1a(Array("\(hostMachineID)\u{0}\(machine)\u{0}\(role)".utf8))
        var bytes = Array(hash.littleEndianBytes.prefix(6))
        bytes[0] = bytes[0] & 0xfe | 0x02
        return bytes
    }
}
