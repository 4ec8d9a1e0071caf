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
    struct Result {
        var status: Int32
        var output: String
    }

    static let maximumOutput = 64 * 1024

    static func run(_ argv: [String], in machine: ChildProcess, namespaces: NamespaceSet, cgroup: Int32, policy: PayloadConfinement, timeout: Double) throws
        -> Result
    {
        var pipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pipe, O_CLOEXEC) }
        let reader = OwnedFD(pipe[0]), writer = OwnedFD(pipe[1])

        let child = try ChildProcess.clone(namespaces: [], intoCgroup: cgroup, role: "A process in the machine") {
            reader.close()
            try enter(argv, machine: machine, namespaces: namespaces, policy: policy, output: writer)
        }
        writer.close()

        // The program is the machine's: what it prints is bounded in size and in time.
        var output: [UInt8] = []
        let deadline = Clock.monotonicNanoseconds() + UInt64(timeout * 1e9)
        var buffer = [UInt8](repeating: 0, count: 4096)
        var finished = false
        while true {
            let now = Clock.monotonicNanoseconds()
            guard now < deadline else { break }
            var pfd = pollfd(fd: reader.raw, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32((deadline - now) / 1_000_000) + 1) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(reader.raw, $0.baseAddress, $0.count) }
            if n <= 0 {
                finished = true
                break
            }
            if output.count < maximumOutput { output += buffer[0..<min(n, maximumOutput - output.count)] }
        }
        if !finished { child.signal(SIGKILL) }
        let status: Int32
        switch try child.wait() {
        case .exited(let code)?: status = code
        case .killed(let signal)?: status = 128 + signal
        case nil: status = 255
        }
        return Result(status: status, output: String(decoding: output, as: UTF8.self))
    }

    /// In the cloned child: never returns.
    private static func enter(_ argv: [String], machine: ChildProcess, namespaces: NamespaceSet, policy: PayloadConfinement, output: OwnedFD) throws -> Never {
        var joined = namespaces
        joined.insert(.cgroup)
        try sys("setns", path: "machine") { nsp_setns(machine.pidfd.raw, Int32(truncatingIfNeeded: joined.rawValue)) }
        if namespaces.contains(.user) { try MachineRoot.become() }
        try sys("chdir", path: "/") { chdir("/") }
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
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        _exit(shellStatus(status))
    }
}
