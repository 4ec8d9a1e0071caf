/// A machine's NAT, in an nftables table of its own (family inet) that the supervisor's nfnetlink
/// socket owns (NFT_TABLE_F_OWNER, kernel 5.12): nobody else can change it, `nft flush ruleset`
/// skips it, and the kernel deletes it when the socket closes, so even a SIGKILLed supervisor
/// leaves no rule behind. It masquerades what the machine's subnet sends elsewhere, and forwards
/// each -p port of the host's own addresses to the machine.
final class OwnedNatTable {
    private let socket: NetlinkSocket
    let name: String

    private enum Message {
        static func type(_ message: UInt16) -> UInt16 { 10 << 8 | message }  // NFNL_SUBSYS_NFTABLES
        static let newTable: UInt16 = 0
        static let newChain: UInt16 = 3
        static let newRule: UInt16 = 6
        static let batchBegin: UInt16 = 16
        static let batchEnd: UInt16 = 17
    }

    private static let inet: UInt8 = 1
    private static let ipv4: UInt8 = 2
    private static let ipv6: UInt8 = 10

    /// One family's part: the machine's address, and its network when we masquerade it.
    struct Target {
        var machine: [UInt8]
        var masqueraded: IPNetwork?
    }

    /// Each target's network, if given, is masqueraded towards everything else; each forward goes
    /// to the machine's address of the family it came in by. With `localhostLink` (the machine's
    /// own veth, which has route_localnet), IPv4 forwards work from localhost too, and whatever
    /// comes in on that link to or from 127.0.0.0/8 is dropped before anything else sees it.
    init(name: String, targets: [Target], forwards: [PortForward], localhostLink: String?) throws {
        self.name = name
        socket = try NetlinkSocket(protocol: NetlinkSocket.netfilter)
        let flags = NetlinkMessage.request | NetlinkMessage.acknowledge | NetlinkMessage.create
        var batch: [NetlinkMessage] = [NetlinkMessage(type: Message.batchBegin, flags: NetlinkMessage.request, header: [0, 0] + UInt16(10).bigEndianBytes)]

        var table = NetlinkMessage(type: Message.type(Message.newTable), flags: flags | NetlinkMessage.exclusive, header: Self.header)
        table.add(1, string: name)  // NFTA_TABLE_NAME
        table.add(2, bigEndian: 2)  // NFTA_TABLE_FLAGS: NFT_TABLE_F_OWNER
        batch.append(table)

        // NAT chains at systemd's priorities: dstnat + 1 and srcnat + 1. Each base chain is a
        // netfilter hook, whose removal with the table costs a grace period (about 8 ms here):
        // only those with rules. postrouting masquerades, and for localhost:PORT (IPv4).
        var chains: [(String, UInt32, Int32, String)] = forwards.isEmpty ? [] : [("prerouting", 0, -99, "nat"), ("output", 3, -99, "nat")]
        if targets.contains(where: { $0.masqueraded != nil }) || localhostLink != nil { chains.append(("postrouting", 4, 101, "nat")) }
        // At raw priority, before connection tracking and NAT.
        if localhostLink != nil { chains.append(("guard", 0, -300, "filter")) }
        for (chainName, hook, priority, type) in chains {
            var chain = NetlinkMessage(type: Message.type(Message.newChain), flags: flags, header: Self.header)
            chain.add(1, string: name)  // NFTA_CHAIN_TABLE
            chain.add(3, string: chainName)  // NFTA_CHAIN_NAME
            chain.nest(4) { hookAttributes in  // NFTA_CHAIN_HOOK
                hookAttributes.add(1, bigEndian: hook)
                hookAttributes.add(2, bigEndian: UInt32(bitPattern: priority))
            }
            chain.add(7, string: type)  // NFTA_CHAIN_TYPE
            batch.append(chain)
        }

        for target in targets {
            // Where the family's source and destination lie in its header.
            let (family, source, destination): (UInt8, UInt32, UInt32) = target.machine.count == 4 ? (Self.ipv4, 12, 16) : (Self.ipv6, 8, 24)
            let machine = target.machine
            let only = Expression.family(family)
            if let network = target.masqueraded {
                batch.append(
                    rule(
                        "postrouting",
                        only + Expression.match(offset: source, network, equal: true) + Expression.match(offset: destination, network, equal: false)
                            + [.masquerade]))
            }
            // The host itself reaches a forwarded port at its own addresses, and at localhost on
            // IPv4 with `localhostLink`: then the gateway's address becomes the source, since no
            // other link may carry a loopback address. IPv6 has no route_localnet: ::1 is never
            // forwarded.
            let loopback = family == Self.ipv4 ? IPNetwork([127, 0, 0, 0], prefix: 8) : IPNetwork([UInt8](repeating: 0, count: 15) + [1], prefix: 128)
            let localhost = family == Self.ipv4 && localhostLink != nil
            if let link = localhostLink, family == Self.ipv4, !forwards.isEmpty {
                // The machine never reaches the host's localhost, nor poses as it.
                for offset in [destination, source] {
                    batch.append(
                        rule(
                            "guard",
                            only + [.meta(key: 6), .compare(equal: true, Self.interfaceName(link))] + Expression.match(offset: offset, loopback, equal: true)
                                + [.drop]))
                }
            }
            if localhost && !forwards.isEmpty {
                batch.append(
                    rule(
                        "postrouting",
                        only + Expression.match(offset: source, loopback, equal: true)
                            + Expression.match(offset: destination, IPNetwork(machine, prefix: 32), equal: true) + [
                                .masquerade
                            ]))
            }
            for forward in forwards {
                let dnat: [Expression] =
                    Expression.destinationIsLocal + [
                        .meta(key: 16), .compare(equal: true, [forward.proto.number]),  // meta l4proto
                        .payload(base: 2, offset: 2, length: 2), .compare(equal: true, forward.hostPort.bigEndianBytes),  // th dport
                        .immediate(register: 1, machine), .immediate(register: 2, forward.machinePort.bigEndianBytes), .dnat(family: family),
                    ]
                batch.append(rule("prerouting", only + dnat))
                batch.append(rule("output", only + (localhost ? [] : Expression.match(offset: destination, loopback, equal: false)) + dnat))
            }
        }
        batch.append(NetlinkMessage(type: Message.batchEnd, flags: NetlinkMessage.request, header: [0, 0] + UInt16(10).bigEndianBytes))
        try socket.performBatch(batch, "Failed to add nftables table inet \(name)")
    }

    private static let header: [UInt8] = [inet, 0, 0, 0]

    /// An interface name as meta iifname loads it: IFNAMSIZ (16) bytes, zero-padded.
    private static func interfaceName(_ name: String) -> [UInt8] {
        Array((Array(name.utf8) + [UInt8](repeating: 0, count: 16)).prefix(16))
    }

    /// Removes the table: our socket is closed by a short-lived child (SlowClose).
    func remove() { SlowClose.close(socket.fd) }

    private func rule(_ chain: String, _ expressions: [Expression]) -> NetlinkMessage {
        var rule = NetlinkMessage(
            type: Message.type(Message.newRule), flags: NetlinkMessage.request | NetlinkMessage.acknowledge | NetlinkMessage.create | NetlinkMessage.append,
            header: Self.header)
        rule.add(1, string: name)  // NFTA_RULE_TABLE
        rule.add(2, string: chain)  // NFTA_RULE_CHAIN
        rule.nest(4) { list in  // NFTA_RULE_EXPRESSIONS
            for expression in expressions {
                list.nest(1) { expression.encode(into: &$0) }  // NFTA_LIST_ELEM
            }
        }
        return rule
    }

    /// The nftables expressions these rules use, as the kernel's nft_* modules read them. Registers
    /// are NFT_REG_1 (1) and NFT_REG_2 (2); every number attribute is big-endian.
    private enum Expression {
        case meta(key: UInt32)
        case payload(base: UInt32, offset: UInt32, length: UInt32)
        case bitwise(mask: [UInt8])
        case compare(equal: Bool, [UInt8])
        case immediate(register: UInt32, [UInt8])
        case dnat(family: UInt8)
        /// The verdict: drop.
        case drop
        case masquerade
        /// fib daddr type → register 1.
        case fibDestinationType

        /// meta nfproto ipv4 or ipv6.
        static func family(_ nfproto: UInt8) -> [Expression] { [.meta(key: 15), .compare(equal: true, [nfproto])] }
        /// fib daddr type local (RTN_LOCAL, in host byte order as the fib expression stores it).
        static let destinationIsLocal: [Expression] = [.fibDestinationType, .compare(equal: true, withUnsafeBytes(of: UInt32(2)) { Array($0) })]

        /// The network header's address at `offset` (a source or destination) in, or not in, the network.
        static func match(offset: UInt32, _ network: IPNetwork, equal: Bool) -> [Expression] {
            [.payload(base: 1, offset: offset, length: UInt32(network.bytes.count)), .bitwise(mask: network.mask), .compare(equal: equal, network.network)]
        }

        func encode(into element: inout NetlinkMessage) {
            func data(_ type: UInt16, _ value: [UInt8], in message: inout NetlinkMessage) {
                message.nest(type) { $0.add(1, value) }  // NFTA_DATA_VALUE
            }
            switch self {
            case .meta(let key):
                element.add(1, string: "meta")
                element.nest(2) {
                    $0.add(1, bigEndian: 1)  // NFTA_META_DREG
                    $0.add(2, bigEndian: key)  // NFTA_META_KEY
                }
            case .payload(let base, let offset, let length):
                element.add(1, string: "payload")
                element.nest(2) {
                    $0.add(1, bigEndian: 1)  // DREG
                    $0.add(2, bigEndian: base)
                    $0.add(3, bigEndian: offset)
                    $0.add(4, bigEndian: length)
                }
            case .bitwise(let mask):
                element.add(1, string: "bitwise")
                element.nest(2) {
                    $0.add(1, bigEndian: 1)  // SREG
                    $0.add(2, bigEndian: 1)  // DREG
                    $0.add(3, bigEndian: UInt32(mask.count))
                    data(4, mask, in: &$0)
                    data(5, [UInt8](repeating: 0, count: mask.count), in: &$0)  // XOR
                }
            case .compare(let equal, let value):
                element.add(1, string: "cmp")
                element.nest(2) {
                    $0.add(1, bigEndian: 1)  // SREG
                    $0.add(2, bigEndian: equal ? 0 : 1)  // NFT_CMP_EQ, NFT_CMP_NEQ
                    data(3, value, in: &$0)
                }
            case .immediate(let register, let value):
                element.add(1, string: "immediate")
                element.nest(2) {
                    $0.add(1, bigEndian: register)
                    data(2, value, in: &$0)
                }
            case .dnat(let family):
                element.add(1, string: "nat")
                element.nest(2) {
                    $0.add(1, bigEndian: 1)  // NFT_NAT_DNAT
                    $0.add(2, bigEndian: UInt32(family))
                    $0.add(3, bigEndian: 1)  // address from register 1
                    $0.add(5, bigEndian: 2)  // port from register 2
                }
            case .masquerade:
                element.add(1, string: "masq")
            case .drop:
                element.add(1, string: "immediate")
                element.nest(2) {
                    $0.add(1, bigEndian: 0)  // NFT_REG_VERDICT
                    $0.nest(2) { data in data.nest(2) { $0.add(1, bigEndian: 0) } }  // NFTA_DATA_VERDICT { NFTA_VERDICT_CODE: NF_DROP }
                }
            case .fibDestinationType:
                element.add(1, string: "fib")
                element.nest(2) {
                    $0.add(1, bigEndian: 1)  // DREG
                    $0.add(2, bigEndian: 3)  // NFT_FIB_RESULT_ADDRTYPE
                    $0.add(3, bigEndian: 2)  // NFTA_FIB_F_DADDR
                }
            }
        }
    }
}
