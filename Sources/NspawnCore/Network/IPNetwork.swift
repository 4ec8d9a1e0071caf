/// An address of either family with a prefix length, in network byte order (4 or 16 bytes): what
/// the kernel lists as routes and addresses, and the machines' IPv6 networks.
struct IPNetwork: Equatable, Hashable, Sendable {
    var bytes: [UInt8]
    var prefix: UInt8

    init(_ bytes: [UInt8], prefix: UInt8) {
        self.bytes = bytes
        self.prefix = prefix
    }

    /// Both hold an address in common: their first min(prefix) bits agree.
    func overlaps(_ other: IPNetwork) -> Bool {
        guard bytes.count == other.bytes.count else { return false }
        let bits = Int(min(prefix, other.prefix))
        for i in 0..<(bits / 8) where bytes[i] != other.bytes[i] { return false }
        guard bits % 8 != 0 else { return true }
        let mask = UInt8(0xff) << UInt8(8 - bits % 8)
        return bytes[bits / 8] & mask == other.bytes[bits / 8] & mask
    }

    /// The mask of the prefix, byte by byte.
    var mask: [UInt8] {
        (0..<bytes.count).map { i in
            let bits = max(0, min(8, Int(prefix) - 8 * i))
            return bits == 0 ? 0 : UInt8(0xff) << UInt8(8 - bits)
        }
    }

    /// The network itself: the address with the bits beyond the prefix cleared.
    var network: [UInt8] { zip(bytes, mask).map { $0 & $1 } }

    /// An address of this /64 (or shorter) network with the given last 32 bits.
    func address(suffix: UInt32) -> [UInt8] { Array(network.prefix(12)) + suffix.bigEndianBytes }

    /// IPv6 text: eight groups of hexadecimal, the longest run of zero groups (two or more) as "::".
    var addressText: String {
        guard bytes.count == 16 else { return IPv4Address(bytes).description }
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var best = (start: -1, length: 0)
        var i = 0
        while i < 8 {
            var j = i
            while j < 8 && groups[j] == 0 { j += 1 }
            if j - i > best.length && j - i >= 2 { best = (i, j - i) }
            i = max(j, i + 1)
        }
        func hex(_ range: ArraySlice<UInt16>) -> String { range.map { String($0, radix: 16) }.joined(separator: ":") }
        guard best.start >= 0 else { return hex(groups[...]) }
        return hex(groups[..<best.start]) + "::" + hex(groups[(best.start + best.length)...])
    }

    var description: String { "\(addressText)/\(prefix)" }
}

extension IPv4Subnet {
    init(_ network: IPNetwork) { self.init(IPv4Address(network.bytes), prefix: network.prefix) }
    var network4: IPNetwork { IPNetwork(network.bytes, prefix: prefix) }
}
