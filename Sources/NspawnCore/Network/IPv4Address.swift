#if canImport(Glibc)
    import Glibc
#endif

/// An IPv4 address as a number, printed dotted.
struct IPv4Address: Equatable, Hashable, Sendable, CustomStringConvertible, Comparable {
    var value: UInt32

    init(_ value: UInt32) { self.value = value }
    init(_ bytes: [UInt8]) { value = bytes.prefix(4).reduce(0) { $0 << 8 | UInt32($1) } }

    init?(parsing text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        self.value = value
    }

    /// Network byte order.
    var bytes: [UInt8] { value.bigEndianBytes }
    var description: String { bytes.map(String.init).joined(separator: ".") }

    func broadcast(prefix: UInt8) -> IPv4Address { IPv4Address(value | ~IPv4Subnet.mask(prefix)) }

    /// This address and `port` as a struct sockaddr, for bind(2) and sendto(2).
    func withSocketAddress<T>(port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = value.bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// 0.0.0.0: every address of the host.
    static let any = IPv4Address(0)
    static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}

/// A network: its first address and prefix length.
struct IPv4Subnet: Equatable, Hashable, Sendable, CustomStringConvertible {
    var network: IPv4Address
    var prefix: UInt8

    init(_ address: IPv4Address, prefix: UInt8) {
        network = IPv4Address(address.value & Self.mask(prefix))
        self.prefix = prefix
    }

    static func mask(_ prefix: UInt8) -> UInt32 { prefix == 0 ? 0 : ~UInt32(0) << (32 - UInt32(prefix)) }

    var mask: UInt32 { Self.mask(prefix) }
    var description: String { "\(network)/\(prefix)" }
    /// The n-th address in it (1 is the first host).
    func host(_ n: UInt32) -> IPv4Address { IPv4Address(network.value + n) }
    var hostCount: UInt32 { prefix >= 31 ? 0 : (~mask) - 1 }

    func contains(_ address: IPv4Address) -> Bool { address.value & mask == network.value }
    func overlaps(_ other: IPv4Subnet) -> Bool {
        let shorter = min(prefix, other.prefix)
        return network.value & Self.mask(shorter) == other.network.value & Self.mask(shorter)
    }
}
