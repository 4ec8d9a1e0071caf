#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Watches a running machine: PID 1's end (through its pidfd), the signals sent to swift-nspawn,
/// the console, and the machine's notify socket. Returns how PID 1 ended.
final class Supervisor {
    struct Outcome {
        var end: MachineExitStatus.PID1End
        var bootTest: BootTestVerdict?
        var bootSeconds: Double?
    }

    /// Blocked from the start: the event loop takes them through signalfd, and children unblock them
    /// before exec. SIGPIPE stays blocked so a closed stdout is an EPIPE, not our death.
    static let handledSignals: [Int32] = [SIGCHLD, SIGTERM, SIGINT, SIGWINCH, SIGHUP, SIGPIPE]

    static func blockSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in handledSignals { sigaddset(&set, signal) }
        sigprocmask(SIG_BLOCK, &set, nil)
    }

    /// What setting up the machine needed and watching it does not: the heap's free pages, and the
    /// stack below this frame (setup's deep calls), which the loop's handlers re-fault, zeroed, only
    /// as deep as they go. The supervisor lives as long as its machine; this is its memory per machine.
    private static func releaseSetupMemory() {
        malloc_trim(0)
        // Four pages below this frame stay, well past the red zone and the calls made from here.
        _ = nsp_release_stack_below(4 * 4096)
    }

    private let machine: ChildProcess
    private let plan: MachinePlan
    /// What programs run inside the machine (the boot test's systemctl) are held to.
    private let confinement: PayloadConfinement
    private let loop: EventLoop
    private var console: ConsoleForwarder?
    private var sources: [EventSource] = []
    private var stopRequests = 0
    private var end: MachineExitStatus.PID1End?
    private var notify: NotifyRelay?
    private let startTime = Clock.monotonicNanoseconds()
    private var readyTime: UInt64?
    private var bootTest: BootTestVerdict?
    private var timers: [EventSource] = []
    private var resendTimer: EventSource?
    /// The boot test's systemctl runs; kept until the loop ends (a source may not free itself from its handler).
    private var queries: [MachineQuery] = []

    /// Answers the machine's DHCP client when swift-nspawn gave it its address.
    private var dhcp: DHCPServer?

    /// The machine's cgroup, where programs run inside the machine (the boot test's) are born.
    private let cgroup: Int32

    init(
        machine: ChildProcess, plan: MachinePlan, confinement: PayloadConfinement, cgroup: Int32, consoleMaster: OwnedFD?, notifySocket: OwnedFD,
        network: MachineNetwork?
    ) throws {
        self.machine = machine
        self.cgroup = cgroup
        self.plan = plan
        self.confinement = confinement
        loop = try EventLoop()
        if let master = consoleMaster {
            console = try ConsoleForwarder(loop: loop, master: master, mode: plan.console) { [unowned self] request in
                handle(request)
            }
        }
        sources.append(try loop.addIO(machine.pidfd.raw, events: UInt32(EPOLLIN.rawValue)) { [unowned self] _ in reap() })
        // SIGHUP too: the terminal we forward to is gone; shut the machine down as for SIGTERM.
        for signal in [SIGTERM, SIGINT, SIGHUP] {
            sources.append(try loop.addSignal(signal) { [unowned self] _ in requestStop() })
        }
        sources.append(try loop.addSignal(SIGWINCH) { [unowned self] _ in console?.resize() })
        // SIGCHLD stays blocked and unread: PID 1's end comes through its pidfd.
        notify = try NotifyRelay(loop: loop, socket: notifySocket, machinePID: machine.pid) { [unowned self] message in
            handle(message)
        }
        if let network, let addressing = network.addressing {
            dhcp = try DHCPServer(addressing: addressing, nameServers: HostResolver.reachableNameServers(), loop: loop)
        }
        try network?.watchMachineAddresses(loop: loop)
        if let seconds = plan.bootTestTimeout {
            timers.append(
                try loop.addTimer(after: Double(seconds)) { [unowned self] in
                    finishBootTest(.timedOut(seconds: seconds))
                })
        }
        if !plan.notifyReady { NotifyRelay.tellServiceManager("READY=1\nSTATUS=Container running.") }
    }

    func run() throws -> Outcome {
        Self.releaseSetupMemory()
        try loop.run()
        console?.finish()
        sources.removeAll()
        timers.removeAll()
        resendTimer = nil
        queries.forEach { $0.cancel() }
        queries.removeAll()
        notify = nil
        dhcp = nil
        guard let end else { throw UserError("The event loop ended before the machine did.") }
        let seconds = readyTime.map { Double($0 - startTime) / 1e9 }
        if plan.bootTestTimeout != nil && bootTest == nil {
            bootTest = .failed("the machine ended before its manager was up (\(MachineExitStatus.message(end, machine: plan.name)))")
        }
        return Outcome(end: end, bootTest: bootTest, bootSeconds: seconds)
    }

    // MARK: Notify

    private func handle(_ message: [String: String]) {
        if let status = message["STATUS"] { NotifyRelay.tellServiceManager("STATUS=\(status)") }
        guard message["READY"] == "1", readyTime == nil else { return }
        readyTime = Clock.monotonicNanoseconds()
        if plan.notifyReady { NotifyRelay.tellServiceManager("READY=1") }
        guard plan.bootTestTimeout != nil else { return }
        ask(
            [["is-system-running"], ["list-units", "--failed", "--plain", "--no-legend", "--no-pager"]], answers: []
        ) { [unowned self] answers in
            finishBootTest(.from(systemState: answers[0], failedUnitsListing: answers[1]))
        }
    }

    /// Runs systemctl in the machine with each argument list in turn, through the event loop (the
    /// console and signals keep flowing), each bounded to ten seconds; then `done` with what each
    /// printed (empty for one that could not run).
    private func ask(_ questions: [[String]], answers: [String], done: @escaping ([String]) -> Void) {
        guard let arguments = questions.first else { return done(answers) }
        let next = { [unowned self] (answer: String) in ask(Array(questions.dropFirst()), answers: answers + [answer], done: done) }
        do {
            let running = try MachineEntry.start(["/bin/systemctl"] + arguments, in: machine, namespaces: plan.namespaces, cgroup: cgroup, policy: confinement)
            do {
                queries.append(try MachineQuery(running, loop: loop, timeout: 10, done: next))
            } catch {
                running.child.kill()
                throw error
            }
        } catch {
            next("")
        }
    }

    /// Records the verdict and powers the machine off, with SIGKILL if it is not gone in 30 s.
    private func finishBootTest(_ verdict: BootTestVerdict) {
        guard bootTest == nil else { return }
        bootTest = verdict
        machine.signal(nsp_sigrtmin() + 4)
        if let timer = try? loop.addTimer(after: 30, { [unowned self] in machine.signal(SIGKILL) }) { timers.append(timer) }
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
        if let signal = plan.killSignal, stopRequests == 1 {
            if !plan.quiet { printError("Trying to halt container. Send SIGTERM again to trigger immediate termination.") }
            sendRepeatedly(signal)
        } else {
            machine.signal(SIGKILL)
        }
    }

    /// The kill signal, again every two seconds until PID 1 is gone: a PID namespace's init does not
    /// get signals it has no handler for, and a stop asked for early (a booting systemd has not set
    /// its handlers yet) would otherwise be lost. One timer, re-armed each time.
    private func sendRepeatedly(_ signal: Int32) {
        machine.signal(signal)
        guard resendTimer == nil else { return }
        resendTimer = try? loop.addTimer(after: 2) { [unowned self] in
            machine.signal(signal)
            resendTimer?.rearm(after: 2)
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
