#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import SystemPackage

/// swift-nspawn-runc exec: a process started in a running container, held as its PID 1 is. It is
/// born in the machine's cgroup, joins every namespace of PID 1 that is not ours (setns with its
/// pidfd), and a second fork makes it a member of the machine's PID namespace. It gets the
/// machine's system call filter and capabilities no wider than the machine's (read again from
/// the bundle's config.json), its own user, environment, working directory, and a pty of the
/// machine's own devpts when it asks for a terminal. With --detach, exec ends once it runs and the
/// caller (a subreaper) reaps it; without, exec waits and ends with its status.
extension Runtime {
    /// The process to start, as the OCI process object says (--process), or as the command line does
    /// over the container's own process.
    struct ExecProcess {
        var arguments: [String]
        var environment: [String]
        var workingDirectory: String
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
        var terminal: Bool
        var capabilities: CapabilityPolicy
        /// The container's resource limits and OOM score, or the process object's.
        var limits: [ResourceLimit]
        var oomScoreAdjust: Int?
        var consoleSize: ConsoleSize?
    }

    static func exec(_ request: ExecRequest, root: String) throws -> Int32 {
        _ = nsp_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        // Before we open anything ourselves: a descriptor of ours must not pass for one of the caller's.
        let preserved = try preserved(request.preserveFDs)
        let record = try ContainerRecord.read(root: root, id: request.id)
        switch record.status(root: root) {
        case .running, .created: break
        case .paused: throw UserError("cannot exec in a paused container")
        case .stopped: throw UserError("cannot exec in a stopped container")
        }
        let (container, machine) = try containerConfinement(record)
        let process = try execProcess(request, container: container, machine: machine.capabilities)
        guard process.terminal == (request.consoleSocket != nil) else {
            throw UserError(
                process.terminal ? "process.terminal is true: --console-socket must be given." : "--console-socket given, but the process has no terminal.")
        }
        var confinement = machine
        confinement.capabilities = process.capabilities
        confinement.preservedDescriptors = preserved
        // The process hands its seccomp profile's listener to us, for the profile's agent.
        let listenerChannel = confinement.seccompProfile?.listens == true ? try SetupChannel.pair() : nil

        guard let pid1 = openPID1(record) else { throw UserError("cannot exec in a stopped container") }
        let namespaces = try namespacesToJoin(of: record.pid)
        let cgroup = try FileSystem.open(record.cgroup, O_RDONLY | O_DIRECTORY)
        let console = try request.consoleSocket.map(connectSocket)
        var pidPipe: [Int32] = [-1, -1]
        var errorPipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pidPipe, O_CLOEXEC) }
        try sys("pipe2") { nsp_pipe2(&errorPipe, O_CLOEXEC) }
        // pid: the process's host PID, from the child that forks it. errors: what failed before
        // the exec, from either; the process's copy closes on exec, so end of file with nothing
        // read is success.
        let (pidReader, pidWriter) = (OwnedFD(pidPipe[0]), OwnedFD(pidPipe[1]))
        let (errorReader, errorWriter) = (OwnedFD(errorPipe[0]), OwnedFD(errorPipe[1]))
        // Waited for here: the process comes to us when the child that forked it ends. Every signal
        // we get until then is held, to be passed on (its confinement unblocks them for it).
        var forwarded = sigset_t()
        if !request.detach {
            _ = nsp_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            sigfillset(&forwarded)
            try sys("sigprocmask") { sigprocmask(SIG_BLOCK, &forwarded, nil) }
        }

        let joiner = try ChildProcess.clone(namespaces: [], intoCgroup: cgroup.raw, role: "The process joining the container") {
            do {
                try MachineEntry.join(
                    pidfd: pid1.raw, namespaces: namespaces,
                    keeping: [pidWriter.raw, errorWriter.raw] + [console?.raw, listenerChannel?.1.fd.raw].compactMap { $0 } + confinement.preserved)
                let pid = try sys("fork") { fork() }
                if pid == 0 {
                    start(process, confinement: confinement, console: console, errors: errorWriter, listenerChannel: listenerChannel?.1, pidfd: pid1)
                }
                listenerChannel?.1.fd.close()
                var hostPID = Int32(pid)
                _ = withUnsafeBytes(of: &hostPID) { Glibc.write(pidWriter.raw, $0.baseAddress, 4) }
            } catch {
                say(error, on: errorWriter)
                _exit(1)
            }
            _exit(0)
        }
        pidWriter.close()
        errorWriter.close()
        console?.close()
        listenerChannel?.1.fd.close()
        let what = "The process started in container \(request.id)"
        // The process's host PID, once the child that forked it has written it (nil: it wrote none).
        var hostPID: Int32?
        func readPID() -> Int32? {
            if hostPID == nil {
                var pid: Int32 = 0
                if withUnsafeMutableBytes(of: &pid, { Glibc.read(pidReader.raw, $0.baseAddress, 4) }) == 4 { hostPID = pid }
            }
            return hostPID
        }
        if let (receiver, _) = listenerChannel, let profile = container.seccompProfile {
            // First: the process may already wait in a call only the agent answers. None comes
            // when the process failed before; it says why on the error pipe.
            var listener: OwnedFD?
            do { listener = try receiver.receive(.seccompListener, from: what, within: 10).first } catch is SetupAborted {}
            if let listener {
                guard let pid = readPID() else { throw UserError("\(what) ended before it ran.") }
                try sendSeccompListener(listener, profile: profile, pid: pid, state: record.state(root: root))
                // Until then the process waits; should we fail, it ends with us (end of file).
                try receiver.send(.listenerHandedOn, to: what)
            }
        }
        let message = try readToEnd(errorReader, seconds: 10, what: what)
        let pid = readPID()
        let joined = try joiner.wait()
        guard message.isEmpty else {
            if let pid, !request.detach { _ = waitpid(pid, nil, 0) }
            throw UserError(message)
        }
        guard let pid, joined == .exited(0) else { throw UserError("The process joining the container \(request.id) ended without starting one.") }
        if let pidFile = request.pidFile { try FileSystem.replace(pidFile, contents: "\(pid)", mode: 0o644) }
        guard !request.detach else { return 0 }
        return try waitPassingOnSignals(to: pid, signals: forwarded)
    }

    /// Without --detach, exec stands for its process, as runc's does: each signal it gets (but
    /// SIGCHLD) goes on to the process, so that a caller's SIGTERM or SIGINT reaches it; ends with
    /// its status.
    private static func waitPassingOnSignals(to pid: Int32, signals: sigset_t) throws -> Int32 {
        var set = signals
        var info = siginfo_t()
        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { return shellStatus(status) }
            if reaped < 0 && errno != EINTR { throw SyscallError.last("waitpid") }
            // Blocked, a signal waits for us here: SIGCHLD too, when the process ends.
            let signal = sigwaitinfo(&set, &info)
            if signal > 0 && signal != SIGCHLD { kill(pid, signal) }
        }
    }

    /// --preserve-fds: that many descriptors from 3 up, each of them open.
    static func preserved(_ count: Int) throws -> Int32 {
        for fd in 3..<(3 + Int32(count)) where fcntl(fd, F_GETFD) < 0 {
            throw UserError("--preserve-fds=\(count): descriptor \(fd) is not open.")
        }
        return Int32(count)
    }

    /// The container's configuration as create read it (not our environment's switches), and what
    /// its processes are held to: its capabilities, swift-nspawn's filter and its seccomp profile.
    /// (What exec's process, and a startContainer hook, may have at most.)
    static func containerConfinement(_ record: ContainerRecord) throws -> (Configuration, PayloadConfinement) {
        var options = CommandLineOptions()
        options.settings = "no"
        let (container, _) = try OCIBundle.load(record.bundle, runtime: true).configuration(commandLine: options, override: false) { _ in nil }
        let (capabilities, seccompPolicy, _) = try MachinePlan.confinement(
            container, userNamespace: container.userNamespace != .no, held: CapabilityPolicy.held())
        let confinement = PayloadConfinement(
            capabilities: capabilities, seccomp: try seccompPolicy.map(SeccompFilter.load), seccompProfile: try container.seccompProfile.map(SeccompFilter.load)
        )
        return (container, confinement)
    }

    /// What a pipe carries until every writer has closed it, waiting at most `seconds` (a process
    /// of the container could stop ours before its exec).
    private static func readToEnd(_ fd: OwnedFD, seconds: Int32, what: String) throws -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var poller = [pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)]
        while true {
            guard try sys("poll", { poll(&poller, 1, seconds * 1000) }) > 0 else { throw UserError("\(what) did not start within \(seconds) s.") }
            let n = read(fd.raw, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func say(_ error: any Error, on pipe: OwnedFD) {
        _ = Array("\(error)".utf8).withUnsafeBytes { Glibc.write(pipe.raw, $0.baseAddress, $0.count) }
    }

    /// The namespaces of PID 1 that are not ours, by their inodes in /proc.
    static func namespacesToJoin(of pid: Int32) throws -> NamespaceSet {
        var set: NamespaceSet = []
        for (namespace, name) in NamespaceSet.procNames {
            let theirs = try FileSystem.stat("/proc/\(pid)/ns/\(name)")
            let ours = try FileSystem.stat("/proc/self/ns/\(name)")
            if theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev { set.insert(namespace) }
        }
        return set
    }

    /// In the machine's namespaces, forked: never returns. Held as the machine's payload is, in its
    /// order (Payload.become): console, limits, confinement with nothing but 0-2 and `errors` left
    /// open, user and capabilities, then the working directory, as that user. What fails before
    /// the exec goes to `errors`; exec closes it.
    private static func start(
        _ process: ExecProcess, confinement: PayloadConfinement, console: OwnedFD?, errors: OwnedFD, listenerChannel: SetupChannel?, pidfd: OwnedFD
    ) -> Never {
        var confinement = confinement
        do {
            pidfd.close()
            _ = setsid()
            if let console {
                let master = try FileSystem.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
                let peer = try LinuxKernel().openPTYPeer(master, name: "/dev/ptmx")
                if let size = process.consoleSize {
                    var window = winsize(ws_row: size.rows, ws_col: size.columns, ws_xpixel: 0, ws_ypixel: 0)
                    try sys("ioctl(TIOCSWINSZ)", path: "/dev/ptmx") { ioctl(master.raw, UInt(TIOCSWINSZ), &window) }
                }
                for fd: Int32 in 0...2 { try sys("dup2", path: "/dev/ptmx") { dup2(peer.raw, fd) } }
                try sys("ioctl(TIOCSCTTY)", path: "/dev/ptmx") { ioctl(0, UInt(TIOCSCTTY), 0) }
                try sendConsole(master, over: console, name: "console socket")
            }
            let kernel = LinuxKernel()
            for limit in process.limits { try kernel.setResourceLimit(of: 0, limit) }
            if let score = process.oomScoreAdjust { try kernel.writeFile("\(score)", to: "/proc/self/oom_score_adj") }
            let program = try Payload.findProgram(process.arguments[0], environment: process.environment)
            // As PID 1's before the start gate: swift-nspawn's filter, then the profile, whose
            // listener goes to exec, and on to the agent; the exec only once the agent has it.
            let listener = try confinement.installFilters()
            if let listenerChannel, let listener {
                try listenerChannel.send(.seccompListener, fds: [listener], to: "swift-nspawn-runc exec")
                listener.close()
                _ = try listenerChannel.receive(.listenerHandedOn, from: "swift-nspawn-runc exec")
                listenerChannel.fd.close()
            }
            try Payload.confine(confinement, keeping: errors.raw)
            try confinement.capabilities.apply(switchingTo: (process.uid, process.gid, process.groups))
            try sys("chdir", path: process.workingDirectory) { chdir(process.workingDirectory) }
            let error = Payload.execute(program, argv: process.arguments, environment: process.environment)
            throw UserError("exec: \"\(process.arguments[0])\": \(Errno(rawValue: error).message)")
        } catch {
            say(error, on: errors)
            _exit(1)
        }
    }

    /// The process exec starts: the container's own (its user, environment, working directory,
    /// capabilities) with the command line's changes; or the OCI process object of --process.
    private static func execProcess(_ request: ExecRequest, container c: Configuration, machine: CapabilityPolicy) throws -> ExecProcess {
        var process = ExecProcess(
            arguments: request.arguments, environment: c.environment, workingDirectory: c.workingDirectory ?? "/", uid: c.identity?.uid ?? 0,
            gid: c.identity?.gid ?? 0, groups: c.identity?.groups ?? [], terminal: request.tty, capabilities: machine,
            limits: c.process.resourceLimits, oomScoreAdjust: c.process.oomScoreAdjust)
        if let file = request.processFile {
            process = try processObject(file, machine: machine, container: c)
        } else {
            for assignment in request.environment {
                guard assignment.contains("=") else { throw UserError("exec: -e \(assignment): expected NAME=VALUE") }
                let name = assignment.prefix { $0 != "=" }
                process.environment.removeAll { $0.prefix { $0 != "=" } == name }
                process.environment.append(assignment)
            }
            if let user = request.user {
                let parts = user.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count <= 2, let uid = UInt32(parts[0]), let gid = parts.count == 2 ? UInt32(parts[1]) : uid else {
                    throw UserError("exec: -u \(user): expected UID or UID:GID")
                }
                (process.uid, process.gid, process.groups) = (uid, gid, [])
            }
            if let directory = request.workingDirectory { process.workingDirectory = directory }
            let added = try CapabilitySet.parse(request.capabilities.joined(separator: ","), option: "--cap")
            guard added.isSubset(of: machine.bounding) else {
                throw UserError("exec: --cap \(added.subtracting(machine.bounding)): not in the container's bounding set")
            }
            // Kept across the switch to a user that is not root, as runc's --cap does.
            process.capabilities.ambient.formUnion(added)
            if let flag = request.noNewPrivileges { process.capabilities.noNewPrivileges = flag }
        }
        guard process.workingDirectory.hasPrefix("/") else { throw UserError("exec: cwd \(process.workingDirectory) must be an absolute path") }
        if !process.environment.contains(where: { $0.hasPrefix("PATH=") }) { process.environment.insert("PATH=\(Payload.defaultPath)", at: 0) }
        return process
    }

    /// The OCI process object (config.md "process") of exec's --process file. Capabilities may be
    /// fewer than the container's, never more.
    private static func processObject(_ path: String, machine: CapabilityPolicy, container: Configuration) throws -> ExecProcess {
        let text = try FileSystem.readFile(path)
        let document: JSONValue
        do { document = try JSONValue.parse(Array(text.utf8)) } catch { throw UserError("\(path): not valid JSON: \(error)") }
        let read = OCIBundle.Reader(path: path)
        // What create refuses in config.json's process is refused here too, never dropped.
        let unsupported = ["apparmorProfile", "selinuxLabel", "commandLine", "ioPriority", "scheduler", "execCPUAffinity"]
        let known = Set(["terminal", "consoleSize", "user", "args", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges", "oomScoreAdj"] + unsupported)
        guard let object = try read.object(document, "", known: known) else { throw read.refuse("(document)", "expected an object.") }
        for field in unsupported { try read.unsupported(object[field], field) }
        let arguments = try read.strings(object["args"], "args")
        guard !arguments.isEmpty else { throw read.refuse("args", "missing or empty.") }
        let user = try read.object(object["user"], "user", known: ["uid", "gid", "additionalGids", "umask"]) ?? [:]
        if let umask = try read.unsigned(user["umask"], "user.umask"), umask != 0o022 { throw read.refuse("user.umask", "only the default 0022 is supported.") }
        func id(_ value: JSONValue?, _ field: String) throws(UserError) -> UInt32 { UInt32(try read.integer(value, field, in: 0...0xffff_fffe) ?? 0) }
        var capabilities = machine
        if let sets = try read.object(object["capabilities"], "capabilities", known: ["bounding", "effective", "permitted", "inheritable", "ambient"]) {
            guard let bounding = CapabilitySet.parseOrNil(try read.strings(sets["bounding"], "capabilities.bounding")),
                let ambient = CapabilitySet.parseOrNil(try read.strings(sets["ambient"], "capabilities.ambient"))
            else { throw read.refuse("capabilities", "unknown capability.") }
            guard bounding.isSubset(of: machine.bounding) else {
                throw read.refuse("capabilities.bounding", "\(bounding.subtracting(machine.bounding)) not in the container's bounding set.")
            }
            guard ambient.isSubset(of: bounding) else { throw read.refuse("capabilities.ambient", "must be part of the bounding set.") }
            (capabilities.bounding, capabilities.ambient) = (bounding, ambient)
        }
        if let flag = try read.bool(object["noNewPrivileges"], "noNewPrivileges") { capabilities.noNewPrivileges = flag }
        var limits = container.process.resourceLimits
        if let given = object["rlimits"], given != .null {
            limits = []
            for (index, value) in try read.array(given, "rlimits").enumerated() { limits.append(try read.resourceLimit(value, "rlimits[\(index)]").limit) }
        }
        let score = try read.integer(object["oomScoreAdj"], "oomScoreAdj", in: -1000...1000).map { Int($0) } ?? container.process.oomScoreAdjust
        var consoleSize: ConsoleSize?
        if let size = try read.object(object["consoleSize"], "consoleSize", known: ["height", "width"]) {
            let rows = try read.integer(size["height"], "consoleSize.height", in: 0...0xffff) ?? 0
            let columns = try read.integer(size["width"], "consoleSize.width", in: 0...0xffff) ?? 0
            if rows > 0 && columns > 0 { consoleSize = ConsoleSize(rows: UInt16(rows), columns: UInt16(columns)) }
        }
        return ExecProcess(
            arguments: arguments, environment: try read.strings(object["env"], "env"), workingDirectory: try read.string(object["cwd"], "cwd") ?? "/",
            uid: try id(user["uid"], "user.uid"), gid: try id(user["gid"], "user.gid"),
            groups: try read.array(user["additionalGids"], "user.additionalGids").enumerated().map { try id($1, "user.additionalGids[\($0)]") },
            terminal: try read.bool(object["terminal"], "terminal") ?? false, capabilities: capabilities, limits: limits, oomScoreAdjust: score,
            consoleSize: consoleSize)
    }

    /// A connected AF_UNIX stream socket: the caller's console socket.
    static func connectSocket(_ path: String) throws -> OwnedFD {
        let socket = OwnedFD(try sys("socket", path: path) { Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        // Bounded: connect(2) and sendmsg(2) on a Unix socket wait at most this long for a peer
        // whose queue is full.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        try sys("setsockopt(SO_SNDTIMEO)", path: path) {
            setsockopt(socket.raw, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw UserError("Socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        try sys("connect", path: path) {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        return socket
    }
}
