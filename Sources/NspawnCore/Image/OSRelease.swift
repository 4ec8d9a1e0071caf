/// os-release(5): shell-compatible KEY=VALUE lines, values optionally quoted. Read as UTF-8 bytes
/// (every character that matters is ASCII): the host's is read on every start.
enum OSRelease {
    static func parse(_ text: String) -> [(key: String, value: String)] {
        var fields: [(key: String, value: String)] = []
        for line in Array(text.utf8).split(separator: UInt8(ascii: "\n")) {
            let trimmed = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            guard trimmed.first != UInt8(ascii: "#"), let equals = trimmed.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: trimmed[..<equals], as: UTF8.self)
            guard EnvironmentAssignment.isValidName(Substring(key)) else { continue }
            fields.removeAll { $0.key == key }
            fields.append((key, unquote(trimmed[(equals + 1)...])))
        }
        return fields
    }

    /// "…" with \" \\ \$ \` escapes, '…' as it is, or a bare word.
    private static func unquote(_ value: ArraySlice<UInt8>) -> String {
        var value = value
        while let last = value.last, Array(" \t\r".utf8).contains(last) { value = value.dropLast() }
        let quotes = Array("\"'".utf8)
        guard let quote = value.first, quotes.contains(quote), value.count >= 2, value.last == quote else { return String(decoding: value, as: UTF8.self) }
        let inner = value.dropFirst().dropLast()
        guard quote == quotes[0] else { return String(decoding: inner, as: UTF8.self) }
        // As in a shell: a backslash escapes only " \ $ and `; before anything else it stays.
        let backslash = UInt8(ascii: "\\"), escaped = Array("\"\\$`".utf8)
        var result: [UInt8] = []
        var pending = false
        for byte in inner {
            if pending {
                if !escaped.contains(byte) { result.append(backslash) }
                result.append(byte)
                pending = false
            } else if byte == backslash {
                pending = true
            } else {
                result.append(byte)
            }
        }
        if pending { result.append(backslash) }
        return String(decoding: result, as: UTF8.self)
    }

    /// The os-release fields systemd-nspawn 252 passes to the payload, in its order (measured: an
    /// os-release with every field gives the machine these four and no others).
    static let hostEnvironmentFields = ["ID", "VERSION_ID", "BUILD_ID", "VARIANT_ID"]

    /// The host's identity as systemd-nspawn passes it to the payload: container_host_id= and the
    /// others above, each where the host's os-release has the field.
    static func hostEnvironment(_ text: String) -> [String] {
        let fields = Dictionary(parse(text).map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        return hostEnvironmentFields.compactMap { name in fields[name].map { "container_host_\(name.lowercased())=\($0)" } }
    }
}
