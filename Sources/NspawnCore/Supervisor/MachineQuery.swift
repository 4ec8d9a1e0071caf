#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// One program run in the machine for the boot test, driven by the supervisor's event loop: its
/// output read as it comes, its end seen through its pidfd, SIGKILL at the timeout.
final class MachineQuery {
    private let running: MachineEntry.Running
    private var output: EventSource?
    private var exit: EventSource?
    private var deadline: EventSource?

    init(_ running: MachineEntry.Running, loop: EventLoop, timeout: Double, done: @escaping (String) -> Void) throws {
        self.running = running
        output = try loop.addIO(running.output.raw, events: UInt32(EPOLLIN.rawValue)) { [unowned self] _ in
            if self.running.read() { output?.disable() }
        }
        exit = try loop.addIO(running.child.pidfd.raw, events: UInt32(EPOLLIN.rawValue)) { [unowned self] _ in
            guard (try? self.running.child.wait(block: false)) != nil else { return }
            for source in [output, exit, deadline] { source?.disable() }
            _ = self.running.read()
            done(self.running.text)
        }
        deadline = try loop.addTimer(after: timeout) { [unowned self] in self.running.child.signal(SIGKILL) }
    }

    /// The machine ended first: the program goes too, and is reaped.
    func cancel() {
        running.child.kill()
    }
}
