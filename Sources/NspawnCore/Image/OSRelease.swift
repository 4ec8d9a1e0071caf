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

    /// The host's identity as systemd-nspawn passes it to the payload: each os-release field as
    /// container_host_<field>=, the field's name in lower case (systemd's
    /// load_os_release_pairs_with_prefix()), in the file's order.
    static func hostEnvironment(_ text: String) -> [String] {
        parse(text).map { "container_host_\($0.key.lowercased())=\($0.value)" }
    }
}
