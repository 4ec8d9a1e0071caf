#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// swift-nspawn-runc: the OCI runtime command line (RuntimeInvocation) carried out. `create` boots
/// the bundle as a swift-nspawn machine (its config.json read as --oci-bundle reads it), leaves its
/// PID 1 at the start gate and ends, so that PID 1 is the caller's child (containerd's shim and
/// conmon are subreapers) with nothing in between; `start`, `state`, `kill` and `delete` act on
/// what it recorded under --root. Errors go to standard error and, with --log, to the log, in
/// runc's words where callers look for them ("does not exist", "not running").
public enum Runtime {
    public static func main(_ arguments: [String]) -> Int32 {
        switch RuntimeInvocation.parse(arguments) {
        case .refused(let global, let message):
            log(message, global)
            return 1
        case .run(let invocation):
            do {
                return try run(invocation)
            } catch is SetupAborted {
                // The child that failed has said why, on our standard error; the log gets a line too.
                log("container's setup failed", invocation.global, toStandardError: false)
                return 1
            } catch {
                log("\(error)", invocation.global)
                return 1
            }
        }
    }

    /// Returns the exit status: 0, or exec's process's without --detach.
    private static func run(_ invocation: RuntimeInvocation) throws -> Int32 {
        let global = invocation.global
        switch invocation.command {
        case .exec(let request):
            return try exec(request, root: global.root)
        case .help:
            print(RuntimeInvocation.usage)
        case .version:
            print("\(RuntimeInvocation.name) version \(Version.number)\nspec: \(RuntimeInvocation.specVersion)")
        case .unsupported(let command):
            throw UserError("\(command) is not supported by \(RuntimeInvocation.name): it has no checkpoint/restore (CRIU) support.")
        case .create(let id, let bundle, let pidFile, let consoleSocket, let preserveFDs):
            guard geteuid() == 0 else { throw UserError("\(RuntimeInvocation.name) needs to be root.") }
            try create(
                id: id, bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket, preserveFDs: preserveFDs, root: global.root,
                systemdCgroup: global.systemdCgroup)
        case .start(let id):
            try start(try ContainerRecord.read(root: global.root, id: id), root: global.root)
        case .state(let id):
            print(try ContainerRecord.read(root: global.root, id: id).state(root: global.root).text)
        case .kill(let id, let signal, let all):
            let record = try ContainerRecord.read(root: global.root, id: id)
            if all {
                // Whatever lives in the machine's cgroup, PID 1 gone or not.
                for pid in MachineCgroup.processes(record.cgroup) { kill(pid, signal) }
                return 0
            }
            guard record.status(root: global.root) != .stopped, let pidfd = openPID1(record) else { throw UserError("container not running") }
            try sys("pidfd_send_signal", path: id) { nsp_pidfd_send_signal(pidfd.raw, signal) }
        case .delete(let id, let force):
            let directory = ContainerRecord.directory(root: global.root, id: id)
            guard FileSystem.exists(directory + "/" + ContainerRecord.stateFile) else {
                // A create that ended before it recorded anything (its PID 1 died with it) leaves
                // at most the directory: removed, as runc does; not there is no error with --force.
                removeDirectory(directory)
                if force { return 0 }
                throw UserError("container does not exist: \(id)")
            }
            let record = try ContainerRecord.read(root: global.root, id: id)
            let status = record.status(root: global.root)
            // A created container goes without --force, as with runc: nothing of it has run yet.
            guard status == .stopped || status == .created || force else {
                throw UserError("cannot delete container \(id) that is not stopped: \(status.rawValue)")
            }
            try delete(record, root: global.root)
        case .pause(let id):
            let record = try ContainerRecord.read(root: global.root, id: id)
            guard [.running, .created].contains(record.status(root: global.root)) else { throw UserError("container not running") }
            try freeze(record, true)
        case .resume(let id):
            let record = try ContainerRecord.read(root: global.root, id: id)
            guard record.status(root: global.root) == .paused else { throw UserError("container not paused") }
            try freeze(record, false)
        case .ps(let id, let json):
            let record = try ContainerRecord.read(root: global.root, id: id)
            let pids = MachineCgroup.processes(record.cgroup).sorted()
            if json {
                print(JSONValue.array(pids.map { .number($0) }).text)
            } else {
                print("PID CMD")
                for pid in pids {
                    let command = ((try? FileSystem.readFile("/proc/\(pid)/cmdline")) ?? "").split(separator: "\0").joined(separator: " ")
                    print("\(pid) \(command)")
                }
            }
        case .update(let id, let source):
            let record = try ContainerRecord.read(root: global.root, id: id)
            guard record.status(root: global.root) != .stopped else { throw UserError("container not running") }
            let text = source == "-" ? String(decoding: try FileSystem.readAll(fd: 0, path: "standard input"), as: UTF8.self) : try FileSystem.readFile(source)
            let resources: JSONValue
            do { resources = try JSONValue.parse(Array(text.utf8)) } catch { throw UserError("\(source): not valid JSON: \(error)") }
            // What cannot be applied is an error, as for create: never a limit said and not in force.
            let properties = try OCIBundle.resourceProperties(resources, path: source == "-" ? "resources" : source)
            try MachineCgroup.apply(properties, to: record.cgroup, strict: true, kernel: LinuxKernel())
        case .features:
            print(RuntimeFeatures.json.text)
        }
        return 0
    }

    /// `preserveFDs`: descriptors 3, 4, … of ours that the container's process gets (socket activation).
    private static func create(
        id: String, bundle: String, pidFile: String?, consoleSocket: String?, preserveFDs: Int, root: String, systemdCgroup: Bool
    ) throws {
        // Socket activation, as runc passes it on: the sockets systemd gave us (LISTEN_PID is ours)
        // come first, from 3, told to the process as LISTEN_FDS with LISTEN_PID=1; --preserve-fds's after.
        let environment = Configuration.processEnvironment
        let listening = environment("LISTEN_PID") == "\(getpid())" ? environment("LISTEN_FDS").flatMap { Int($0) }.map { max(0, $0) } ?? 0 : 0
        // Before we open anything ourselves: a descriptor of ours must not pass for one of the caller's.
        let preserved = try preserved(listening + preserveFDs)
        let directory = ContainerRecord.directory(root: root, id: id)
        try RuntimeDirectory.create(root, mode: 0o700)
        guard mkdir(directory, 0o700) == 0 else {
            if errno == EEXIST { throw UserError("container with id exists: \(id)") }
            throw SyscallError.last("mkdir", path: directory)
        }
        var recorded = false
        defer { if !recorded { removeDirectory(directory) } }

        // The gate: writable by PID 1 whatever user it is (0622, as runc's), read by `start`.
        let gatePath = directory + "/" + ContainerRecord.gate
        try sys("mkfifo", path: gatePath) { mkfifo(gatePath, 0o622) }
        try sys("chmod", path: gatePath) { chmod(gatePath, 0o622) }
        let gate = try FileSystem.open(gatePath, NSP_O_PATH)

        var options = CommandLineOptions()
        options.machine = MachineName.cleanup(id)
        options.quiet = true
        options.register = "no"
        // config.json is the container's whole configuration: no .nspawn file of the host's or beside it.
        options.settings = "no"
        let bundleFile = try OCIBundle.read(bundle, runtime: true)
        var (configuration, _) = try bundleFile.settings.configuration(commandLine: options, override: false, environment: Configuration.processEnvironment)
        configuration.systemdCgroupDriver = systemdCgroup
        configuration.preservedDescriptors = preserved
        if listening > 0 { configuration.environment += ["LISTEN_FDS=\(listening)", "LISTEN_PID=1"] }
        // No process.terminal is false: the caller's standard streams are the process's.
        if configuration.console == nil { configuration.console = .pipe }

        // What the machine's children print goes to our standard error, which is the container's:
        // a copy comes back here, for the log.
        var pipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pipe, O_CLOEXEC | O_NONBLOCK) }
        let (errors, copy) = (OwnedFD(pipe[0]), OwnedFD(pipe[1]))
        errorCopy = copy.raw
        defer { errorCopy = nil }
        // Once a hook of create has run, a failure goes on with poststop (runtime-spec, lifecycle),
        // after the container is undone.
        var stateForPoststop: JSONValue?
        defer {
            if !recorded, let stateForPoststop { try? bundleFile.hooks.run(.poststop, state: stateForPoststop, container: nil) }
        }
        do {
            let handover = handover(
                id: id, directory: directory, bundle: bundleFile.directory, annotations: bundleFile.annotations, gate: gate, consoleSocket: consoleSocket,
                pidFile: pidFile, rootfs: configuration.directory ?? "", consoleSize: configuration.consoleSize, seccompProfile: configuration.seccompProfile,
                hooks: bundleFile.hooks
            ) { stateForPoststop = $0 }
            try Launcher.create(configuration, handover: handover)
        } catch is SetupAborted {
            copy.close()
            var bytes = [UInt8](repeating: 0, count: 65536)
            let count = read(errors.raw, &bytes, bytes.count)
            let lines = String(decoding: bytes[0..<max(0, count)], as: UTF8.self).split(separator: "\n")
            throw UserError(lines.last.map(String.init) ?? "the container's setup failed")
        }
        recorded = true
    }

    /// Records the machine once its PID 1 waits at the gate: the console to the caller, the seccomp
    /// listener to its agent, the hooks of create, the state, the pid file. `hooksRun`: told the
    /// state (stopped) poststop gets should the container be undone after a hook of create ran.
    private static func handover(
        id: String, directory: String, bundle: String, annotations: [String: JSONValue], gate: OwnedFD, consoleSocket: String?, pidFile: String?,
        rootfs: String, consoleSize: ConsoleSize?, seccompProfile: SeccompProfile?, hooks: RuntimeHooks, hooksRun: @escaping (JSONValue) -> Void
    ) -> MachineHandover {
        MachineHandover(startGate: gate) { pid1, master, listener, cgroup in
            guard let stat = ProcessStat.read(pid1.pid) else { throw UserError("The container's PID 1 (\(pid1.pid)) is gone.") }
            if let consoleSocket {
                guard let master else { throw UserError("--console-socket given, but the bundle's process.terminal is false.") }
                if let consoleSize {
                    var size = winsize(ws_row: consoleSize.rows, ws_col: consoleSize.columns, ws_xpixel: 0, ws_ypixel: 0)
                    try sys("ioctl(TIOCSWINSZ)", path: "/dev/console") { ioctl(master.raw, UInt(TIOCSWINSZ), &size) }
                }
                try sendConsole(master, over: try connectSocket(consoleSocket), name: consoleSocket)
            } else if master != nil {
                throw UserError("process.terminal is true: --console-socket must be given.")
            }
            let record = ContainerRecord(
                id: id, bundle: bundle, rootfs: rootfs, pid: pid1.pid, startTime: stat.startTime, created: Clock.rfc3339Now(), cgroup: cgroup.path,
                annotations: annotations, hooks: hooks)
            let creating = record.state(status: "creating", pid: pid1.pid)
            if let seccompProfile, seccompProfile.notifies {
                guard let listener else { throw UserError("The container's PID 1 sent no seccomp listener.") }
                try sendSeccompListener(listener, profile: seccompProfile, pid: pid1.pid, state: creating)
            }
            if !hooks.isEmpty { hooksRun(record.state(status: "stopped", pid: 0)) }
            for phase: RuntimeHooks.Phase in [.prestart, .createRuntime, .createContainer] {
                try hooks.run(phase, state: creating, container: .init(pidfd: pid1.pidfd, pid: pid1.pid, cgroup: cgroup.path))
            }
            try record.write(in: directory)
            if let pidFile { try FileSystem.replace(pidFile, contents: "\(pid1.pid)", mode: 0o644) }
        }
    }

    /// Opens the gate: PID 1's open for writing returns, and the byte it writes says it went
    /// through. A PID 1 that died meanwhile (its pidfd readable) cannot be started.
    private static func start(_ record: ContainerRecord, root: String) throws {
        switch record.status(root: root) {
        case .stopped: throw UserError("cannot start a container that has stopped")
        case .running: throw UserError("cannot start an already running container")
        case .paused: throw UserError("cannot start a paused container")
        case .created: break
        }
        let gatePath = ContainerRecord.directory(root: root, id: record.id) + "/" + ContainerRecord.gate
        guard let pidfd = openPID1(record) else { throw UserError("cannot start a container that has stopped") }
        do {
            var container = RuntimeHooks.Container(pidfd: pidfd, pid: record.pid, cgroup: record.cgroup)
            if record.hooks.hooks[.startContainer]?.isEmpty == false {
                let (configuration, confinement) = try containerConfinement(record)
                container.confinement = confinement
                if let identity = configuration.identity { container.identity = (identity.uid, identity.gid, identity.groups) }
            }
            try record.hooks.run(.startContainer, state: record.state(root: root), container: container)
        } catch {
            // runtime-spec: the container is stopped; `delete` removes it.
            _ = nsp_pidfd_send_signal(pidfd.raw, SIGKILL)
            throw error
        }
        let gate = try FileSystem.open(gatePath, O_RDONLY | O_NONBLOCK)
        var fds = [pollfd(fd: gate.raw, events: Int16(POLLIN), revents: 0), pollfd(fd: pidfd.raw, events: Int16(POLLIN), revents: 0)]
        // PID 1 is in open(); its write follows at once.
        let ready = try sys("poll", path: gatePath) { poll(&fds, 2, 10_000) }
        var byte: UInt8 = 0
        guard ready > 0, fds[0].revents & Int16(POLLIN) != 0, read(gate.raw, &byte, 1) == 1 else {
            throw UserError("container \(record.id) did not start: its process ended at the start gate")
        }
        unlink(gatePath)
        try record.hooks.run(.poststart, state: record.state(root: root), container: nil)
    }

    /// Freezes or thaws every process of the machine (cgroup.freeze), and waits (bounded) until
    /// cgroup.events says it is done.
    private static func freeze(_ record: ContainerRecord, _ frozen: Bool) throws {
        try FileSystem.write(frozen ? "1" : "0", to: record.cgroup + "/cgroup.freeze")
        let done = frozen ? "frozen 1" : "frozen 0"
        let deadline = Clock.monotonicNanoseconds() + 5_000_000_000
        while Clock.monotonicNanoseconds() < deadline {
            if ((try? FileSystem.readFile(record.cgroup + "/cgroup.events")) ?? "").split(separator: "\n").contains(Substring(done)) { return }
            usleep(2000)
        }
        throw UserError("container \(record.id) did not \(frozen ? "freeze" : "thaw") within 5 s")
    }

    /// PID 1's pidfd, if PID 1 is the process the record names (not a later one with its PID).
    static func openPID1(_ record: ContainerRecord) -> OwnedFD? {
        let raw = nsp_pidfd_open(record.pid)
        guard raw >= 0 else { return nil }
        let pidfd = OwnedFD(raw)
        guard ProcessStat.read(record.pid)?.startTime == record.startTime else { return nil }
        return pidfd
    }

    /// Kills what is left in the machine's cgroup, removes it and the container's directory.
    /// The record stays while the cgroup does (a process that would not die): a later delete retries.
    private static func delete(_ record: ContainerRecord, root: String) throws {
        MachineCgroup.remove(record.cgroup, kernel: LinuxKernel())
        guard !FileSystem.exists(record.cgroup) else { throw UserError("failed to remove cgroup \(record.cgroup): its processes did not end") }
        removeDirectory(ContainerRecord.directory(root: root, id: record.id))
        try record.hooks.run(.poststop, state: record.state(status: "stopped", pid: 0), container: nil)
    }

    private static func removeDirectory(_ directory: String) {
        for name in [ContainerRecord.stateFile, "." + ContainerRecord.stateFile, ContainerRecord.gate] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    /// The console socket protocol callers implement (go-runc, conmon): one message, the pty's
    /// name, with the master as the one descriptor.
    static func sendConsole(_ master: OwnedFD, over socket: OwnedFD, name socketName: String) throws {
        let number = nsp_pty_number(master.raw)
        try send(number >= 0 ? "/dev/pts/\(number)" : "/dev/console", with: master, over: socket, name: socketName)
    }

    /// The seccomp agent protocol (runtime-spec, config-linux.md): a stream connection to the
    /// profile's listenerPath, one message with the container process state, and the listener as
    /// its one descriptor. A listener that cannot be handed on fails the process's start.
    static func sendSeccompListener(_ listener: OwnedFD, profile: SeccompProfile, pid: Int32, state: JSONValue) throws {
        guard let path = profile.listenerPath else { return }
        try send(profile.listenerMessage(pid: pid, state: state), with: listener, over: try connectSocket(path), name: path)
    }

    private static func send(_ text: String, with descriptor: OwnedFD, over socket: OwnedFD, name socketName: String) throws {
        var fd = descriptor.raw
        try sys("sendmsg", path: socketName) {
            Array(text.utf8).withUnsafeBytes { nsp_send_with_fds(socket.raw, $0.baseAddress, $0.count, &fd, 1) }
        }
    }

    /// One line for the caller: on standard error, and in --log (JSON lines with --log-format json,
    /// as runc writes them: containerd reports the last error's msg).
    private static func log(_ message: String, _ global: RuntimeInvocation.Global, toStandardError: Bool = true) {
        if toStandardError { printError(message) }
        guard let path = global.log else { return }
        let time = Clock.rfc3339Now()
        let line: String
        switch global.logFormat {
        case .json: line = JSONValue.object(["level": .string("error"), "msg": .string(message), "time": .string(time)]).text
        case .text: line = "time=\"\(time)\" level=error msg=\(JSONValue.string(message).text)"
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        try? FileSystem.writeAll(fd: fd, Array((line + "\n").utf8), path: path)
    }
}
