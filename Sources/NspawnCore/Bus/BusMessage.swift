#if canImport(Glibc)
    import Glibc
#endif
import CSystemd

/// An sd_bus_message, written and read as BusValue trees through sd-bus's non-variadic calls
/// (append_basic, open_container, read_basic, enter_container, peek_type).
public final class BusMessage {
    let message: OpaquePointer

    init(adopting message: OpaquePointer) { self.message = message }

    deinit { sd_bus_message_unref(message) }

    public func append(_ values: [BusValue]) throws(BusError) {
        for value in values { try append(value) }
    }

    public func append(_ value: BusValue) throws(BusError) {
        let r: Int32
        switch value {
        case .byte(var v): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "y")), &v)
        case .bool(let b):
            var v: Int32 = b ? 1 : 0
            r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "b")), &v)
        case .int32(var v): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "i")), &v)
        case .uint32(var v): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "u")), &v)
        case .int64(var v): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "x")), &v)
        case .uint64(var v): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "t")), &v)
        case .double(var v): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "d")), &v)
        case .fileDescriptor(var v): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "h")), &v)
        // Strings, object paths and signatures are passed as the C string itself.
        case .string(let s): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "s")), s)
        case .objectPath(let s): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "o")), s)
        case .signature(let s): r = sd_bus_message_append_basic(message, CChar(UInt8(ascii: "g")), s)
        case .array(let element, let items):
            try container("a", element) { () throws(BusError) in for item in items { try append(item) } }
            return
        case .structure(let fields):
            try container("r", String(value.signature.dropFirst().dropLast())) { () throws(BusError) in for field in fields { try append(field) } }
            return
        case .dictionaryEntry(let key, let entry):
            try container("e", key.signature + entry.signature) { () throws(BusError) in
                try append(key)
                try append(entry)
            }
            return
        case .variant(let inner):
            try container("v", inner.signature) { () throws(BusError) in try append(inner) }
            return
        }
        if r < 0 { throw BusError(errno: -r, doing: "append \(value.signature)") }
    }

    private func container(_ type: Character, _ contents: String, _ body: () throws(BusError) -> Void) throws(BusError) {
        let code = CChar(type.asciiValue ?? 0)
        let r = sd_bus_message_open_container(message, code, contents)
        if r < 0 { throw BusError(errno: -r, doing: "open container \(type)\(contents)") }
        try body()
        let c = sd_bus_message_close_container(message)
        if c < 0 { throw BusError(errno: -c, doing: "close container \(type)\(contents)") }
    }

    /// Every value left in the message, in order.
    public func readAll() throws(BusError) -> [BusValue] {
        var values: [BusValue] = []
        while let value = try read() { values.append(value) }
        return values
    }

    /// The next value, or nil at the end of the message (or of the container being read).
    public func read() throws(BusError) -> BusValue? {
        var type: CChar = 0
        var contents: UnsafePointer<CChar>?
        let r = sd_bus_message_peek_type(message, &type, &contents)
        if r < 0 { throw BusError(errno: -r, doing: "peek") }
        if r == 0 { return nil }
        let inner = contents.map { String(cString: $0) } ?? ""
        switch UInt8(bitPattern: type) {
        case UInt8(ascii: "a"):
            var items: [BusValue] = []
            try enter(type, inner) { () throws(BusError) in items = try readAll() }
            return .array(element: inner, items)
        case UInt8(ascii: "r"):
            var fields: [BusValue] = []
            try enter(type, inner) { () throws(BusError) in fields = try readAll() }
            return .structure(fields)
        case UInt8(ascii: "e"):
            var pair: [BusValue] = []
            try enter(type, inner) { () throws(BusError) in pair = try readAll() }
            guard pair.count == 2 else { throw BusError(errno: EBADMSG, doing: "read dictionary entry") }
            return .dictionaryEntry(pair[0], pair[1])
        case UInt8(ascii: "v"):
            var value: BusValue?
            try enter(type, inner) { () throws(BusError) in value = try read() }
            guard let value else { throw BusError(errno: EBADMSG, doing: "read variant") }
            return .variant(value)
        default:
            return try readBasic(type)
        }
    }

    private func enter(_ type: CChar, _ contents: String, _ body: () throws(BusError) -> Void) throws(BusError) {
        let r = sd_bus_message_enter_container(message, type, contents)
        if r < 0 { throw BusError(errno: -r, doing: "enter container") }
        try body()
        let e = sd_bus_message_exit_container(message)
        if e < 0 { throw BusError(errno: -e, doing: "exit container") }
    }

    private func readBasic(_ type: CChar) throws(BusError) -> BusValue {
        func basic<T: BitwiseCopyable>(_ initial: T) throws(BusError) -> T {
            var value = initial
            let r = sd_bus_message_read_basic(message, type, &value)
            if r < 0 { throw BusError(errno: -r, doing: "read") }
            return value
        }
        switch UInt8(bitPattern: type) {
        case UInt8(ascii: "y"): return .byte(try basic(UInt8(0)))
        case UInt8(ascii: "b"): return .bool(try basic(Int32(0)) != 0)
        case UInt8(ascii: "i"): return .int32(try basic(Int32(0)))
        case UInt8(ascii: "u"): return .uint32(try basic(UInt32(0)))
        case UInt8(ascii: "x"): return .int64(try basic(Int64(0)))
        case UInt8(ascii: "t"): return .uint64(try basic(UInt64(0)))
        case UInt8(ascii: "d"): return .double(try basic(Double(0)))
        case UInt8(ascii: "h"): return .fileDescriptor(try basic(Int32(-1)))
        case UInt8(ascii: "s"), UInt8(ascii: "o"), UInt8(ascii: "g"):
            let pointer = try basic(UnsafePointer<CChar>?.none)
            let text = pointer.map { String(cString: $0) } ?? ""
            switch UInt8(bitPattern: type) {
            case UInt8(ascii: "o"): return .objectPath(text)
            case UInt8(ascii: "g"): return .signature(text)
            default: return .string(text)
            }
        default:
            throw BusError(errno: EBADMSG, doing: "read type \(Character(UnicodeScalar(UInt8(bitPattern: type))))")
        }
    }

    /// Seals the message as sent, so that it can be read back (the tests read what we built).
    func sealForReading() throws(BusError) {
        let r = sd_bus_message_seal(message, 1, 0)
        if r < 0 { throw BusError(errno: -r, doing: "seal") }
        let w = sd_bus_message_rewind(message, 1)
        if w < 0 { throw BusError(errno: -w, doing: "rewind") }
    }
}

/// A failed bus operation: the D-Bus error name and message when the peer sent one, else an errno.
public struct BusError: Error, CustomStringConvertible, Equatable {
    public var name: String?
    public var message: String
    public var call: String?

    init(errno: Int32, doing what: String) {
        message = "\(what): \(String(cString: strerror(errno)))"
    }

    init(name: String?, message: String, call: String?) {
        self.name = name
        self.message = message
        self.call = call
    }

    public var description: String {
        let prefix = call.map { "Failed to call \($0): " } ?? "D-Bus: "
        return prefix + message + (name.map { " (\($0))" } ?? "")
    }
}
