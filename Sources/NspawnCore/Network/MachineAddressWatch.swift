#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Follows the addresses of the machine's links (RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR,
/// from a socket in its namespace), and says, each time they change, its first IPv4 and first
/// IPv6 address that are neither loopback nor link-local.
final class MachineAddressWatch {
    private let events: NetlinkSocket
    private let lookup: RouteNetlink
    private let changed: ([[UInt8]]) -> Void
    private var current: [[UInt8]] = []
    private var source: EventSource?

    /// - Parameter lookup: a socket of the machine's namespace, for the addresses themselves.
    init(namespace: OwnedFD, lookup: RouteNetlink, loop: EventLoop, changed: @escaping ([[UInt8]]) -> Void) throws {
        self.changed = changed
        events = try NetlinkSocket(protocol: NetlinkSocket.route, namespace: namespace)
        self.lookup = lookup
        for group: Int32 in [5, 9] {  // RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR
            var number = group
            // SOL_NETLINK, NETLINK_ADD_MEMBERSHIP
            try sys("setsockopt(NETLINK_ADD_MEMBERSHIP)", path: "netlink") { setsockopt(events.fd.raw, 270, 1, &number, socklen_t(MemoryLayout<Int32>.size)) }
        }
        source = try loop.addIO(events.fd.raw, events: UInt32(EPOLLIN.rawValue)) { [unowned self] _ in drain() }
        check()
    }

    deinit { source = nil }

    /// Reads what is queued (only that an address changed matters), then looks again.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while buffer.withUnsafeMutableBytes({ recv(events.fd.raw, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) > 0 {}
        check()
    }

    private func check() {
        let v4 = (try? lookup.addresses(family: AF_INET))?.first { $0.bytes[0] != 127 && !($0.bytes[0] == 169 && $0.bytes[1] == 254) }
        let v6 = (try? lookup.addresses(family: AF_INET6))?.first {
            $0.bytes != [UInt8](repeating: 0, count: 15) + [1] && !($0.bytes[0] == 0xfe && $0.bytes[1] & 0xc0 == 0x80)
        }
        let addresses = [v4, v6].compactMap { $0?.bytes }
        guard addresses != current else { return }
        current = addresses
        changed(addresses)
    }
}
