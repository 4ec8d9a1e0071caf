#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// A DHCPv4 server for one machine, on the host end of its veth: it answers that machine's MAC
/// address only, and always with the address the machine already has (MachineNetwork set it
/// before the payload started), so a guest that runs a DHCP client (networkd's
/// 80-container-host0.network, dhclient, udhcpc) keeps it and learns its gateway and DNS. It
/// speaks through a packet socket with a kernel filter that queues only UDP to port 67: the
/// guest has no address yet when it asks, a host firewall's input rules do not see it, and the
/// machine's other traffic never wakes the supervisor.
final class DHCPServer {
    private let fd: OwnedFD
    private let linkIndex: Int32
    private let addressing: MachineNetwork.Addressing
    private let nameServers: [IPv4Address]
    private var source: EventSource?

    init(link: Int32, addressing: MachineNetwork.Addressing, nameServers: [IPv4Address], loop: EventLoop) throws {
        linkIndex = link
        self.addressing = addressing
        self.nameServers = nameServers
        // ldb [9]; jeq #17 (UDP); ldh [6]; jset #0x1fff (a fragment); ldxb 4*([0]&0xf);
        // ldh [x+2]; jeq #67; ret #65535; ret #0.
        let program: [(UInt16, UInt8, UInt8, UInt32)] = [
            (0x30, 0, 0, 9), (0x15, 0, 6, 17), (0x28, 0, 0, 6), (0x45, 4, 0, 0x1fff), (0xb1, 0, 0, 0), (0x48, 0, 0, 2), (0x15, 0, 1, 67),
            (0x06, 0, 0, 65535), (0x06, 0, 0, 0),
        ]
        let bytes = program.flatMap { $0.0.littleEndianBytes + [$0.1, $0.2] + $0.3.littleEndianBytes }
        fd = OwnedFD(try sys("socket", path: "AF_PACKET") { bytes.withUnsafeBytes { nsp_packet_socket(link, $0.baseAddress, $0.count) } })
        source = try loop.addIO(fd.raw, events: UInt32(EPOLLIN.rawValue)) { [unowned self] _ in receive() }
    }

    deinit {
        source = nil
        fd.close()
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd.raw, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            let packet = Array(buffer[0..<n])
            let headerLength = Int(packet[0] & 0x0f) * 4
            guard packet.count >= headerLength + 8 + 240 else { continue }
            if let reply = DHCPAnswer.reply(to: Array(packet[(headerLength + 8)...]), addressing: addressing, nameServers: nameServers) {
                send(reply)
            }
        }
    }

    private func send(_ reply: DHCPAnswer.Reply) {
        let udpLength = UInt16(8 + reply.message.count)
        var header: [UInt8] = [0x45, 0x10] + (udpLength + 20).bigEndianBytes + [0, 0, 0, 0, 64, 17, 0, 0] + addressing.gateway.bytes + reply.destination.bytes
        header.replaceSubrange(10..<12, with: DHCPAnswer.checksum(header).bigEndianBytes)
        // A UDP checksum of 0 means none, which IPv4 allows.
        let packet = header + UInt16(67).bigEndianBytes + UInt16(68).bigEndianBytes + udpLength.bigEndianBytes + [0, 0] + reply.message
        _ = packet.withUnsafeBytes { nsp_packet_send(fd.raw, linkIndex, reply.mac, $0.baseAddress, $0.count) }
    }
}
