#if canImport(Glibc)
    import Glibc
#endif
import SystemPackage

/// rtnetlink, typed: links, addresses and routes of the namespace the socket lives in.
final class RouteNetlink {
    private enum Message {
        static let newLink: UInt16 = 16
        static let deleteLink: UInt16 = 17
        static let getLink: UInt16 = 18
        static let setLink: UInt16 = 19
        static let newAddress: UInt16 = 20
        static let getAddress: UInt16 = 22
        static let newRoute: UInt16 = 24
        static let getRoute: UInt16 = 26
        static let newLinkProperty: UInt16 = 108
    }

    private enum Link {
        static let address: UInt16 = 1
        static let name: UInt16 = 3
        static let parent: UInt16 = 5
        static let master: UInt16 = 10
        static let info: UInt16 = 18
        static let alias: UInt16 = 20
        static let namespacePID: UInt16 = 19
        static let namespaceFD: UInt16 = 28
        static let propertyList: UInt16 = 52
        static let alternativeName: UInt16 = 53
        static let infoKind: UInt16 = 1
        static let infoData: UInt16 = 2
        static let vethPeer: UInt16 = 1
        static let up: UInt32 = 1
    }

    /// A link as a dump shows it.
    struct LinkInfo: Equatable {
        var index: Int32
        var name: String
        var kind: String?
        var master: Int32?
        var alias: String?
        var mac: [UInt8]?
    }

    /// Where a new link lives: a namespace by descriptor, or here.
    enum Namespace {
        case here
        case descriptor(Int32)
    }

    let socket: NetlinkSocket

    init(namespace: OwnedFD? = nil) throws {
        socket = try NetlinkSocket(protocol: NetlinkSocket.route, namespace: namespace)
    }

    private static func interfaceHeader(index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) -> [UInt8] {
        [UInt8(AF_UNSPEC), 0, 0, 0] + index.littleEndianBytes + flags.littleEndianBytes + change.littleEndianBytes
    }

    private static func namespaceAttribute(_ namespace: Namespace, into message: inout NetlinkMessage) {
        if case .descriptor(let fd) = namespace { message.add(Link.namespaceFD, u32: UInt32(bitPattern: fd)) }
    }

    /// A veth pair in one request: `name` here, `peer` born in `peerNamespace`.
    func addVeth(name: String, mac: [UInt8], peer: String, peerMAC: [UInt8], peerNamespace: Namespace) throws {
        var message = NetlinkMessage(
            type: Message.newLink, flags: NetlinkMessage.request | NetlinkMessage.acknowledge | NetlinkMessage.create | NetlinkMessage.exclusive,
            header: Self.interfaceHeader())
        message.add(Link.name, string: name)
        message.add(Link.address, mac)
        message.nest(Link.info) { info in
            info.add(Link.infoKind, string: "veth")
            info.nest(Link.infoData) { data in
                data.nest(Link.vethPeer) { peerInfo in
                    peerInfo.append(raw: Self.interfaceHeader())
                    peerInfo.add(Link.name, string: peer)
                    peerInfo.add(Link.address, peerMAC)
                    Self.namespaceAttribute(peerNamespace, into: &peerInfo)
                }
            }
        }
        try socket.perform(message, "Failed to add new veth interfaces (\(name):\(peer))")
    }

    /// A link of a kind with no peer: a bridge, or a macvlan/ipvlan on `parent` in `mode`
    /// (IFLA_MACVLAN_MODE, a u32, and IFLA_IPVLAN_MODE, a u16, are both attribute 1).
    func addLink(name: String, kind: String, mac: [UInt8]? = nil, parent: Int32? = nil, mode: UInt32? = nil, namespace: Namespace = .here) throws {
        var message = NetlinkMessage(
            type: Message.newLink, flags: NetlinkMessage.request | NetlinkMessage.acknowledge | NetlinkMessage.create | NetlinkMessage.exclusive,
            header: Self.interfaceHeader())
        message.add(Link.name, string: name)
        if let mac { message.add(Link.address, mac) }
        if let parent { message.add(Link.parent, u32: UInt32(bitPattern: parent)) }
        Self.namespaceAttribute(namespace, into: &message)
        message.nest(Link.info) { info in
            info.add(Link.infoKind, string: kind)
            if let mode { info.nest(Link.infoData) { $0.add(1, kind == "ipvlan" ? UInt16(mode).littleEndianBytes : mode.littleEndianBytes) } }
        }
        try socket.perform(message, "Failed to add new \(kind) interface \(name)")
    }

    func deleteLink(_ name: String) throws {
        var message = NetlinkMessage(type: Message.deleteLink, flags: NetlinkMessage.request | NetlinkMessage.acknowledge, header: Self.interfaceHeader())
        message.add(Link.name, string: name)
        try socket.perform(message, "Failed to remove interface \(name)")
    }

    /// Sets a link up, and optionally its master (a bridge), its alias, its name and its namespace,
    /// in one request (found by index when it is renamed: IFLA_IFNAME is then the new name).
    func setLink(
        index: Int32? = nil, _ name: String, up: Bool? = nil, master: Int32? = nil, alias: String? = nil, newName: String? = nil, namespace: Namespace = .here
    ) throws {
        let flags = up == true ? Link.up : 0
        let change = up == nil ? 0 : Link.up
        var message = NetlinkMessage(
            type: Message.setLink, flags: NetlinkMessage.request | NetlinkMessage.acknowledge,
            header: Self.interfaceHeader(index: try index ?? (newName == nil ? 0 : linkIndex(name)), flags: flags, change: change))
        message.add(Link.name, string: newName ?? name)
        if let master { message.add(Link.master, u32: UInt32(bitPattern: master)) }
        if let alias { message.add(Link.alias, string: alias) }
        Self.namespaceAttribute(namespace, into: &message)
        try socket.perform(message, "Failed to change interface \(name)")
    }

    /// The full name of a shortened link, as an alternative name (kernel 5.5).
    func addAlternativeName(_ alternative: String, to name: String) throws {
        var message = NetlinkMessage(
            type: Message.newLinkProperty, flags: NetlinkMessage.request | NetlinkMessage.acknowledge | NetlinkMessage.exclusive | NetlinkMessage.append,
            header: Self.interfaceHeader())
        message.add(Link.name, string: name)
        message.nest(Link.propertyList) { $0.add(Link.alternativeName, string: alternative) }
        try socket.perform(message, "Failed to add alternative name \(alternative) to \(name)")
    }

    func links() throws -> [LinkInfo] {
        let replies = try socket.dump(
            NetlinkMessage(type: Message.getLink, flags: NetlinkMessage.request | NetlinkMessage.dump, header: Self.interfaceHeader()),
            "Failed to list interfaces")
        return replies.compactMap { reply in
            guard reply.type == Message.newLink, reply.payload.count >= 16 else { return nil }
            let attributes = reply.attributes(after: 16)
            guard let name = attributes[Link.name]?.cString else { return nil }
            let kind = attributes[Link.info].flatMap { NetlinkReply.attributes(in: $0)[Link.infoKind]?.cString }
            let master = attributes[Link.master].map { Int32(bitPattern: $0.u32(at: $0.startIndex)) }
            return LinkInfo(
                index: Int32(bitPattern: reply.payload.u32(at: reply.payload.startIndex + 4)), name: name, kind: kind, master: master,
                alias: attributes[Link.alias]?.cString, mac: attributes[Link.address].map(Array.init))
        }
    }

    /// The index of the link named so in the socket's namespace.
    func linkIndex(_ name: String) throws -> Int32 {
        var message = NetlinkMessage(type: Message.getLink, flags: NetlinkMessage.request | NetlinkMessage.acknowledge, header: Self.interfaceHeader())
        message.add(Link.name, string: name)
        let replies = try socket.request(message, "Failed to find interface \(name)")
        guard let reply = replies.first(where: { $0.type == Message.newLink && $0.payload.count >= 16 }) else {
            throw NetlinkError(operation: "Failed to find interface \(name)", errno: .noSuchFileOrDirectory, detail: nil)
        }
        return Int32(bitPattern: reply.payload.u32(at: reply.payload.startIndex + 4))
    }

    /// `address`/`prefix` on the link: IPv4 (with its broadcast address) or IPv6 (usable at
    /// once: no duplicate address detection for an address only this link's subnet has).
    func addAddress(_ address: [UInt8], prefix: UInt8, to name: String) throws {
        let index = try linkIndex(name)
        let v6 = address.count == 16
        var message = NetlinkMessage(
            type: Message.newAddress, flags: NetlinkMessage.request | NetlinkMessage.acknowledge | NetlinkMessage.create | NetlinkMessage.exclusive,
            header: [UInt8(v6 ? AF_INET6 : AF_INET), prefix, v6 ? 0x02 : 0, 0] + index.littleEndianBytes)
        message.add(2, address)  // IFA_LOCAL
        message.add(1, address)  // IFA_ADDRESS
        if v6 {
            message.add(8, u32: 0x02)  // IFA_FLAGS: IFA_F_NODAD
        } else {
            message.add(4, IPv4Address(address).broadcast(prefix: prefix).bytes)  // IFA_BROADCAST
        }
        try socket.perform(message, "Failed to add address \(Self.text(address))/\(prefix) to \(name)")
    }

    /// The default route through `gateway` (IPv4 or IPv6) on the link.
    func addDefaultRoute(via gateway: [UInt8], on name: String) throws {
        let index = try linkIndex(name)
        // rtmsg: family, dst_len, src_len, tos, table (main), protocol (static), scope (universe), type (unicast); flags.
        var message = NetlinkMessage(
            type: Message.newRoute, flags: NetlinkMessage.request | NetlinkMessage.acknowledge | NetlinkMessage.create | NetlinkMessage.exclusive,
            header: [UInt8(gateway.count == 16 ? AF_INET6 : AF_INET), 0, 0, 0, 254, 4, 0, 1] + UInt32(0).littleEndianBytes)
        message.add(5, gateway)  // RTA_GATEWAY
        message.add(4, u32: UInt32(bitPattern: index))  // RTA_OIF
        try socket.perform(message, "Failed to add default route via \(Self.text(gateway)) on \(name)")
    }

    /// Every network of the family (AF_INET, AF_INET6) this namespace routes or holds an address
    /// in, but its default routes: what a machine's subnet must not overlap.
    func usedNetworks(family: Int32) throws -> [IPNetwork] {
        var networks: [IPNetwork] = []
        let header: [UInt8] = [UInt8(family), 0, 0, 0, 0, 0, 0, 0] + UInt32(0).littleEndianBytes
        for reply in try socket.dump(
            NetlinkMessage(type: Message.getRoute, flags: NetlinkMessage.request | NetlinkMessage.dump, header: header), "Failed to list routes")
        where reply.type == Message.newRoute && reply.payload.count >= 12 {
            let prefix = reply.payload[reply.payload.startIndex + 1]
            // Local and broadcast routes (table local) repeat the addresses, listed below.
            guard prefix > 0, let destination = reply.attributes(after: 12)[1] else { continue }
            networks.append(IPNetwork(Array(destination), prefix: prefix))
        }
        return networks + (try addresses(family: family))
    }

    /// The addresses of the family on one link, or on all, with their prefix lengths.
    func addresses(of name: String? = nil, family: Int32) throws -> [IPNetwork] {
        let index = try name.map(linkIndex)
        let header: [UInt8] = [UInt8(family), 0, 0, 0] + UInt32(0).littleEndianBytes
        return try socket.dump(
            NetlinkMessage(type: Message.getAddress, flags: NetlinkMessage.request | NetlinkMessage.dump, header: header), "Failed to list addresses"
        )
        .compactMap { reply in
            guard reply.type == Message.newAddress, reply.payload.count >= 8, reply.payload[reply.payload.startIndex] == UInt8(family) else { return nil }
            if let index, Int32(bitPattern: reply.payload.u32(at: reply.payload.startIndex + 4)) != index { return nil }
            let attributes = reply.attributes(after: 8)
            guard let local = attributes[2] ?? attributes[1] else { return nil }
            return IPNetwork(Array(local), prefix: reply.payload[reply.payload.startIndex + 1])
        }
    }

    private static func text(_ address: [UInt8]) -> String {
        address.count == 4 ? IPv4Address(address).description : IPNetwork(address, prefix: 128).addressText
    }
}

extension NetlinkMessage {
    static let append: UInt16 = 0x800
}
