#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import SystemPackage

/// config.json's hooks (runtime-spec config.md, "POSIX-platform Hooks"), run by swift-nspawn-runc in
/// the specification's order, each with the container's state on its standard input:
/// - `create`, once PID 1 waits at the start gate: prestart and createRuntime in the runtime's
///   namespaces, then createContainer in the container's but its mount and user namespaces;
/// - `start`: startContainer in all of the container's namespaces, its path found there and held
///   as the container's process is (its user, capabilities and system call filters), before the
///   gate opens; poststart in ours after;
/// - `delete`: poststop, once the container is gone (and after a failed create, once it is undone).
/// A swift-nspawn machine's tree is its root before PID 1 reports at the gate: runc runs the first
/// three before its pivot_root, with the host's files still in the container's mount namespace.
/// Here that namespace holds only the image's files, so createContainer stays in ours: a hook run
/// there would load its interpreter and libraries from the image, with the hook's privileges.
struct RuntimeHooks: Equatable, Sendable {
    enum Phase: String, CaseIterable, Sendable {
        case prestart, createRuntime, createContainer, startContainer, poststart, poststop

        /// Where the hook runs: the container's namespaces (joined from PID 1) or the runtime's.
        var inContainer: Bool { self == .createContainer || self == .startContainer }
        /// The container's mount and user namespaces too, held as its process.
        var asContainerProcess: Bool { self == .startContainer }
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

    /// The container, for the phases that run in it: PID 1, its cgroup, and (for startContainer)
    /// what its process is held to and as whom it runs.
    struct Container {
        var pidfd: OwnedFD
        var pid: Int32
        var cgroup: String
        var confinement: PayloadConfinement?
        var identity: (uid: UInt32, gid: UInt32, groups: [UInt32]) = (0, 0, [])
    }

    /// Runs the phase's hooks in order. For a phase that must succeed, the first failure is thrown;
    /// for poststart and poststop each failure is said on standard error (runtime-spec: a warning)
    /// and the rest run.
    func run(_ phase: Phase, state: JSONValue, container: Container?) throws {
        for (index, hook) in (hooks[phase] ?? []).enumerated() {
            do {
                try Self.run(hook, phase: phase, state: state, container: phase.inContainer ? container : nil)
            } catch {
                let message = "error running \(phase.rawValue) hook #\(index) (\(hook.path)): \(error)"
                if phase.mustSucceed { throw UserError(message) }
                printError("warning: \(message)")
            }
        }
    }

    /// One hook, to its end or its timeout (then killed). Its output is kept, for the error.
    private static func run(_ hook: Hook, phase: Phase, state: JSONValue, container: Container?) throws {
        let input = OwnedFD(try sys("memfd_create") { nsp_memfd_create("state") })
        try FileSystem.writeAll(fd: input.raw, Array(state.text.utf8), path: "state")
        try sys("lseek") { lseek(input.raw, 0, SEEK_SET) }
        var pipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pipe, O_CLOEXEC) }
        let (output, outputWriter) = (OwnedFD(pipe[0]), OwnedFD(pipe[1]))
        // Found in our namespaces unless it runs where its path is the container's: opened here.
        let program = phase.asContainerProcess ? nil : try FileSystem.open(hook.path, NSP_O_PATH)
        let argv = hook.args.isEmpty ? [hook.path] : hook.args

        let cgroup = try container.map { try FileSystem.open($0.cgroup, O_RDONLY | O_DIRECTORY) }
        let child = try ChildProcess.clone(namespaces: [], intoCgroup: cgroup?.raw, role: "The \(hook.path) hook") {
            // Its own process group: a hook that outlives its timeout goes with what it started.
            _ = setpgid(0, 0)
            if let container {
                var namespaces = try Runtime.namespacesToJoin(of: container.pid)
                if !phase.asContainerProcess { namespaces.subtract([.mount, .user]) }
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
            if phase.asContainerProcess, let container, let confinement = container.confinement {
                try Payload.confine(confinement)
                try confinement.capabilities.apply(switchingTo: container.identity)
            }
            let error = withCStringVector(argv) { cArgs in
                withCStringVector(hook.env) { cEnv in
                    if let program {
                        // Open across the exec: a script's interpreter reads it through /dev/fd.
                        _ = fcntl(program.raw, F_SETFD, 0)
                        fexecve(program.raw, cArgs, cEnv)
                    } else {
                        execve(hook.path, cArgs, cEnv)
                    }
                    return errno
                }
            }
            throw SyscallError("execve", path: hook.path, errno: Errno(rawValue: error))
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
                // The hook's process group (what it started too), then the hook, reaped.
                kill(-child.pid, SIGKILL)
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
