/// A D-Bus value with its type, so that messages are built and read without variadic C and without
/// signature strings typed by hand: the signature is derived from the value.
public indirect enum BusValue: Equatable, Sendable {
    case byte(UInt8)
    case bool(Bool)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    /// A descriptor to pass (type "h"); sd-bus duplicates it into the message.
    case fileDescriptor(Int32)
    /// An array whose elements have the given signature (needed for empty arrays).
    case array(element: String, [BusValue])
    case structure([BusValue])
    case dictionaryEntry(BusValue, BusValue)
    case variant(BusValue)

    public var signature: String {
        switch self {
        case .byte: "y"
        case .bool: "b"
        case .int32: "i"
        case .uint32: "u"
        case .int64: "x"
        case .uint64: "t"
        case .double: "d"
        case .string: "s"
        case .objectPath: "o"
        case .signature: "g"
        case .fileDescriptor: "h"
        case .array(let element, _): "a" + element
        case .structure(let fields): "(" + fields.map(\.signature).joined() + ")"
        case .dictionaryEntry(let key, let value): "{" + key.signature + value.signature + "}"
        case .variant: "v"
        }
    }

    /// systemd's property lists, a(sv): name and variant value.
    public static func properties(_ entries: [(String, BusValue)]) -> BusValue {
        .array(element: "(sv)", entries.map { .structure([.string($0.0), .variant($0.1)]) })
    }

    public var stringValue: String? {
        switch self {
        case .string(let s), .objectPath(let s), .signature(let s): s
        default: nil
        }
    }

    public var uint32Value: UInt32? {
        if case .uint32(let v) = self { return v }
        return nil
    }
}
