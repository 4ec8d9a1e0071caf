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
