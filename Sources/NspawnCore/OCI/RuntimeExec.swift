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
    struct ExecProcess: Equatable {
        var arguments: [String]
        var environment: [String]
        var workingDirectory: String
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
        var terminal: Bool
        var capabilities: CapabilityPolicy
        var limits: [(resource: Int32, soft: UInt64, hard: UInt64)]

        static func == (a: ExecProcess, b: ExecProcess) -> Bool {
            a.arguments == b.arguments && a.environment == b.environment && a.workingDirectory == b.workingDirectory && a.uid == b.uid && a.gid == b.gid
                && a.groups == b.groups && a.terminal == b.terminal && a.capabilities == b.capabilities
                && a.limits.map { "\($0.resource):\($0.soft):\($0.hard)" } == b.limits.map { "\($0.resource):\($0.soft):\($0.hard)" }
        }
    }

    static func exec(_ request: ExecRequest, root: String) throws -> Int32 {
        let record = try ContainerRecord.read(root: root, id: request.id)
        switch record.status(root: root) {
        case .running, .created: break
        case .paused: throw UserError("cannot exec in a paused container")
        case .stopped: throw UserError("cannot exec in a stopped container")
        }
        // The container's configuration, as create read it: what the process may have at most.
        var options = CommandLineOptions()
        options.settings = "no"
        let (container, _) = try OCIBundle.load(record.bundle, runtime: true).configuration(
            commandLine: options, override: false, environment: Configuration.processEnvironment)
        let (machineCapabilities, seccompPolicy, _) = try MachinePlan.confinement(
            container, userNamespace: container.userNamespace != .no, held: CapabilityPolicy.held())
        let process = try execProcess(request, container: container, machine: machineCapabilities)
        guard process.terminal == (request.consoleSocket != nil) else {
            throw UserError(
                process.terminal ? "process.terminal is true: --console-socket must be given." : "--console-socket given, but the process has no terminal.")
        }
        let confinement = PayloadConfinement(capabilities: process.capabilities, seccomp: try seccompPolicy.map(SeccompFilter.load))

        guard let pid1 = openPID1(record) else { throw UserError("cannot exec in a stopped container") }
        let namespaces = try namespacesToJoin(of: record.pid)
        let cgroup = try FileSystem.open(record.cgroup, O_RDONLY | O_DIRECTORY)
        let console = try request.consoleSocket.map(connect)
        var pipes: [Int32] = [-1, -1, -1, -1]
        try sys("pipe2") { nsp_pipe2(&pipes, O_CLOEXEC) }
        try sys("pipe2") { pipes.withUnsafeMutableBufferPointer { nsp_pipe2($0.baseAddress! + 2, O_CLOEXEC) } }
        // pid: the process's host PID, from the child that forks it; errors: what failed before its
        // exec (closed on exec: end of file with nothing read is success).
        let (pidReader, pidWriter) = (OwnedFD(pipes[0]), OwnedFD(pipes[1]))
        let (errorReader, errorWriter) = (OwnedFD(pipes[2]), OwnedFD(pipes[3]))
        // Waited for here: the process comes to us when the child that forked it ends.
        if !request.detach { _ = nsp_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }

        let joiner = try ChildProcess.clone(namespaces: [], intoCgroup: cgroup.raw, role: "The process joining the container") {
            pidReader.close()
            errorReader.close()
            try sys("setns", path: request.id) { nsp_setns(pid1.raw, Int32(truncatingIfNeeded: namespaces.rawValue)) }
            if namespaces.contains(.user) { try LinuxKernel().becomeRoot() }
            let pid = try sys("fork") { fork() }
            if pid == 0 { start(process, confinement: confinement, console: console, errors: errorWriter) }
            var hostPID = Int32(pid)
            _ = withUnsafeBytes(of: &hostPID) { Glibc.write(pidWriter.raw, $0.baseAddress, 4) }
            _exit(0)
        }
        pidWriter.close()
        errorWriter.close()
        console?.close()
        try joiner.requireCleanExit()
        var pid: Int32 = 0
        guard withUnsafeMutableBytes(of: &pid, { Glibc.read(pidReader.raw, $0.baseAddress, 4) }) == 4 else {
            throw UserError("The process joining the container \(request.id) ended without starting one.")
        }
        var message = [UInt8](repeating: 0, count: 4096)
        let count = read(errorReader.raw, &message, message.count)
        if count > 0 {
            if !request.detach { _ = waitpid(pid, nil, 0) }
            throw UserError(String(decoding: message[0..<count], as: UTF8.self))
        }
        if let pidFile = request.pidFile { try FileSystem.replace(pidFile, contents: "\(pid)", mode: 0o644) }
        guard !request.detach else { return 0 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return shellStatus(status)
    }

    /// The namespaces of PID 1 that are not ours, by their inodes in /proc.
    private static func namespacesToJoin(of pid: Int32) throws -> NamespaceSet {
        let kinds: [(String, NamespaceSet)] = [
            ("user", .user), ("mnt", .mount), ("pid", .pid), ("net", .network), ("ipc", .ipc), ("uts", .uts), ("cgroup", .cgroup),
        ]
        var set: NamespaceSet = []
        for (name, namespace) in kinds {
            let theirs = try FileSystem.stat("/proc/\(pid)/ns/\(name)")
            let ours = try FileSystem.stat("/proc/self/ns/\(name)")
            if theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev { set.insert(namespace) }
        }
        return set
    }

    /// In the machine's namespaces, forked: never returns. What fails before exec is written to
    /// `errors` for exec to report; exec closes it.
    private static func start(_ process: ExecProcess, confinement: PayloadConfinement, console: OwnedFD?, errors: OwnedFD) -> Never {
        var program = ""
        do {
            _ = setsid()
            if let console {
                let master = try FileSystem.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
                let peer = try LinuxKernel().openPTYPeer(master, name: "/dev/ptmx")
                for fd: Int32 in 0...2 { try sys("dup2", path: "/dev/ptmx") { dup2(peer.raw, fd) } }
                try sys("ioctl(TIOCSCTTY)", path: "/dev/ptmx") { ioctl(0, UInt(TIOCSCTTY), 0) }
                let number = nsp_pty_number(master.raw)
                var fd = master.raw
                try sys("sendmsg", path: "console socket") {
                    Array("/dev/pts/\(number)".utf8).withUnsafeBytes { nsp_send_with_fds(console.raw, $0.baseAddress, $0.count, &fd, 1) }
                }
            }
            for limit in process.limits {
                try sys("prlimit", path: "\(limit.resource)") { nsp_prlimit(0, limit.resource, limit.soft, limit.hard) }
            }
            try sys("chdir", path: process.workingDirectory) { chdir(process.workingDirectory) }
            let path = process.environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? Payload.defaultPath
            let candidates = Payload.candidates(for: process.arguments[0], path: path)
            guard let found = candidates.first(where: { access($0, X_OK) == 0 }) else {
                throw UserError("exec: \"\(process.arguments[0])\": executable file not found in $PATH")
            }
            program = found
            // Every descriptor but 0-2 closes here, `errors` too: what fails after is said on the
            // process's own standard error.
            try Payload.confine(confinement)
        } catch {
            _ = Array("\(error)".utf8).withUnsafeBytes { Glibc.write(errors.raw, $0.baseAddress, $0.count) }
            _exit(1)
        }
        do {
            try confinement.capabilities.apply(switchingTo: (process.uid, process.gid, process.groups))
        } catch {
            printError("\(error)")
            _exit(1)
        }
        let error = Payload.execute(program, argv: process.arguments, environment: process.environment)
        printError("exec: \"\(process.arguments[0])\": \(Errno(rawValue: error).message)")
        _exit(127)
    }

    /// The process exec starts: the container's own (its user, environment, working directory,
    /// capabilities) with the command line's changes; or the OCI process object of --process.
    private static func execProcess(_ request: ExecRequest, container c: Configuration, machine: CapabilityPolicy) throws -> ExecProcess {
        var process = ExecProcess(
            arguments: request.arguments, environment: c.environment, workingDirectory: c.workingDirectory ?? "/", uid: c.identity?.uid ?? 0,
            gid: c.identity?.gid ?? 0, groups: c.identity?.groups ?? [], terminal: request.tty, capabilities: machine, limits: [])
        if let file = request.processFile {
            process = try processObject(file, machine: machine)
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
            if let flag = request.noNewPrivileges { process.capabilities.noNewPrivileges = flag }
        }
        guard process.workingDirectory.hasPrefix("/") else { throw UserError("exec: cwd \(process.workingDirectory) must be an absolute path") }
        if !process.environment.contains(where: { $0.hasPrefix("PATH=") }) { process.environment.insert("PATH=\(Payload.defaultPath)", at: 0) }
        return process
    }

    /// The OCI process object (config.md "process") of exec's --process file. Capabilities may be
    /// fewer than the container's, never more.
    private static func processObject(_ path: String, machine: CapabilityPolicy) throws -> ExecProcess {
        let text = try FileSystem.readFile(path)
        let object: JSONValue
        do { object = try JSONValue.parse(Array(text.utf8)) } catch { throw UserError("\(path): not valid JSON: \(error)") }
        func refuse(_ field: String, _ reason: String) -> UserError { UserError("\(path): \(field): \(reason)") }
        func strings(_ field: String) throws -> [String] {
            guard let value = object[field], value != .null else { return [] }
            guard let items = value.array, items.allSatisfy({ $0.string != nil }) else { throw refuse(field, "expected an array of strings.") }
            return items.compactMap(\.string)
        }
        func id(_ value: JSONValue?, _ field: String) throws -> UInt32 {
            guard let value, value != .null else { return 0 }
            guard let number = value.uint64, number < 0xffff_ffff else { throw refuse(field, "expected an ID.") }
            return UInt32(number)
        }
        for field in ["apparmorProfile", "selinuxLabel", "commandLine"]
        where object[field]?.string.map({ !$0.isEmpty }) ?? (object[field] != nil && object[field] != .null) {
            throw refuse(field, "not supported by swift-nspawn.")
        }
        let arguments = try strings("args")
        guard !arguments.isEmpty else { throw refuse("args", "missing or empty.") }
        let user = object["user"]
        var capabilities = machine
        if let sets = object["capabilities"], sets != .null {
            guard let bounding = CapabilitySet.parseOrNil(sets["bounding"]?.array?.compactMap(\.string) ?? []),
                let ambient = CapabilitySet.parseOrNil(sets["ambient"]?.array?.compactMap(\.string) ?? [])
            else { throw refuse("capabilities", "unknown capability.") }
            guard bounding.isSubset(of: machine.bounding) else {
                throw refuse("capabilities.bounding", "\(bounding.subtracting(machine.bounding)) not in the container's bounding set.")
            }
            guard ambient.isSubset(of: bounding) else { throw refuse("capabilities.ambient", "must be part of the bounding set.") }
            (capabilities.bounding, capabilities.ambient) = (bounding, ambient)
        }
        if let flag = object["noNewPrivileges"]?.bool { capabilities.noNewPrivileges = flag }
        var limits: [(resource: Int32, soft: UInt64, hard: UInt64)] = []
        for (index, limit) in (object["rlimits"]?.array ?? []).enumerated() {
            let type = limit["type"]?.string ?? ""
            let name = type.hasPrefix("RLIMIT_") ? String(type.dropFirst(7)) : type
            guard let resource = ResourceLimit.names.first(where: { $0.0 == name })?.1, let soft = limit["soft"]?.uint64, let hard = limit["hard"]?.uint64
            else { throw refuse("rlimits[\(index)]", "expected a known type, soft and hard.") }
            limits.append((Int32(resource), soft, hard))
        }
        return ExecProcess(
            arguments: arguments, environment: try strings("env"), workingDirectory: object["cwd"]?.string ?? "/", uid: try id(user?["uid"], "user.uid"),
            gid: try id(user?["gid"], "user.gid"), groups: try (user?["additionalGids"]?.array ?? []).map { try id($0, "user.additionalGids") },
            terminal: object["terminal"]?.bool ?? false, capabilities: capabilities, limits: limits)
    }

    static func connect(_ path: String) throws -> OwnedFD {
        let socket = OwnedFD(try sys("socket", path: path) { Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw UserError("Console socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        try sys("connect", path: path) {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        return socket
    }
}
