#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Forwards between the host's standard streams and the machine's pty master, on the supervisor's
/// event loop, in the way systemd's ptyfwd does: edge-triggered readiness flags, read and write
/// until EAGAIN, a bounded buffer per direction (no busy loop, no lost byte), EIO on the master
/// (the guest's getty calling vhangup) survived, stdin EOF keeping output flowing.
final class ConsoleForwarder {
    static let escape: UInt8 = 0x1d  // ^]
    static let bufferSize = 64 * 1024
    /// Nanoseconds in which three ^] kill the machine (systemd's ESCAPE_USEC).
    static let escapeWindow: UInt64 = 1_000_000_000

    enum Request { case kill, powerOff, reboot }

    private let master: OwnedFD
    private let input: OwnedFD?
    /// nil for a passive console: what the machine writes is read and dropped, so it never blocks.
    private let output: OwnedFD?
    /// File status flags to put back on a stdout we had to share (a socket cannot be reopened).
    private var restoreOutputFlags: Int32?
    private let terminal: TerminalMode?
    private let onRequest: (Request) -> Void

    private var toMachine = ByteQueue(capacity: bufferSize)
    private var toHost = ByteQueue(capacity: bufferSize)
    private var inputReadable = false, inputEOF = false
    private var masterReadable = false, masterWritable = false, masterHungUp = false
    private var outputWritable = false
    /// Our stdout hung up (EIO, EPIPE): the machine's output is dropped from then on, never left to
    /// fill the pty and block the machine's console writers.
    private var outputGone = false
    private var escapes: [UInt64] = []
    private var sources: [EventSource] = []
    /// The master's and our stdout's sources, whose events follow the queues (see watchOnlyWhatCanMove).
    private var masterSource: EventSource?
    private var outputSource: EventSource?
    private static let (readable, writable, edge) = (UInt32(EPOLLIN.rawValue), UInt32(EPOLLOUT.rawValue), UInt32(EPOLLET.rawValue))

    /// - Parameter mode: interactive (both ways), read-only (output only) or passive (nothing forwarded).
    init(loop: EventLoop, master: OwnedFD, mode: ConsoleMode, onRequest: @escaping (Request) -> Void) throws {
        self.master = master
        self.onRequest = onRequest
        let forwardInput = mode == .interactive
        // Our own descriptions of stdin/stdout, so O_NONBLOCK never leaks into the caller's.
        input = forwardInput ? Self.reopenNonBlocking(0, flags: O_RDONLY) : nil
        if mode == .passive {
            output = nil
        } else if let reopened = Self.reopenNonBlocking(1, flags: O_WRONLY) {
            output = reopened
        } else {
            // A socket (journald's stream, a CI runner) cannot be reopened: share it, non-blocking
            // for as long as we forward, so a slow reader never stalls the loop.
            let shared = OwnedFD(fcntl(1, F_DUPFD_CLOEXEC, 3))
            let flags = fcntl(shared.raw, F_GETFL)
            if flags >= 0, fcntl(shared.raw, F_SETFL, flags | O_NONBLOCK) == 0 { restoreOutputFlags = flags }
            output = shared
        }
        _ = fcntl(master.raw, F_SETFL, fcntl(master.raw, F_GETFL) | O_NONBLOCK)
        terminal = forwardInput && isatty(0) != 0 ? TerminalMode(fd: 0) : nil
        terminal?.makeRaw()
        resize()

        masterSource = try loop.addIO(master.raw, events: Self.readable | Self.writable | Self.edge) { [unowned self] events in
            if events & UInt32(EPOLLIN.rawValue | EPOLLHUP.rawValue) != 0 { masterReadable = true }
            if events & UInt32(EPOLLOUT.rawValue) != 0 { masterWritable = true }
            shovel()
            watchOnlyWhatCanMove()
        }
        if let output { outputSource = watch(output, events: Self.writable | Self.edge, loop: loop) { $0.outputWritable = true } }
        if let input { _ = watch(input, events: Self.readable | Self.edge, loop: loop) { $0.inputReadable = true } }
    }

    /// Marks the stream ready whenever epoll says so, then shovels. epoll refuses regular files:
    /// those are always ready, so they are marked ready once and need no source (nil).
    private func watch(_ fd: OwnedFD, events: UInt32, loop: EventLoop, ready: @escaping (ConsoleForwarder) -> Void) -> EventSource? {
        guard
            let source = try? loop.addIO(
                fd.raw, events: events,
                { [unowned self] _ in
                    ready(self)
                    shovel()
                    watchOnlyWhatCanMove()
                })
        else {
            ready(self)
            return nil
        }
        sources.append(source)
        return source
    }

    /// Asks epoll only for what could move a byte now. While the queue to the host is full, the
    /// master's new output cannot be read: each of its wake-ups would be for nothing (half of them,
    /// in a busy console whose reader is slower than the machine). Writability is news only with
    /// something to write that the last write could not place. epoll_ctl re-checks changed events at
    /// once, so nothing that became ready meanwhile is missed (EventSource.setEvents calls it only
    /// for a change).
    private func watchOnlyWhatCanMove() {
        let masterWrite = !toMachine.isEmpty && !masterWritable
        masterSource?.setEvents(Self.edge | (toHost.isFull ? 0 : Self.readable) | (masterWrite ? Self.writable : 0))
        let outputWrite = !toHost.isEmpty && !outputWritable
        outputSource?.setEvents(Self.edge | (outputWrite ? Self.writable : 0))
    }

    /// Copies the host terminal's size to the machine's (at start and on SIGWINCH).
    func resize() {
        guard var size = TerminalMode.windowSize(of: 1) ?? TerminalMode.windowSize(of: 0) else { return }
        _ = ioctl(master.raw, UInt(TIOCSWINSZ), &size)
    }

    /// After PID 1 is gone: write out what the machine still had to say, then give the terminal back.
    func finish() {
        masterReadable = true
        outputWritable = true
        shovel()
        var spins = 0
        while let output, !toHost.isEmpty, !outputGone, spins < 100 {
            var pfd = pollfd(fd: output.raw, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, 50)
            outputWritable = true
            shovel()
            spins += 1
        }
        sources.removeAll()
        masterSource = nil
        outputSource = nil
        if let flags = restoreOutputFlags, let output { _ = fcntl(output.raw, F_SETFL, flags) }
        terminal?.restore()
    }

    private func shovel() {
        var progress = true
        while progress {
            progress = false
            if let input, inputReadable, !inputEOF, !toMachine.isFull {
                switch read(input.raw, into: &toMachine) {
                case .data(let n):
                    watchForEscapes(toMachine.suffix(n))
                    progress = true
                case .end: inputEOF = true
                case .wait, .hangup: inputReadable = false
                }
            }
            // All the machine has said, up to a full queue, before one write: a pty hands out at most
            // 4095 bytes a read, and a write for each would double the system calls of a busy console.
            while masterReadable, !toHost.isFull {
                switch read(master.raw, into: &toHost) {
                case .data:
                    masterHungUp = false
                    progress = true
                case .wait, .end: masterReadable = false
                case .hangup:
                    // vhangup() by the guest, or no one has the console open right now: not the end.
                    masterHungUp = true
                    masterReadable = false
                }
            }
            if masterWritable, !toMachine.isEmpty {
                switch write(master.raw, from: &toMachine) {
                case .wrote:
                    progress = true
                case .wouldBlock:
                    masterWritable = false
                case .gone:
                    // The machine side is hung up (vhangup): what was typed meanwhile is dropped.
                    toMachine.removeAll()
                    masterWritable = false
                }
            }
            if output == nil || outputGone {
                progress = progress || !toHost.isEmpty
                toHost.removeAll()
            } else if let output, outputWritable, !toHost.isEmpty {
                switch write(output.raw, from: &toHost) {
                case .wrote:
                    progress = true
                case .wouldBlock:
                    outputWritable = false
                case .gone:
                    outputGone = true
                    progress = true
                }
            }
        }
    }

    // MARK: Escape sequences

    /// Three ^] within a second kill the machine; ^] ^] p powers it off and ^] ^] r reboots it.
    /// Every byte still reaches the machine, as with systemd's ptyfwd: nothing typed is ever lost.
    private func watchForEscapes(_ bytes: ArraySlice<UInt8>) {
        for byte in bytes {
            let now = Clock.monotonicNanoseconds()
            escapes.removeAll { now - $0 > Self.escapeWindow }
            if byte == Self.escape {
                escapes.append(now)
                if escapes.count == 3 {
                    escapes.removeAll()
                    onRequest(.kill)
                }
            } else if escapes.count == 2, byte == UInt8(ascii: "p") || byte == UInt8(ascii: "r") {
                escapes.removeAll()
                onRequest(byte == UInt8(ascii: "p") ? .powerOff : .reboot)
            } else {
                escapes.removeAll()
            }
        }
    }

    // MARK: I/O

    private enum ReadResult {
        /// This many bytes were added to the queue.
        case data(Int)
        case wait, end, hangup
    }

    private func read(_ fd: Int32, into queue: inout ByteQueue) -> ReadResult {
        while true {
            let n = queue.read(from: fd)
            if n > 0 { return .data(n) }
            if n == 0 { return .end }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wait
            case EIO: return .hangup
            default: return .end
            }
        }
    }

    private enum WriteResult {
        case wrote
        case wouldBlock
        /// EIO, EPIPE and the like: nobody is there to read.
        case gone
    }

    private func write(_ fd: Int32, from queue: inout ByteQueue) -> WriteResult {
        while true {
            let n = queue.write(to: fd)
            if n >= 0 { return .wrote }
            if errno == EINTR { continue }
            return errno == EAGAIN ? .wouldBlock : .gone
        }
    }

    /// A description of our own for a stream, so O_NONBLOCK never leaks into the caller's. A regular
    /// file is only dup'ed: a second description would have an offset of its own and overwrite
    /// what goes to the same file through another descriptor (2>&1).
    private static func reopenNonBlocking(_ fd: Int32, flags: Int32) -> OwnedFD? {
        var st = stat()
        if fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
            return copy >= 0 ? OwnedFD(copy) : nil
        }
        let reopened = open("/proc/self/fd/\(fd)", flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        return reopened >= 0 ? OwnedFD(reopened) : nil
    }
}
