#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// config.json's hooks (runtime-spec config.md, "POSIX-platform Hooks"), run by swift-nspawn-runc in
/// the specification's order, each with the container's state on its standard input:
/// - `create`, once PID 1 waits at the start gate: prestart and createRuntime in the runtime's
///   namespaces, then createContainer in the container's (its path found in ours);
/// - `start`: startContainer in the container's namespaces (its path found there) before the gate
///   opens, poststart in ours after;
/// - `delete`: poststop, once the container is gone.
/// A swift-nspawn machine's tree is its root before PID 1 reports at the gate, so the first three
/// run after the machine's pivot_root, not before it as the specification has them: a hook that
/// mounts into root.path through PID 1's mount namespace finds no such path there.
struct RuntimeHooks: Equatable, Sendable {
    enum Phase: String, CaseIterable, Sendable {
        case prestart, createRuntime, createContainer, startContainer, poststart, poststop

        /// Where the hook runs: the container's namespaces (joined from PID 1) or the runtime's.
        var inContainer: Bool { self == .createContainer || self == .startContainer }
        /// A failure ends the container; of the other two, it is only said.
        var mustSucceed: Bool { self != .poststart && self != .poststop }
    }

    struct Hook: Equatable, Sendable {
        var path: String
        /// argv, argv[0] included; the path alone when empty.
        var args: [String]
        var env: [String]
        /// Seconds; without one, `defaultTimeout`: no wait of ours is unbounded.
        var timeout: Int64?
    }

    static let defaultTimeout: Int64 = 300

    var hooks: [Phase: [Hook]] = [:]

    var isEmpty: Bool { hooks.values.allSatisfy(\.isEmpty) }

    init() {}

    /// Reads config.json's hooks object (or state.json's copy of it).
    init(_ value: JSONValue?, read: OCIBundle.Reader) throws(UserError) {
        guard let phases = try read.object(value, "hooks", known: Set(Phase.allCases.map(\.rawValue))) else { return }
        for phase in Phase.allCases {
            for (index, entry) in try read.array(phases[phase.rawValue], "hooks.\(phase.rawValue)").enumerated() {
                let field = "hooks.\(phase.rawValue)[\(index)]"
                let hook = try read.object(entry, field, known: ["path", "args", "env", "timeout"]) ?? [:]
                guard let path = try read.string(hook["path"], "\(field).path"), path.hasPrefix("/") else {
                    throw read.refuse("\(field).path", "expected an absolute path.")
                }
                let timeout = try read.integer(hook["timeout"], "\(field).timeout", in: 1...86400)
                hooks[phase, default: []].append(
                    Hook(
                        path: path, args: try read.strings(hook["args"], "\(field).args"), env: try read.strings(hook["env"], "\(field).env"), timeout: timeout)
                )
            }
        }
    }

    /// As config.json has it: what state.json keeps for `start` and `delete`.
    var json: JSONValue {
        var phases: [String: JSONValue] = [:]
        for (phase, list) in hooks where !list.isEmpty {
            phases[phase.rawValue] = .array(
                list.map { hook in
                    var members: [String: JSONValue] = [
                        "path": .string(hook.path), "args": .array(hook.args.map(JSONValue.string)), "env": .array(hook.env.map(JSONValue.string)),
                    ]
                    if let timeout = hook.timeout { members["timeout"] = .number(timeout) }
                    return .object(members)
                })
        }
        return .object(phases)
    }

    /// Runs the phase's hooks in order. For a phase that must succeed, the first failure is thrown;
    /// for poststart and poststop each failure is said on standard error (runtime-spec: a warning)
    /// and the rest run. `container`: PID 1's pidfd and PID, and its cgroup, for the phases that run
    /// in the container.
    func run(_ phase: Phase, state: JSONValue, container: (pidfd: OwnedFD, pid: Int32, cgroup: String)?) throws {
        for (index, hook) in (hooks[phase] ?? []).enumerated() {
            do {
                try Self.run(hook, state: state, container: phase.inContainer ? container : nil, resolveInContainer: phase == .startContainer)
            } catch {
                let message = "error running \(phase.rawValue) hook #\(index) (\(hook.path)): \(error)"
                if phase.mustSucceed { throw UserError(message) }
                printError("warning: \(message)")
            }
        }
    }

    /// One hook, to its end or its timeout (then killed). Its output is kept, for the error.
    private static func run(_ hook: Hook, state: JSONValue, container: (pidfd: OwnedFD, pid: Int32, cgroup: String)?, resolveInContainer: Bool) throws {
        let input = OwnedFD(try sys("memfd_create") { nsp_memfd_create("state") })
        try FileSystem.writeAll(fd: input.raw, Array(state.text.utf8), path: "state")
        try sys("lseek") { lseek(input.raw, 0, SEEK_SET) }
        var pipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pipe, O_CLOEXEC) }
        let (output, outputWriter) = (OwnedFD(pipe[0]), OwnedFD(pipe[1]))
        // Found in our namespaces unless it runs where its path is the container's: opened here.
        let program = resolveInContainer ? nil : try FileSystem.open(hook.path, NSP_O_PATH)
        let argv = hook.args.isEmpty ? [hook.path] : hook.args

        let cgroup = try container.map { try FileSystem.open($0.cgroup, O_RDONLY | O_DIRECTORY) }
        let child = try ChildProcess.clone(namespaces: [], intoCgroup: cgroup?.raw, role: "The \(hook.path) hook") {
            if let container {
                let namespaces = try Runtime.namespacesToJoin(of: container.pid)
                try MachineEntry.join(
                    pidfd: container.pidfd.raw, namespaces: namespaces, keeping: [input.raw, outputWriter.raw] + [program?.raw].compactMap { $0 })
                // A member of the container's PID namespace only as a child.
                let pid = try sys("fork") { fork() }
                if pid > 0 {
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    _exit(shellStatus(status))
                }
                ProcessLifetime.dieWithParent()
            } else {
                closeDescriptors(except: [input.raw, outputWriter.raw] + [program?.raw].compactMap { $0 })
            }
            for (fd, target) in [(input.raw, Int32(0)), (outputWriter.raw, 1), (outputWriter.raw, 2)] {
                try sys("dup2") { dup2(fd, target) }
            }
            var none = sigset_t()
            sigemptyset(&none)
            sigprocmask(SIG_SETMASK, &none, nil)
            var cArgs = argv.map { strdup($0) } + [nil]
            var cEnv = hook.env.map { strdup($0) } + [nil]
            if let program {
                // Open across the exec: a script's interpreter reads it through /dev/fd.
                _ = fcntl(program.raw, F_SETFD, 0)
                fexecve(program.raw, &cArgs, &cEnv)
            } else {
                execve(hook.path, &cArgs, &cEnv)
            }
            throw SyscallError.last("execve", path: hook.path)
        }
        outputWriter.close()
        let (termination, text) = try wait(for: child, output: output, seconds: hook.timeout ?? defaultTimeout)
        switch termination {
        case .exited(0): return
        case .exited(let status): throw UserError("exit status \(status), output: \(text)")
        case .killed(let signal): throw UserError("killed by signal \(SignalName.name(signal)), output: \(text)")
        }
    }

    /// Reads the hook's output while it runs (at most 64 KiB is kept); kills it at the deadline.
    private static func wait(for child: ChildProcess, output: OwnedFD, seconds: Int64) throws -> (ChildProcess.Termination, String) {
        var kept: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Clock.monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000
        var open = true
        while true {
            let now = Clock.monotonicNanoseconds()
            guard now < deadline else {
                child.kill()
                throw UserError("timed out after \(seconds) s")
            }
            var fds = [pollfd(fd: child.pidfd.raw, events: Int16(POLLIN), revents: 0), pollfd(fd: open ? output.raw : -1, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, Int32(min((deadline - now) / 1_000_000, 1000)))
            if ready < 0 && errno != EINTR { throw SyscallError.last("poll") }
            if fds[1].revents != 0 {
                let n = read(output.raw, &buffer, buffer.count)
                if n > 0 { kept += buffer[0..<min(n, max(0, 65536 - kept.count))] } else if n == 0 || errno != EINTR { open = false }
            }
            if fds[0].revents != 0, let termination = try child.wait(block: false) {
                // What it wrote before it ended (a process it left behind may hold the pipe open).
                _ = fcntl(output.raw, F_SETFL, O_NONBLOCK)
                while open, case let n = read(output.raw, &buffer, buffer.count), n > 0 { kept += buffer[0..<min(n, max(0, 65536 - kept.count))] }
                return (termination, String(decoding: kept, as: UTF8.self).trimmingTrailingNewlines)
            }
        }
    }
}

extension String {
    fileprivate var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while text.last == "\n" { text = text.dropLast() }
        return String(text)
    }
}
