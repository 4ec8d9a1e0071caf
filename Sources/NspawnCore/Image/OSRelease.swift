/// os-release(5): shell-compatible KEY=VALUE lines, values optionally quoted.
enum OSRelease {
    static func parse(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            let key = String(trimmed[..<equals])
            guard EnvironmentAssignment.isValidName(Substring(key)) else { continue }
            fields[key] = unquote(trimmed[trimmed.index(after: equals)...])
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
        var result = ""
        var escaped = false
        for character in inner {
            if escaped || character != "\\" {
                result.append(character)
                escaped = false
            } else {
                escaped = true
            }
        }
        return result
    }

    /// The host's identity as systemd-nspawn passes it to the payload: container_host_id=… for each
    /// of these os-release fields the host has.
    static func hostEnvironment(_ fields: [String: String]) -> [String] {
        ["ID", "VERSION_ID", "BUILD_ID", "VARIANT_ID", "IMAGE_ID", "IMAGE_VERSION"].compactMap { key in
            fields[key].map { "container_host_\(key.lowercased())=\($0)" }
        }
    }
}
