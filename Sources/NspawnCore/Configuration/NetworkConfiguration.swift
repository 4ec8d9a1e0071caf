/// The network options, validated, with systemd-nspawn 252's syntax and implications: every link
/// option gives the machine a network namespace of its own; --network-bridge and --network-zone
/// imply a veth; --network-namespace-path stands alone.
public struct NetworkConfiguration: Equatable, Sendable {
    /// A link of the host brought into the machine, under the name it has there.
    public struct NamedLink: Equatable, Sendable {
        public var host: String
        public var machine: String
    }

    /// The machine's own network namespace (true unless --no-private-network).
    public var privateNetwork = true
    /// -n, or implied by --network-bridge and --network-zone.
    public var veth = false
    public var vethExtras: [NamedLink] = []
    public var bridge: String?
    public var zone: String?
    /// --network-interface: moved in, and back under its own name at the end.
    public var interfaces: [NamedLink] = []
    /// --network-macvlan and --network-ipvlan: `host` is the parent link; `machine` nil means the
    /// default name, mv-PARENT or iv-PARENT (shortened when too long).
    public var macvlans: [NamedLink] = []
    public var ipvlans: [NamedLink] = []
    public var namespacePath: String?
    public var ports: [PortForward] = []

    public init() {}

    init(_ o: CommandLineOptions) throws(UserError) {
        let anyLinkOption =
            o.networkVeth || !o.networkVethExtras.isEmpty || o.networkBridge != nil || o.networkZone != nil || !o.networkInterfaces.isEmpty
            || !o.networkMacvlans.isEmpty || !o.networkIpvlans.isEmpty
        if let path = o.networkNamespacePath {
            guard PathName.normalizedAbsolute(path) != nil else { throw UserError("--network-namespace-path= must be an absolute path: \(path)") }
            if anyLinkOption || o.privateNetworkGiven || !o.ports.isEmpty {
                throw UserError("--network-namespace-path= cannot be combined with other network options.")
            }
            namespacePath = path
        }
        if o.noPrivateNetwork && (anyLinkOption || !o.ports.isEmpty) {
            throw UserError("--no-private-network cannot be combined with options that give the machine links or ports of its own.")
        }
        privateNetwork = !o.noPrivateNetwork
        if let bridge = o.networkBridge, let zone = o.networkZone {
            throw UserError("--network-bridge=\(bridge) and --network-zone=\(zone) are mutually exclusive.")
        }
        if let bridge = o.networkBridge {
            guard Self.isValidInterfaceName(bridge) else { throw UserError("Bridge interface name not valid: \(bridge)") }
            self.bridge = bridge
        }
        if let zone = o.networkZone {
            guard Self.isValidInterfaceName("vz-" + zone) else {
                throw UserError("Network zone name not valid: \(zone) (at most 12 characters, none of them /, : or white space).")
            }
            self.zone = zone
        }
        veth = o.networkVeth || bridge != nil || zone != nil
        vethExtras = try o.networkVethExtras.map { text throws(UserError) in
            try Self.namedLink(text, option: "--network-veth-extra", defaultMachineName: { $0 })
        }
        interfaces = try o.networkInterfaces.map { text throws(UserError) in
            try Self.namedLink(text, option: "--network-interface", defaultMachineName: { $0 })
        }
        macvlans = try o.networkMacvlans.map { text throws(UserError) in try Self.namedLink(text, option: "--network-macvlan", defaultMachineName: nil) }
        ipvlans = try o.networkIpvlans.map { text throws(UserError) in try Self.namedLink(text, option: "--network-ipvlan", defaultMachineName: nil) }
        let moved = interfaces.map(\.host)
        if let twice = Dictionary(grouping: moved, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw UserError("Interface \(twice) given to --network-interface= more than once.")
        }
        ports = []
        for text in o.ports {
            let port = try PortForward.parse(text)
            if ports.contains(where: { $0.proto == port.proto && $0.hostPort == port.hostPort }) {
                throw UserError("Duplicate port specification: \(text)")
            }
            ports.append(port)
        }
        // Names inside the machine must not clash (the defaults of macvlan and ipvlan included).
        var inside = veth ? ["host0"] : []
        inside += vethExtras.map(\.machine) + interfaces.map(\.machine) + macvlans.map(\.machine) + ipvlans.map(\.machine)
        if let twice = Dictionary(grouping: inside.filter { !$0.isEmpty }, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw UserError("Interface name \(twice) would exist twice in the machine.")
        }
    }

    /// Whether the machine has links of its own and so needs CAP_NET_ADMIN's world of its own.
    public var hasLinks: Bool {
        veth || !vethExtras.isEmpty || !interfaces.isEmpty || !macvlans.isEmpty || !ipvlans.isEmpty
    }

    /// Whether swift-nspawn gives the machine its addresses (and a DHCP server, and NAT): a veth
    /// of its own (-n) or in a zone, not on the user's bridge.
    public var addressed: Bool { veth && bridge == nil }

    /// "HOST[:MACHINE]"; an empty MACHINE in the result means the option's default name.
    private static func namedLink(_ text: String, option: String, defaultMachineName: ((String) -> String)?) throws(UserError) -> NamedLink {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard isValidInterfaceName(parts[0]) else { throw UserError("Network interface name not valid: \(parts[0]) (\(option)=\(text))") }
        let machine = parts.count == 2 ? parts[1] : defaultMachineName?(parts[0]) ?? ""
        guard machine.isEmpty || isValidInterfaceName(machine) else { throw UserError("Network interface name not valid: \(machine) (\(option)=\(text))") }
        return NamedLink(host: parts[0], machine: machine)
    }

    /// The kernel's rule (dev_valid_name): 1 to 15 bytes, not "." or "..", no "/", ":" or white space.
    static func isValidInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count <= 15 && name != "." && name != ".." && !bytes.contains { $0 == 0x2f || $0 == 0x3a || $0 <= 0x20 || $0 == 0x7f }
    }
}

/// -p/--port=[tcp:|udp:]HOST[:MACHINE].
public struct PortForward: Equatable, Sendable {
    public enum Proto: String, Sendable {
        case tcp, udp
        /// IPPROTO_TCP and IPPROTO_UDP.
        var number: UInt8 { self == .tcp ? 6 : 17 }
    }

    public var proto: Proto
    public var hostPort: UInt16
    public var machinePort: UInt16

    static func parse(_ text: String) throws(UserError) -> PortForward {
        var rest = Substring(text)
        var proto = Proto.tcp
        for candidate in [Proto.tcp, .udp] where rest.hasPrefix(candidate.rawValue + ":") {
            proto = candidate
            rest = rest.dropFirst(candidate.rawValue.count + 1)
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        func port(_ part: Substring) throws(UserError) -> UInt16 {
            guard let value = UInt16(part), value > 0 else { throw UserError("Failed to parse port specification: \(text)") }
            return value
        }
        guard parts.count <= 2 else { throw UserError("Failed to parse port specification: \(text)") }
        let host = try port(parts[0])
        return PortForward(proto: proto, hostPort: host, machinePort: parts.count == 2 ? try port(parts[1]) : host)
    }
}
