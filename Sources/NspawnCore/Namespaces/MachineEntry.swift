#if canImport(Glibc)
import Glibc
#endif
import CNspawnShim

/// Runs a program inside a running machine, as its root, and collects what it prints: joins all of
/// PID 1's namespaces at once through its pidfd (setns(2) with a pidfd, Linux 5.8), then forks once
/// more so the program is a member of the machine's PID namespace.
enum MachineEntry {
    struct Result {
        var status: Int32
        var output: String
    }

    static func run(_ argv: [String], in machine: ChildProcess, namespaces: NamespaceSet, timeout: Double) throws -> Result {
        var pipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pipe, O_CLOEXEC) }
        let reader = OwnedFD(pipe[0]), writer = OwnedFD(pipe[1])

        let pid = fork()
        if pid < 0 { throw SyscallError.last("fork") }
        if pid == 0 { enter(argv, machine: machine, namespaces: namespaces, output: writer) }
        writer.close()

        var output: [UInt8] = []
        let deadline = ConsoleForwarder.monotonicNow() + UInt64(timeout * 1e9)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ConsoleForwarder.monotonicNow() < deadline {
            var pfd = pollfd(fd: reader.raw, events: Int16(POLLIN), revents: 0)
            let remaining = Int32((deadline - ConsoleForwarder.monotonicNow()) / 1_000_000)
            guard poll(&pfd, 1, max(remaining, 1)) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(reader.raw, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            output += buffer[0..<n]
        }
        var status: Int32 = 0
        if ConsoleForwarder.monotonicNow() >= deadline { kill(pid, SIGKILL) }
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: code, output: String(decoding: output, as: UTF8.self))
    }

    /// In the forked child: never returns.
    private static func enter(_ argv: [String], machine: ChildProcess, namespaces: NamespaceSet, output: OwnedFD) -> Never {
        var joined = namespaces
        joined.insert(.cgroup)
        if nsp_setns(machine.pidfd.raw, Int32(truncatingIfNeeded: joined.rawValue)) != 0 {
            printError("\(SyscallError.last("setns", path: "machine"))")
            _exit(127)
        }
        if namespaces.contains(.user) {
            _ = nsp_setresgid(0)
            _ = setgroups(0, nil)
            _ = nsp_setresuid(0)
        }
        _ = chdir("/")
        let child = fork()
        if child < 0 { _exit(127) }
        if child == 0 {
            ProcessLifetime.dieWithParent()
            dup2(output.raw, 1)
            dup2(output.raw, 2)
            _ = nsp_close_range(3, UInt32.max, 0)
            var none = sigset_t()
            sigemptyset(&none)
            sigprocmask(SIG_SETMASK, &none, nil)
            _ = Payload.execute(argv[0], argv: argv, environment: ["PATH=\(Payload.defaultPath)", "SYSTEMD_COLORS=0"])
            _exit(127)
        }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        _exit(status & 0x7f == 0 ? (status >> 8) & 0xff : 127)
    }
}
