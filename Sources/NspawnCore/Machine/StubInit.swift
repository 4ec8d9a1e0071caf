#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// PID 1 for --as-pid2, as systemd-nspawn's stub: reaps every orphan, forwards signals to the
/// payload (PID 2), turns the manager signals for poweroff and reboot into reboot(2) once the
/// payload is gone, and exits with the payload's status.
enum StubInit {
    enum Shutdown { case poweroff, reboot }

    /// systemd's manager signals: SIGRTMIN+3/+4/+13/+14 halt or power off; SIGINT and
    /// SIGRTMIN+5/+6/+15/+16 reboot.
    static func shutdown(for signal: Int32) -> Shutdown? {
        let rt = signal - nsp_sigrtmin()
        if [3, 4, 13, 14].contains(rt) { return .poweroff }
        if signal == SIGINT || [5, 6, 15, 16].contains(rt) { return .reboot }
        return nil
    }

    /// The stub keeps its signals blocked (it takes them with sigwaitinfo) but is otherwise held to
    /// the payload's policy: its bounding set, its system call filter. It stays the machine's root.
    static func run(payload: pid_t, confinement: PayloadConfinement) -> Never {
        scrubInheritedStrings()
        do {
            try sys("close_range") { nsp_close_range(3, UInt32.max, 0) }
            _ = nsp_join_session_keyring()  // as in Payload.confine: refused only where keyrings are out of reach anyway
            try confinement.seccomp?.install()
            try confinement.capabilities.apply(switchingTo: nil)
        } catch {
            printError("\(error)")
            kill(payload, SIGKILL)
            _exit(1)
        }
        var all = sigset_t()
        sigfillset(&all)
        sigprocmask(SIG_SETMASK, &all, nil)
        var shutdown: Shutdown?
        var deadline: UInt64 = 0
        var info = siginfo_t()
        while true {
            let signal: Int32
            if shutdown == nil {
                signal = sigwaitinfo(&all, &info)
            } else {
                // Five seconds from the first shutdown request, however many signals come meanwhile.
                let now = Clock.monotonicNanoseconds()
                guard now < deadline, let pending = shutdown else { finish(shutdown ?? .poweroff) }
                var timeout = timespec(tv_sec: Int((deadline - now) / 1_000_000_000), tv_nsec: Int((deadline - now) % 1_000_000_000))
                signal = sigtimedwait(&all, &info, &timeout)
                if signal < 0 && errno == EAGAIN { finish(pending) }
            }
            guard signal > 0 else { continue }
            switch signal {
            case SIGCHLD:
                var status: Int32 = 0
                while true {
                    let pid = waitpid(-1, &status, WNOHANG)
                    guard pid > 0 else { break }
                    guard pid == payload else { continue }
                    if let pending = shutdown { finish(pending) }
                    _exit(shellStatus(status))
                }
            case SIGTERM:
                break  // as systemd's stub: PID 1 ignores a plain SIGTERM
            default:
                if let request = Self.shutdown(for: signal) {
                    if shutdown == nil { deadline = Clock.monotonicNanoseconds() + 5_000_000_000 }
                    shutdown = request
                    kill(payload, SIGTERM)
                    kill(payload, SIGHUP)
                } else {
                    kill(payload, signal)
                }
            }
        }
    }

    /// The stub never execs, so /proc/1/cmdline and /proc/1/environ would show swift-nspawn's own
    /// argv and environment (the host's) to the machine: blank them, and name the process.
    private static func scrubInheritedStrings() {
        var strings: [UnsafeMutablePointer<CChar>] = []
        if let environ = nsp_environ() {
            var index = 0
            while let entry = environ[index] {
                strings.append(entry)
                index += 1
            }
        }
        for index in 0..<Int(CommandLine.argc) {
            if let argument = CommandLine.unsafeArgv[index] { strings.append(argument) }
        }
        for string in strings { memset(string, 0, strlen(string)) }
        _ = nsp_prctl(PR_SET_NAME, UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(("(sd-stubinit)" as StaticString).utf8Start))), 0, 0, 0)
    }

    /// reboot(2) in a PID namespace ends it: the supervisor sees PID 1 killed by SIGINT (power off)
    /// or SIGHUP (reboot).
    private static func finish(_ shutdown: Shutdown) -> Never {
        sync()
        _ = reboot(shutdown == .poweroff ? RB_POWER_OFF : RB_AUTOBOOT)
        _exit(shutdown == .poweroff ? 0 : 1)
    }
}
