/// -E NAME[=VALUE].
public enum EnvironmentAssignment {
    public static func isValidName(_ name: Substring) -> Bool {
        guard let first = name.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == UInt8(ascii: "_")
        }
    }

    /// Validates an assignment; a bare NAME takes its value from swift-nspawn's own environment.
    public static func parse(_ text: String, lookup: (String) -> String?) throws(UserError) -> String? {
        if let equals = text.firstIndex(of: "=") {
            guard isValidName(text[..<equals]) else { throw UserError("Environment variable assignment '\(text)' is not valid.") }
            return text
        }
        guard isValidName(Substring(text)) else { throw UserError("Environment variable name '\(text)' is not valid.") }
        return lookup(text).map { "\(text)=\($0)" }
    }
}
