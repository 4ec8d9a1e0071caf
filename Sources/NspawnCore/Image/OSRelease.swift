/// os-release(5): shell-compatible KEY=VALUE lines, values optionally quoted.
enum OSRelease {
    static func parse(_ text: String) -> [(key: String, value: String)] {
        var fields: [(key: String, value: String)] = []
        for line in text.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            let key = String(trimmed[..<equals])
            guard EnvironmentAssignment.isValidName(Substring(key)) else { continue }
            fields.removeAll { $0.key == key }
            fields.append((key, unquote(trimmed[trimmed.index(after: equals)...])))
        }
        return fields
    }

    /// "…" with \" \\ \$ \` escapes, '…' as it is, or a bare word.
    private static func unquote(_ value: Substring) -> String {
        var value = value
        while let last = value.last, last == " " || last == "\t" || last == "\r" { value = value.dropLast() }
        guard let quote = value.first, quote == "\"" || quote == "'", value.count >= 2, value.last == quote else { return String(value) }
        let inner = value.dropFirst().dropLast()
        guard quote == "\"" else { return String(inner) }
        // As in a shell: a backslash escapes only " \ $ and `; before anything else it stays.
        var result = ""
        var pending = false
        for character in inner {
            if pending {
                if !"\"\\$`".contains(character) { result.append("\\") }
                result.append(character)
                pending = false
            } else if character == "\\" {
                pending = true
            } else {
                result.append(character)
            }
        }
        if pending { result.append("\\") }
        return result
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
