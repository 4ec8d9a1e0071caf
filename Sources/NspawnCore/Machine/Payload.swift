#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import SystemPackage

/// What every process that runs the machine's code is held to: the capability policy, the
/// compiled seccomp filter (nil only with SYSTEMD_SECCOMP=0), and an OCI bundle's seccomp profile.
struct PayloadConfinement {
    var capabilities: CapabilityPolicy
    var seccomp: SeccompFilter?
    /// Installed by `confine` unless whoever confines the process installed it first, to hand its
    /// listener on (the machine's PID 1 and the OCI runtime's exec do).
    var seccompProfile: SeccompFilter?
    /// Descriptors 3, 4, … that the payload gets from whoever started us (the OCI runtime's
    /// create --preserve-fds): this many are kept open.
    var preservedDescriptors: Int32 = 0

    init(capabilities: CapabilityPolicy, seccomp: SeccompFilter?, seccompProfile: SeccompFilter? = nil) {
        self.capabilities = capabilities
        self.seccomp = seccomp
        self.seccompProfile = seccompProfile
    }

    /// From the plan: its policy compiled (or read from the cache).
    init(_ payload: PayloadPlan) throws {
        self.init(
            capabilities: payload.capabilities, seccomp: try payload.seccomp.map(SeccompFilter.load),
            seccompProfile: try payload.seccompProfile.map(SeccompFilter.load))
        preservedDescriptors = payload.preservedDescriptors
    }

    /// Descriptors 3, 4, … that the payload keeps.
    var preserved: [Int32] { Array(3..<(3 + preservedDescriptors)) }

    /// Installs swift-nspawn's filter, then the profile (the kernel applies the stricter answer of
    /// all), and leaves neither for a later call to install again. Returns the profile's listener,
    /// when it has one.
    mutating func installFilters() throws -> OwnedFD? {
        try seccomp?.install()
        seccomp = nil
        defer { seccompProfile = nil }
        return try seccompProfile?.install()
    }
}

/// The last steps inside the machine: session and console, user, environment, exec.
enum Payload {
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    static func start(_ spec: PayloadPlan, confinement: PayloadConfinement, console: OwnedFD?) -> Never {
        _ = setsid()
        if let console {
            for fd: Int32 in 0...2 { _ = dup2(console.raw, fd) }
            console.close()
        }
        if spec.asPID2 {
            // The stub stays the machine's root with its capabilities (it must be able to call
            // reboot(2)); the payload gets a session of its own, the console as its controlling
            // terminal, the user and the capability policy.
            let pid = fork()
            if pid < 0 {
                printError("\(SyscallError.last("fork"))")
                _exit(1)
            }
            if pid > 0 { StubInit.run(payload: pid, confinement: confinement) }
            _ = setsid()
        }
        let environment: [String]
        do {
            // Read once from the machine's own files, before the switch: for the IDs and the environment.
            let user = try spec.user.map(lookUpUser)
            let ids = spec.identity.map { (uid: $0.uid, gid: $0.gid, groups: $0.groups) } ?? user.map(identity)
            try become(spec, confinement: confinement, ids: ids, controllingTerminal: console != nil)
            environment = try Self.environment(spec, user: user ?? spec.identity.map(numericUser))
        } catch {
            printError("\(error)")
            _exit(1)
        }
        if spec.boot { bootInit(arguments: spec.command, environment: environment) }
        exec(spec.command, environment: environment)
    }

    /// For a machine that waits at the OCI runtime's start gate: what exec would fail on (the user,
    /// the command), found now, so that `create` fails, as runc's does, rather than the container
    /// after `start`.
    static func requireRunnable(_ spec: PayloadPlan) throws {
        let user = try spec.user.map(lookUpUser)
        guard !spec.boot, let name = spec.command.first else { return }
        _ = try findProgram(name, environment: try environment(spec, user: user ?? spec.identity.map(numericUser)))
    }

    /// The file exec will run for `name`, in the environment's PATH; runc's words when there is none.
    static func findProgram(_ name: String, environment: [String]) throws(UserError) -> String {
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? defaultPath
        guard let found = candidates(for: name, path: path).first(where: { access($0, X_OK) == 0 }) else {
            throw UserError("exec: \"\(name)\": executable file not found in $PATH")
        }
        return found
    }

    /// Where systemd-nspawn -b looks for init, in this order.
    static let initPaths = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"]

    private static func bootInit(arguments: [String], environment: [String]) -> Never {
        var error: Int32 = ENOENT
        for path in initPaths {
            error = execute(path, argv: [path] + arguments, environment: environment)
        }
        printError("execv(\(initPaths.joined(separator: ", "))) failed: \(Errno(rawValue: error).message)")
        _exit(1)
    }

    /// Console, descriptors, signal mask, seccomp, user and capabilities, working directory of the
    /// payload, in this order: what the system call filter could deny is done before it is installed
    /// (so a --system-call-filter can never leave a descriptor open or a signal blocked), and the
    /// filter is installed while we still have CAP_SYS_ADMIN, before a --user switch drops it.
    private static func become(
        _ spec: PayloadPlan, confinement: PayloadConfinement, ids: (uid: UInt32, gid: UInt32, groups: [UInt32])?, controllingTerminal: Bool
    ) throws {
        if controllingTerminal {
            try sys("ioctl(TIOCSCTTY)", path: "/dev/console") { ioctl(0, UInt(TIOCSCTTY), 0) }
        }
        if let persona = spec.process.personality {
            try sys("personality", path: "PER_LINUX32") { nsp_personality(persona) }
        }
        try confine(confinement)
        try confinement.capabilities.apply(switchingTo: ids)
        // The kernel forgets the parent-death signal when credentials change.
        if spec.diesWithSupervisor { ProcessLifetime.dieWithParent() }
        if let directory = spec.workingDirectory {
            try sys("chdir", path: directory) { chdir(directory) }
        }
    }

    /// What every process that runs the machine's code gets before it does: only descriptors 0-2,
    /// no blocked signals, a session keyring of its own (keys are not namespaced), the seccomp filters.
    /// `keeping`: one more descriptor, close-on-exec, to say what fails before the exec.
    static func confine(_ confinement: PayloadConfinement, keeping kept: Int32? = nil) throws {
        var confinement = confinement
        var keep = confinement.preserved
        if let kept { keep.append(kept) }
        try closeAllDescriptors(except: keep)
        errorCopy = nil
        // Ignored signals survive execve: whoever started us (nohup, a shell's &) must not decide
        // what the machine's processes ignore.
        for signal in 1..<nsp_sigrtmax() + 1 where signal != SIGKILL && signal != SIGSTOP {
            Glibc.signal(signal, SIG_DFL)
        }
        var none = sigset_t()
        sigemptyset(&none)
        try sys("sigprocmask") { sigprocmask(SIG_SETMASK, &none, nil) }
        umask(0o022)
        // Refused only when a filter around us (swift-nspawn nested in a machine) already keeps
        // everything here away from the keyrings.
        if nsp_join_session_keyring() < 0 && errno != EPERM && errno != ENOSYS {
            throw SyscallError.last("keyctl(KEYCTL_JOIN_SESSION_KEYRING)")
        }
        // A listener nobody takes: the calls it would be asked about fail with ENOSYS.
        _ = try confinement.installFilters()
    }

    /// The environment systemd-nspawn gives its payload, then the -E assignments.
    static func environment(_ spec: PayloadPlan, user: PasswdEntry? = nil) throws -> [String] {
        let user = try user ?? spec.user.map(lookUpUser)
        var env = [
            "PATH=\(defaultPath)",
            "container=\(spec.container)",
            "container_uuid=\(spec.machineID.uuidString)",
        ]
        env += spec.hostEnvironment
        env.append("NOTIFY_SOCKET=\(MountPlan.notifySocketPath)")
        if let directory = spec.credentialsDirectory { env.append("CREDENTIALS_DIRECTORY=\(directory)") }
        if let term = spec.term { env.append("TERM=\(term)") }
        env += [
            "HOME=\(user?.home ?? "/root")",
            "USER=\(user?.name ?? "root")",
            "LOGNAME=\(user?.name ?? "root")",
        ]
        if let shell = user?.shell, !shell.isEmpty { env.append("SHELL=\(shell)") }
        // Later assignments win, as in systemd's strv_env_merge().
        for assignment in spec.environment {
            let name = assignment.prefix { $0 != "=" }
            env.removeAll { $0.prefix { $0 != "=" } == name }
            env.append(assignment)
        }
        return env
    }

    static func lookUpUser(_ name: String) throws -> PasswdEntry {
        let passwd = UserDatabase.parsePasswd((try? FileSystem.readFile("/etc/passwd")) ?? "")
        guard let entry = UserDatabase.user(name, in: passwd) else {
            throw UserError("Failed to resolve user \(name): no such user in the machine's /etc/passwd.")
        }
        return entry
    }

    /// A numeric user as the environment names it: its passwd entry's name, home and shell where
    /// the machine has one for the UID, else the number and /.
    static func numericUser(_ identity: NumericIdentity) -> PasswdEntry {
        let passwd = UserDatabase.parsePasswd((try? FileSystem.readFile("/etc/passwd")) ?? "")
        let entry = passwd.first { $0.uid == identity.uid }
        return PasswdEntry(name: entry?.name ?? "\(identity.uid)", uid: identity.uid, gid: identity.gid, home: entry?.home ?? "/", shell: entry?.shell ?? "")
    }

    /// The user's IDs and supplementary groups, from the machine's own passwd and group files.
    private static func identity(_ user: PasswdEntry) -> (uid: UInt32, gid: UInt32, groups: [UInt32]) {
        let groups = UserDatabase.groups(of: user, in: UserDatabase.parseGroup((try? FileSystem.readFile("/etc/group")) ?? ""))
        return (user.uid, user.gid, groups)
    }

    /// The command, looked up in the machine's PATH (the one in its environment, -E included: not
    /// ours), or a login shell when there is none, as systemd-nspawn does.
    static func exec(_ command: [String], environment: [String]) -> Never {
        if command.isEmpty {
            for (path, name) in [("/bin/bash", "-bash"), ("/bin/sh", "-sh")] {
                _ = execute(path, argv: [name], environment: environment)
            }
            printError("execv(/bin/sh) failed: \(Errno(rawValue: errno).message)")
            _exit(1)
        }
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? defaultPath
        var error = ENOENT
        for candidate in candidates(for: command[0], path: path) {
            let failure = execute(candidate, argv: command, environment: environment)
            // As execvp(3): go on past missing files and directories, remember a permission problem.
            if failure == EACCES { error = EACCES } else if failure != ENOENT && failure != ENOTDIR { error = failure; break }
        }
        printError("execv(\(command[0])) failed: \(Errno(rawValue: error).message)")
        _exit(1)
    }

    /// Where a command name is looked for: itself when it has a slash, else each PATH directory.
    static func candidates(for name: String, path: String) -> [String] {
        if name.contains("/") { return [name] }
        return path.split(separator: ":", omittingEmptySubsequences: false).map { $0.isEmpty ? name : "\($0)/\(name)" }
    }

    /// Returns only on failure, with errno.
    static func execute(_ path: String, argv: [String], environment: [String]) -> Int32 {
        withCStringVector(argv) { cArgs in
            withCStringVector(environment) { cEnv in
                _ = execve(path, cArgs, cEnv)
                return errno
            }
        }
    }
}
