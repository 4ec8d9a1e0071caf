/// What swift-nspawn's DHCP server says to a machine's client (RFC 2131, 2132): pure, so every
/// answer is tested without a socket. It answers only the machine's own MAC address, and only
/// with the address the machine already has.
enum DHCPAnswer {
    struct Reply: Equatable {
        var message: [UInt8]
        /// The client's address when it has one, else the broadcast address (RFC 2131 4.1).
        var destination: IPv4Address
    }

    static let leaseSeconds: UInt32 = 3600

    /// The reply to a client's message, or nil when it is not ours to answer.
    /// - Parameter leaseHolder: the MAC address a live lease of an address records, for renewals
    ///   of the zone's other machines.
    static func reply(
        to request: [UInt8], addressing ours: MachineNetwork.Addressing, nameServers: [IPv4Address], leaseHolder: (IPv4Address) -> [UInt8]? = { _ in nil }
    ) -> Reply? {
        guard request.count >= 240, request[0] == 1, request[1] == 1, request[2] == 6, request[236..<240].elementsEqual([99, 130, 83, 99]) else { return nil }
        let options = Self.options(request[240...])
        guard let type = options[53]?.first else { return nil }
        let clientAddress = IPv4Address(Array(request[12..<16]))
        var addressing = ours
        let mac = Array(request[28..<34])
        if mac != ours.machineMAC {
            // A zone member's renewal, sent to the gateway, that reached our socket.
            guard type == 3, clientAddress.value != 0, ours.subnet.contains(clientAddress), leaseHolder(clientAddress) == mac else { return nil }
            addressing.machine = clientAddress
            addressing.machineMAC = mac
        }
        let replyType: UInt8
        switch type {
        case 1:  // DISCOVER
            replyType = 2  // OFFER
        case 3:  // REQUEST
            if let server = options[54], IPv4Address(server) != addressing.gateway { return nil }  // another server's offer was chosen
            let requested = options[50].map(IPv4Address.init) ?? clientAddress
            replyType = requested == addressing.machine ? 5 : 6  // ACK, or NAK
        case 8:  // INFORM
            replyType = 5
        default:  // DECLINE, RELEASE: nothing to answer, the address stays the machine's
            return nil
        }
        var reply = [UInt8](repeating: 0, count: 240)
        reply[0] = 2
        reply[1] = 1
        reply[2] = 6
        reply.replaceSubrange(4..<8, with: request[4..<8])  // xid
        reply.replaceSubrange(10..<12, with: request[10..<12])  // flags
        if replyType != 6 { reply.replaceSubrange(12..<16, with: request[12..<16]) }  // ciaddr (none in a NAK)
        if replyType != 6 && type != 8 { reply.replaceSubrange(16..<20, with: addressing.machine.bytes) }  // yiaddr
        reply.replaceSubrange(28..<44, with: request[28..<44])  // chaddr
        reply.replaceSubrange(236..<240, with: [99, 130, 83, 99])
        func option(_ code: UInt8, _ value: [UInt8]) { reply += [code, UInt8(value.count)] + value }
        option(53, [replyType])
        option(54, addressing.gateway.bytes)
        if replyType != 6 {
            if type != 8 { option(51, Self.leaseSeconds.bigEndianBytes) }
            option(1, addressing.subnet.mask.bigEndianBytes)
            option(28, addressing.machine.broadcast(prefix: addressing.subnet.prefix).bytes)
            option(3, addressing.gateway.bytes)
            if !nameServers.isEmpty { option(6, nameServers.prefix(3).flatMap(\.bytes)) }
        }
        reply.append(255)
        // At least BOOTP's 300 bytes, which old clients expect.
        if reply.count < 300 { reply += [UInt8](repeating: 0, count: 300 - reply.count) }
        // A client with an address hears us there; one without, by broadcast (RFC 2131 4.1).
        return Reply(message: reply, destination: clientAddress.value != 0 && replyType != 6 ? clientAddress : IPv4Address(0xffff_ffff))
    }

    static func options(_ bytes: ArraySlice<UInt8>) -> [UInt8: [UInt8]] {
        var result: [UInt8: [UInt8]] = [:]
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let code = bytes[i]
            if code == 255 { break }
            if code == 0 {
                i += 1
                continue
            }
            guard i + 1 < bytes.endIndex, i + 2 + Int(bytes[i + 1]) <= bytes.endIndex else { break }
            result[code] = Array(bytes[(i + 2)..<(i + 2 + Int(bytes[i + 1]))])
            i += 2 + Int(bytes[i + 1])
        }
        return result
    }
}
