/// One netlink request, built as the kernel reads it: a 16-byte nlmsghdr, the family's fixed
/// header, then type-length-value attributes, each padded to 4 bytes, nested ones holding more.
/// Numbers are the kernel's UAPI (linux/netlink.h, rtnetlink.h, if_link.h, nf_tables.h): they
/// never change, and the Glibc module does not carry them.
struct NetlinkMessage {
    static let request: UInt16 = 0x1
    static let acknowledge: UInt16 = 0x4
    static let dump: UInt16 = 0x300
    static let replace: UInt16 = 0x100
    static let exclusive: UInt16 = 0x200
    static let create: UInt16 = 0x400
    static let nested: UInt16 = 0x8000

    private(set) var bytes: [UInt8]
    let flags: UInt16
    private var openNests: [Int] = []

    init(type: UInt16, flags: UInt16, header: [UInt8] = []) {
        self.flags = flags
        bytes = [UInt8](repeating: 0, count: 16)
        bytes.replaceSubrange(4..<6, with: type.littleEndianBytes)
        bytes.replaceSubrange(6..<8, with: flags.littleEndianBytes)
        bytes += header
        Self.pad(&bytes)
    }

    mutating func add(_ type: UInt16, _ value: [UInt8]) {
        bytes += UInt16(4 + value.count).littleEndianBytes + type.littleEndianBytes + value
        Self.pad(&bytes)
    }

    mutating func add(_ type: UInt16, string: String) { add(type, Array(string.utf8) + [0]) }
    mutating func add(_ type: UInt16, u32: UInt32) { add(type, u32.littleEndianBytes) }
    mutating func add(_ type: UInt16, bigEndian value: UInt32) { add(type, value.bigEndianBytes) }
    mutating func add(_ type: UInt16, u8: UInt8) { add(type, [u8]) }

    /// Attributes added inside `body` are nested in one attribute of `type`.
    mutating func nest(_ type: UInt16, _ body: (inout NetlinkMessage) -> Void) {
        let start = bytes.count
        bytes += [0, 0] + (type | Self.nested).littleEndianBytes
        body(&self)
        bytes.replaceSubrange(start..<start + 2, with: UInt16(bytes.count - start).littleEndianBytes)
    }

    /// Raw bytes inside the current position (a nested family header, as veth's peer has).
    mutating func append(raw: [UInt8]) {
        bytes += raw
        Self.pad(&bytes)
    }

    /// The finished message with its length and sequence number.
    func finished(sequence: UInt32) -> [UInt8] {
        var out = bytes
        out.replaceSubrange(0..<4, with: UInt32(out.count).littleEndianBytes)
        out.replaceSubrange(8..<12, with: sequence.littleEndianBytes)
        return out
    }

    private static func pad(_ bytes: inout [UInt8]) {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
}

/// One message the kernel sent back.
struct NetlinkReply {
    static let error: UInt16 = 2
    static let done: UInt16 = 3

    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    /// After the 16-byte header.
    var payload: ArraySlice<UInt8>

    /// The messages in one datagram.
    static func split(_ datagram: [UInt8]) -> [NetlinkReply] {
        var replies: [NetlinkReply] = []
        var offset = 0
        while offset + 16 <= datagram.count {
            let length = Int(datagram.u32(at: offset))
            guard length >= 16, offset + length <= datagram.count else { break }
            replies.append(
                NetlinkReply(
                    type: datagram.u16(at: offset + 4), flags: datagram.u16(at: offset + 6), sequence: datagram.u32(at: offset + 8),
                    payload: datagram[offset + 16..<offset + length]))
            offset += (length + 3) & ~3
        }
        return replies
    }

    /// The attributes after a fixed header of `headerSize` bytes, by type (nested flag cleared).
    func attributes(after headerSize: Int) -> [UInt16: ArraySlice<UInt8>] {
        NetlinkReply.attributes(in: payload.dropFirst(headerSize))
    }

    static func attributes(in slice: ArraySlice<UInt8>) -> [UInt16: ArraySlice<UInt8>] {
        var result: [UInt16: ArraySlice<UInt8>] = [:]
        var offset = slice.startIndex
        while offset + 4 <= slice.endIndex {
            let length = Int(slice.u16(at: offset))
            guard length >= 4, offset + length <= slice.endIndex else { break }
            let type = slice.u16(at: offset + 2) & 0x3fff
            if result[type] == nil { result[type] = slice[offset + 4..<offset + length] }
            offset += (length + 3) & ~3
        }
        return result
    }
}

extension FixedWidthInteger {
    var littleEndianBytes: [UInt8] { withUnsafeBytes(of: littleEndian) { Array($0) } }
    var bigEndianBytes: [UInt8] { withUnsafeBytes(of: bigEndian) { Array($0) } }
}

extension Collection where Element == UInt8, Index == Int {
    func u16(at offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func u32(at offset: Int) -> UInt32 { UInt32(u16(at: offset)) | UInt32(u16(at: offset + 2)) << 16 }
    /// The C string in these bytes, up to its terminating zero.
    var cString: String { String(decoding: prefix { $0 != 0 }, as: UTF8.self) }
}
