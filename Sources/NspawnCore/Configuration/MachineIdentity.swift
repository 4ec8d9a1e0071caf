/// Machine names follow systemd's hostname rules: what `machinectl` and the hostname accept.
public enum MachineName {
    public static let maximumLength = 64

    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumLength, bytes.first != UInt8(ascii: "."), bytes.last != UInt8(ascii: ".") else {
            return false
        }
        var previousDot = false
        for b in bytes {
            let dot = b == UInt8(ascii: ".")
            if dot && previousDot { return false }
            previousDot = dot
            if !(isAlphanumeric(b) || dot || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")) { return false }
        }
        return true
    }

    /// A name made valid the way systemd's hostname_cleanup() does, for names derived from a directory.
    public static func cleanup(_ raw: String) -> String {
        var result: [UInt8] = []
        var previousDot = true
        for b in raw.utf8 {
            if b == UInt8(ascii: ".") {
                if previousDot { continue }
                result.append(b)
                previousDot = true
            } else if isAlphanumeric(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") {
                result.append(b)
                previousDot = false
            }
            if result.count == maximumLength { break }
        }
        while result.last == UInt8(ascii: ".") { result.removeLast() }
        return String(decoding: result, as: UTF8.self)
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
    }
}

/// A 128-bit machine ID, as in /etc/machine-id and $container_uuid.
public struct MachineID: Equatable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    /// Accepts 32 hex digits, with or without the UUID dashes.
    public init?(parsing text: String) {
        let hex = text.count == 36 ? text.filter { $0 != "-" } : text
        if text.count == 36 {
            let dashes = text.enumerated().filter { $0.element == "-" }.map(\.offset)
            guard dashes == [8, 13, 18, 23] else { return nil }
        }
        guard hex.count == 32 else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let b = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(b)
            index = next
        }
        self.bytes = bytes
    }

    public var isNull: Bool { bytes.allSatisfy { $0 == 0 } }

    /// 32 lowercase hex digits, the form of /etc/machine-id.
    public var hexString: String { hex(dashesBefore: []) }

    /// The dashed UUID form of $container_uuid.
    public var uuidString: String { hex(dashesBefore: [4, 6, 8, 10]) }

    /// The bytes in lowercase hex, a dash before each byte index given; made as UTF-8 bytes (both
    /// forms are written on every start).
    private func hex(dashesBefore dashes: [Int]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for index in bytes.indices {
            if dashes.contains(index) { text.append(UInt8(ascii: "-")) }
            text.append(digits[Int(bytes[index] >> 4)])
            text.append(digits[Int(bytes[index] & 0xf)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    public var description: String { uuidString }

    /// A random version-4 UUID.
    public static func random() -> MachineID {
        // Two draws, each one getrandom(2): not sixteen.
        var g = SystemRandomNumberGenerator()
        var bytes = [g.next(), g.next()].flatMap { (word: UInt64) in (0..<8).map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) } }
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        return MachineID(bytes: bytes)
    }

}
