#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Runs a program of the machine's inside the running machine and collects what it prints. The
/// program is the machine's code, so it is held exactly as the payload is: born in the machine's
/// cgroup, in all of PID 1's namespaces (setns(2) with a pidfd), a session of its own with
/// /dev/null as input (never our terminal), only descriptors 0-2, the seccomp filter and the
/// capability bounding set. A second fork makes it a member of the machine's PID namespace.
enum MachineEntry {
    static let maximumOutput = 64 * 1024

    /// A program started in the machine. The supervisor's event loop reads its output as it comes
    /// (`read()` when `output` is readable) and reaps it when its pidfd says it ended: nothing here
    /// blocks, so the console and signals keep flowing meanwhile.
    final class Running {
        let child: ChildProcess
        /// The read end of its stdout and stderr, non-blocking.
        let output: OwnedFD
        /// What it printed, at most `maximumOutput` bytes: the program is the machine's.
        private(set) var printed: [UInt8] = []

        fileprivate init(child: ChildProcess, output: OwnedFD) {
            self.child = child
            self.output = output
        }

        /// Reads what is there; true once the program has closed its output (or it failed).
        func read() -> Bool {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(output.raw, $0.baseAddress, $0.count) }
                if n > 0 {
                    if printed.count < maximumOutput { printed += buffer[0..<min(n, maximumOutput - printed.count)] }
                    continue
                }
                if n < 0 && errno == EINTR { continue }
                return !(n < 0 && errno == EAGAIN)
            }
        }

        var text: String { String(decoding: printed, as: UTF8.self) }
    }

    static func start(_ argv: [String], in machine: ChildProcess, namespaces: NamespaceSet, cgroup: Int32, policy: PayloadConfinement) throws -> Running {
        var pipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pipe, O_CLOEXEC) }
        let reader = OwnedFD(pipe[0]), writer = OwnedFD(pipe[1])
        // Only our end: the program writes as it always does.
        try sys("fcntl(F_SETFL)") { fcntl(reader.raw, F_SETFL, O_NONBLOCK) }
        let child = try ChildProcess.clone(namespaces: [], intoCgroup: cgroup, role: "A process in the machine") {
            reader.close()
            try enter(argv, machine: machine, namespaces: namespaces, policy: policy, output: writer)
        }
        writer.close()
        return Running(child: child, output: reader)
    }

    /// In a process cloned into the machine's cgroup: only the descriptors it keeps (the
    /// supervisor's host sockets, locks and directories stay out of the machine: one of them as a
    /// working directory would lead out of it), then the namespaces given of the machine's PID 1
    /// (setns with its pidfd), as root there, in its root directory. A fork follows, into its PID
    /// namespace. (Also the OCI runtime's `exec`.)
    static func join(pidfd: Int32, namespaces: NamespaceSet, keeping kept: [Int32]) throws {
        closeDescriptors(except: [pidfd] + kept)
        try sys("setns", path: "machine") { nsp_setns(pidfd, Int32(truncatingIfNeeded: namespaces.rawValue)) }
        if namespaces.contains(.user) { try LinuxKernel().becomeRoot() }
        try sys("chdir", path: "/") { chdir("/") }
    }

    /// In the cloned child: never returns.
    private static func enter(_ argv: [String], machine: ChildProcess, namespaces: NamespaceSet, policy: PayloadConfinement, output: OwnedFD) throws -> Never {
        try join(pidfd: machine.pidfd.raw, namespaces: namespaces.union(.cgroup), keeping: [output.raw])
        let pid = try sys("fork") { fork() }
        if pid == 0 {
            ProcessLifetime.dieWithParent()
            do {
                _ = setsid()
                let null = try FileSystem.open("/dev/null", O_RDONLY)
                try sys("dup2", path: "/dev/null") { dup2(null.raw, 0) }
                try sys("dup2") { dup2(output.raw, 1) }
                try sys("dup2") { dup2(output.raw, 2) }
                try Payload.confine(policy)
                try policy.capabilities.apply(switchingTo: nil)
            } catch {
                printError("\(error)")
                _exit(127)
            }
            _ = Payload.execute(argv[0], argv: argv, environment: ["PATH=\(Payload.defaultPath)", "SYSTEMD_COLORS=0"])
            _exit(127)
        }
        var status: Int32 = 0
        _ = try? sys("waitpid") { waitpid(pid, &status, 0) }
        _exit(shellStatus(status))
    }
}
