#if canImport(Glibc)
import Glibc
#endif
import CNspawnShim

/// Watches a running machine: PID 1's end (through its pidfd), the signals sent to swift-nspawn,
/// and the console. Returns how PID 1 ended.
final class Supervisor {
    /// Blocked from the start: the event loop takes them through signalfd, and children unblock them
    /// before exec. SIGPIPE stays blocked so a closed stdout is an EPIPE, not our death.
    static let handledSignals: [Int32] = [SIGCHLD, SIGTERM, SIGINT, SIGWINCH, SIGHUP, SIGPIPE]

    static func blockSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in handledSignals { sigaddset(&set, signal) }
        sigprocmask(SIG_BLOCK, &set, nil)
    }

    private let machine: ChildProcess
    private let spec: MachineSpec
    private let loop: EventLoop
    private var console: ConsoleForwarder?
    private var sources: [EventSource] = []
    private var stopRequests = 0
    private var end: MachineExitStatus.PID1End?

    init(machine: ChildProcess, spec: MachineSpec, consoleMaster: OwnedFD?) throws {
        self.machine = machine
        self.spec = spec
        loop = try EventLoop()
        if let master = consoleMaster, spec.console == .interactive || spec.console == .readOnly {
            console = try ConsoleForwarder(loop: loop, master: master, forwardInput: spec.console == .interactive) { [unowned self] request in
                handle(request)
            }
        } else if let master = consoleMaster {
            // Passive: keep the master open so the console exists, forward nothing.
            sources.append(try loop.addIO(master.raw, events: 0) { _ in _ = master })
        }
        sources.append(try loop.addIO(machine.pidfd.raw, events: UInt32(EPOLLIN.rawValue)) { [unowned self] _ in reap() })
        for signal in [SIGTERM, SIGINT] {
            sources.append(try loop.addSignal(signal) { [unowned self] _ in requestStop() })
        }
        sources.append(try loop.addSignal(SIGWINCH) { [unowned self] _ in console?.resize() })
        // SIGCHLD and SIGHUP stay blocked and unread: PID 1's end comes through its pidfd.
    }

    func run() throws -> MachineExitStatus.PID1End {
        try loop.run()
        console?.finish()
        sources.removeAll()
        guard let end else { throw UserError("The event loop ended before the machine did.") }
        return end
    }

    private func reap() {
        guard let termination = try? machine.wait(block: false) else { return }
        switch termination {
        case .exited(let code): end = .exited(code)
        case .killed(let signal): end = .killed(signal)
        }
        loop.exit()
    }

    /// SIGTERM or SIGINT: the kill signal to PID 1 for an orderly end; without one, or the second
    /// time, SIGKILL (systemd-nspawn's behaviour).
    private func requestStop() {
        stopRequests += 1
        if let signal = spec.killSignal, stopRequests == 1 {
            if !spec.quiet { printError("Trying to halt container. Send SIGTERM again to trigger immediate termination.") }
            machine.signal(signal)
        } else {
            machine.signal(SIGKILL)
        }
    }

    private func handle(_ request: ConsoleForwarder.Request) {
        switch request {
        case .kill: machine.signal(SIGKILL)
        case .powerOff: machine.signal(nsp_sigrtmin() + 4)
        case .reboot: machine.signal(nsp_sigrtmin() + 5)
        }
    }
}
