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

    static func run(payload: pid_t) -> Never {
        _ = nsp_prctl(PR_SET_NAME, UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(("(sd-stubinit)" as StaticString).utf8Start))), 0, 0, 0)
        var all = sigset_t()
        sigfillset(&all)
        sigprocmask(SIG_SETMASK, &all, nil)
        var shutdown: Shutdown?
        var info = siginfo_t()
        while true {
            var timeout = timespec(tv_sec: 5, tv_nsec: 0)
            let signal = shutdown == nil ? sigwaitinfo(&all, &info) : sigtimedwait(&all, &info, &timeout)
            if signal < 0 {
                // Five seconds after a shutdown request the payload is out of time.
                if errno == EAGAIN, let pending = shutdown { finish(pending) }
                continue
            }
            switch signal {
            case SIGCHLD:
                var status: Int32 = 0
                while true {
                    let pid = waitpid(-1, &status, WNOHANG)
                    guard pid > 0 else { break }
                    guard pid == payload else { continue }
                    if let pending = shutdown { finish(pending) }
                    // Exit status as the shell reports it: the code, or 128 + the killing signal.
                    let exited = status & 0x7f == 0
                    _exit(exited ? (status >> 8) & 0xff : 128 + (status & 0x7f))
                }
            case SIGTERM:
                break  // as systemd's stub: PID 1 ignores a plain SIGTERM
            default:
                if let request = Self.shutdown(for: signal) {
                    shutdown = request
                    kill(payload, SIGTERM)
                    kill(payload, SIGHUP)
                } else {
                    kill(payload, signal)
                }
            }
        }
    }

    /// reboot(2) in a PID namespace ends it: the supervisor sees PID 1 killed by SIGINT (power off)
    /// or SIGHUP (reboot).
    private static func finish(_ shutdown: Shutdown) -> Never {
        sync()
        _ = reboot(shutdown == .poweroff ? RB_POWER_OFF : RB_AUTOBOOT)
        _exit(shutdown == .poweroff ? 0 : 1)
    }
}
