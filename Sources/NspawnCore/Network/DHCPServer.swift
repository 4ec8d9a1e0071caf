#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// A DHCPv4 server for one machine, on the host end of its veth (or its zone's bridge): it
/// answers that machine's MAC address, always with the address the machine already has
/// (MachineNetwork set it before the payload started), so a guest that runs a DHCP client
/// (networkd's 80-container-host0.network, dhclient, udhcpc) keeps it and learns its gateway and
/// DNS. A UDP socket bound to the link: a packet socket would see every frame and cost a
/// synchronize_net() (16 ms here) when it is closed. In a zone every member's server hears the
/// broadcasts but only one the renewals sent to the gateway's address, so each also renews
/// another member's address for the MAC its lease records.
final class DHCPServer {
    private let fd: OwnedFD
    private let addressing: MachineNetwork.Addressing
    private let nameServers: [IPv4Address]
    private var source: EventSource?

    init(addressing: MachineNetwork.Addressing, nameServers: [IPv4Address], loop: EventLoop) throws {
        self.addressing = addressing
        self.nameServers = nameServers
        let link = addressing.gatewayLink
        fd = OwnedFD(
            try sys("socket", path: "udp:67") {
                socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            })
        var on: Int32 = 1
        for option in [SO_REUSEADDR, SO_BROADCAST] {
            try sys("setsockopt", path: "udp:67") { setsockopt(fd.raw, SOL_SOCKET, option, &on, socklen_t(MemoryLayout<Int32>.size)) }
        }
        try sys("setsockopt(SO_BINDTODEVICE)", path: link) { setsockopt(fd.raw, SOL_SOCKET, SO_BINDTODEVICE, link, socklen_t(link.utf8.count)) }
        try sys("bind", path: "\(link):67") { IPv4Address.any.withSocketAddress(port: 67) { bind(fd.raw, $0, $1) } }
        source = try loop.addIO(fd.raw, events: UInt32(EPOLLIN.rawValue)) { [unowned self] _ in receive() }
    }

    deinit {
        source = nil
        fd.close()
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 1500)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd.raw, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            if let reply = DHCPAnswer.reply(to: Array(buffer[0..<n]), addressing: addressing, nameServers: nameServers, leaseHolder: NetworkLock.leaseHolder) {
                send(reply)
            }
        }
    }

    private func send(_ reply: DHCPAnswer.Reply) {
        _ = reply.message.withUnsafeBytes { bytes in
            reply.destination.withSocketAddress(port: 68) { sendto(fd.raw, bytes.baseAddress, bytes.count, 0, $0, $1) }
        }
    }
}
