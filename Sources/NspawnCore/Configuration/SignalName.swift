#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Signal names as systemd spells them: "SIGTERM", "TERM", "15", "SIGRTMIN+3", "RTMIN+3".
public enum SignalName {
    static let table: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP),
        ("ABRT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL), ("USR1", SIGUSR1),
        ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM), ("TERM", SIGTERM),
        ("STKFLT", SIGSTKFLT), ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP), ("TSTP", SIGTSTP),
        ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU), ("XFSZ", SIGXFSZ),
        ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH), ("IO", SIGIO), ("PWR", SIGPWR),
        ("SYS", SIGSYS),
    ]

    public static func parse(_ text: String) -> Int32? {
        if let number = Int32(text) { return (1...nsp_sigrtmax()).contains(number) ? number : nil }
        let name = text.hasPrefix("SIG") ? String(text.dropFirst(3)) : text
        if let entry = table.first(where: { $0.0 == name }) { return entry.1 }
        for (prefix, base, sign) in [("RTMIN", nsp_sigrtmin(), Int32(1)), ("RTMAX", nsp_sigrtmax(), Int32(-1))] where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            if rest.isEmpty { return base }
            guard rest.first == (sign > 0 ? "+" : "-"), let offset = Int32(rest.dropFirst()) else { return nil }
            let signal = base + sign * offset
            return (nsp_sigrtmin()...nsp_sigrtmax()).contains(signal) ? signal : nil
        }
        return nil
    }

    public static func name(_ signal: Int32) -> String {
        if let entry = table.first(where: { $0.1 == signal }) { return entry.0 }
        if signal >= nsp_sigrtmin() && signal <= nsp_sigrtmax() { return "RTMIN+\(signal - nsp_sigrtmin())" }
        return "\(signal)"
    }
}
