/// --console=: how the machine's console meets swift-nspawn's standard streams.
public enum ConsoleMode: String, Equatable, Sendable, CaseIterable {
    /// A pty: the terminal is forwarded both ways, in raw mode.
    case interactive
    /// A pty: output is forwarded, input ignored.
    case readOnly = "read-only"
    /// A pty: nothing is forwarded.
    case passive
    /// No pty: the payload gets swift-nspawn's own standard streams.
    case pipe
    /// interactive on a terminal, pipe otherwise.
    case autopipe

    /// systemd-nspawn's default: interactive when stdin and stdout are terminals, otherwise read-only.
    public static func defaultMode(stdinIsTerminal: Bool, stdoutIsTerminal: Bool) -> ConsoleMode {
        stdinIsTerminal && stdoutIsTerminal ? .interactive : .readOnly
    }

    /// autopipe resolved against the terminal at hand.
    public func resolved(stdinIsTerminal: Bool, stdoutIsTerminal: Bool) -> ConsoleMode {
        guard self == .autopipe else { return self }
        return stdinIsTerminal && stdoutIsTerminal ? .interactive : .pipe
    }

    public var usesPTY: Bool { self != .pipe }
}

/// --register=.
public enum RegisterMode: String, Equatable, Sendable {
    case yes, no, auto

    public static func parse(_ value: String) throws(UserError) -> RegisterMode {
        if value == "auto" { return .auto }
        return try Configuration.parseBoolean(value, option: "--register") ? .yes : .no
    }
}

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
