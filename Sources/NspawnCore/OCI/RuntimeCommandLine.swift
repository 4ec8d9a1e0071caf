#if canImport(Glibc)
    import Glibc
#endif

/// The OCI runtime command line that runc made standard, as containerd, conmon and Podman call it
/// (swift-nspawn-runc; reference: oci-runtime-and-criu.md §a): global flags, then a command, its
/// flags, then its arguments. As runc's own parser (Go's flag package through urfave/cli): a flag
/// is -name or --name, its value after = or as the next argument, a boolean may say =true or
/// =false, and a command's flags end at its first argument or at --.
public struct RuntimeInvocation: Equatable, Sendable {
    public struct Global: Equatable, Sendable {
        /// Where the containers' states live (containerd: /run/containerd/runc/NAMESPACE).
        public var root = "/run/swift-nspawn-runc"
        public var log: String?
        public var logFormat = LogFormat.text
        public var systemdCgroup = false
        public var debug = false
    }

    public enum LogFormat: String, Equatable, Sendable {
        case text, json
    }

    public enum Command: Equatable, Sendable {
        case create(id: String, bundle: String, pidFile: String?, consoleSocket: String?, preserveFDs: Int)
        case start(id: String)
        case state(id: String)
        case kill(id: String, signal: Int32, all: Bool)
        case delete(id: String, force: Bool)
        case pause(id: String)
        case resume(id: String)
        case ps(id: String, json: Bool)
        case exec(ExecRequest)
        /// The resources' file, or - for standard input.
        case update(id: String, resources: String)
        case features
        /// checkpoint and restore: Debian 12's criu cannot run on this kernel, and swift-nspawn has no
        /// CRIU driver; refused as such (Podman asks `checkpoint --help` whether a runtime can).
        case unsupported(String)
        case version
        case help
    }

    public var global: Global
    public var command: Command

    public static let name = "swift-nspawn-runc"
    /// The OCI runtime specification's version this runtime follows.
    public static let specVersion = "1.2.0"

    public static let usage = """
        Usage: \(name) [GLOBAL OPTIONS] COMMAND [OPTIONS] ID [ARGUMENTS]

        Runs OCI bundles as swift-nspawn machines, driven as runc is (containerd, Podman).

        Commands:
          create   --bundle DIR [--pid-file FILE] [--console-socket SOCKET] [--preserve-fds N] ID
                   Make the container; its process waits for start.
          start    ID   Let the created container's process run.
          state    ID   Print the container's state as JSON.
          kill     [--all] ID [SIGNAL]   Send a signal (default SIGTERM), by number or name.
          delete   [--force] ID   Remove a stopped container (--force: kill it first).
          pause    ID   Freeze every process of the container.
          resume   ID   Thaw them.
          ps       [--format table|json] ID   List the container's processes.
          exec     [--process FILE | OPTIONS] ID [COMMAND [ARGS...]]
                   Run a process in the container: --detach, --pid-file FILE,
                   --console-socket SOCKET, -t, -e NAME=VALUE, -u UID[:GID], --cwd DIR, --cap CAP,
                   --preserve-fds N.
          update   --resources FILE|- ID   Change the cgroup's limits (a LinuxResources object).
          features      Print what this runtime supports, as JSON.

        Global options:
          --root DIR            Where states are kept (default /run/swift-nspawn-runc)
          --log FILE            Where errors are logged (default: standard error)
          --log-format FORMAT   text or json
          --systemd-cgroup      Let systemd make the cgroup: a scope, cgroupsPath being slice:prefix:name
          --debug, --rootless V, --criu PATH
                                Accepted; change nothing
          -h, --help            Show this help
          -v, --version         Show the version
        """

    /// The flags of each command: name (and one-letter alias), and whether it takes a value.
    private struct Flag {
        var names: [String]
        var takesValue: Bool
    }

    private static let commandFlags: [String: [Flag]] = [
        "create": [
            Flag(names: ["bundle", "b"], takesValue: true), Flag(names: ["pid-file"], takesValue: true),
            Flag(names: ["console-socket"], takesValue: true), Flag(names: ["preserve-fds"], takesValue: true),
            Flag(names: ["no-pivot"], takesValue: false), Flag(names: ["no-new-keyring"], takesValue: false),
        ],
        "start": [], "state": [],
        "kill": [Flag(names: ["all", "a"], takesValue: false)],
        "delete": [Flag(names: ["force", "f"], takesValue: false)],
        "pause": [], "resume": [], "ps": [Flag(names: ["format", "f"], takesValue: true)], "features": [],
        "update": [Flag(names: ["resources", "r"], takesValue: true)],
        "exec": [
            Flag(names: ["process", "p"], takesValue: true), Flag(names: ["detach", "d"], takesValue: false), Flag(names: ["pid-file"], takesValue: true),
            Flag(names: ["console-socket"], takesValue: true), Flag(names: ["tty", "t"], takesValue: false), Flag(names: ["env", "e"], takesValue: true),
            Flag(names: ["user", "u"], takesValue: true), Flag(names: ["cwd"], takesValue: true), Flag(names: ["cap", "c"], takesValue: true),
            Flag(names: ["preserve-fds"], takesValue: true), Flag(names: ["no-new-privs"], takesValue: false),
        ],
        "checkpoint": [], "restore": [],
    ]

    private static let globalFlags = [
        Flag(names: ["root"], takesValue: true), Flag(names: ["log"], takesValue: true), Flag(names: ["log-format"], takesValue: true),
        Flag(names: ["systemd-cgroup"], takesValue: false), Flag(names: ["debug"], takesValue: false), Flag(names: ["rootless"], takesValue: true),
        Flag(names: ["criu"], takesValue: true), Flag(names: ["help", "h"], takesValue: false), Flag(names: ["version", "v"], takesValue: false),
    ]

    /// The global options are kept even when the rest is refused, so the error reaches the log asked for.
    public enum Parsed: Equatable, Sendable {
        case run(RuntimeInvocation)
        case refused(Global, String)
    }

    public static func parse(_ arguments: [String]) -> Parsed {
        var global = Global()
        var rest = arguments[...]
        let globals: Values
        do throws(UserError) {
            globals = try flags(&rest, known: globalFlags)
            if let root = globals["root"] {
                guard root.hasPrefix("/") else { throw UserError("--root must be an absolute path: \(root)") }
                global.root = root
            }
            global.log = globals["log"]
            if let format = globals["log-format"] {
                guard let parsed = LogFormat(rawValue: format) else { throw UserError("invalid log-format: \(format)") }
                global.logFormat = parsed
            }
            global.systemdCgroup = try boolean(globals["systemd-cgroup"], "systemd-cgroup") ?? false
            global.debug = try boolean(globals["debug"], "debug") ?? false
        } catch {
            return .refused(global, error.description)
        }
        do throws(UserError) {
            if try boolean(globals["help"], "help") == true { return .run(RuntimeInvocation(global: global, command: .help)) }
            if try boolean(globals["version"], "version") == true { return .run(RuntimeInvocation(global: global, command: .version)) }
            guard let name = rest.popFirst() else { return .run(RuntimeInvocation(global: global, command: .help)) }
            if name == "help" { return .run(RuntimeInvocation(global: global, command: .help)) }
            if name == "version" { return .run(RuntimeInvocation(global: global, command: .version)) }
            guard let known = commandFlags[name] else { throw UserError("No help topic for '\(name)'") }
            let values = try flags(&rest, known: known)
            return .run(RuntimeInvocation(global: global, command: try command(name, values, Array(rest))))
        } catch {
            return .refused(global, error.description)
        }
    }

    private static func command(_ name: String, _ values: Values, _ arguments: [String]) throws(UserError) -> Command {
        func id(count: ClosedRange<Int> = 1...1) throws(UserError) -> String {
            guard count.contains(arguments.count) else {
                let wanted = count.count == 1 ? "exactly \(count.lowerBound)" : "\(count.lowerBound) to \(count.upperBound)"
                throw UserError("\"\(name)\" requires \(wanted) argument(s)")
            }
            return try validID(arguments[0])
        }
        switch name {
        case "create":
            let identifier = try id()
            var preserve = 0
            if let text = values["preserve-fds"] {
                guard let number = Int(text), number >= 0, number < 1 << 20 else { throw UserError("invalid value \"\(text)\" for flag -preserve-fds") }
                preserve = number
            }
            return .create(
                id: identifier, bundle: values["bundle"] ?? ".", pidFile: values["pid-file"], consoleSocket: values["console-socket"],
                preserveFDs: preserve)
        case "start": return .start(id: try id())
        case "state": return .state(id: try id())
        case "kill":
            let identifier = try id(count: 1...2)
            let signal = arguments.count == 2 ? try parseSignal(arguments[1]) : SIGTERM
            return .kill(id: identifier, signal: signal, all: try boolean(values["all"], "all") ?? false)
        case "delete": return .delete(id: try id(), force: try boolean(values["force"], "force") ?? false)
        case "pause": return .pause(id: try id())
        case "resume": return .resume(id: try id())
        case "ps":
            let format = values["format"] ?? "table"
            guard format == "table" || format == "json" else { throw UserError("invalid format option: \(format)") }
            return .ps(id: try id(), json: format == "json")
        case "exec":
            guard let first = arguments.first else { throw UserError("\"exec\" requires a minimum of 1 argument(s)") }
            var request = ExecRequest(id: try validID(first))
            request.processFile = values["process"]
            request.arguments = Array(arguments.dropFirst())
            guard (request.processFile == nil) != request.arguments.isEmpty else {
                throw UserError(request.processFile == nil ? "exec: a command is needed, or --process" : "exec: --process and a command may not be combined")
            }
            request.detach = try boolean(values["detach"], "detach") ?? false
            request.pidFile = values["pid-file"]
            request.consoleSocket = values["console-socket"]
            request.tty = try boolean(values["tty"], "tty") ?? false
            request.environment = values.all["env"] ?? []
            request.user = values["user"]
            request.workingDirectory = values["cwd"]
            request.capabilities = values.all["cap"] ?? []
            request.noNewPrivileges = try boolean(values["no-new-privs"], "no-new-privs")
            if let text = values["preserve-fds"] {
                guard let number = Int(text), number >= 0, number < 1 << 20 else { throw UserError("invalid value \"\(text)\" for flag -preserve-fds") }
                request.preserveFDs = number
            }
            return .exec(request)
        case "update":
            guard let resources = values["resources"] else { throw UserError("update: --resources FILE (or - for standard input) is needed") }
            return .update(id: try id(), resources: resources)
        case "features":
            guard arguments.isEmpty else { throw UserError("\"features\" requires exactly 0 argument(s)") }
            return .features
        default: return .unsupported(name)
        }
    }

    /// As runc: letters, digits, _ + - and ., and not . or .. (it names a directory under --root).
    static func validID(_ id: String) throws(UserError) -> String {
        let allowed = id.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_+-.".unicodeScalars.contains($0)
        }
        guard !id.isEmpty, allowed, id != ".", id != ".." else { throw UserError("invalid id format: \(id)") }
        return id
    }

    /// A number, or a name with or without SIG (TERM, SIGTERM, term), as runc takes it.
    static func parseSignal(_ text: String) throws(UserError) -> Int32 {
        guard let number = SignalName.parse(text.uppercased()) else { throw UserError("unknown signal \"\(text)\"") }
        return number
    }

    private static func boolean(_ value: String?, _ name: String) throws(UserError) -> Bool? {
        guard let value else { return nil }
        switch value {
        case "", "true", "1", "t", "T", "TRUE", "True": return true
        case "false", "0", "f", "F", "FALSE", "False": return false
        default: throw UserError("invalid boolean value \"\(value)\" for -\(name)")
        }
    }

    /// Each flag's values, in order (-e and --cap may be given more than once); one names the last.
    private struct Values {
        var all: [String: [String]] = [:]
        subscript(_ name: String) -> String? { all[name]?.last }
    }

    /// Takes the flags off the front of `rest`: a boolean's value is "" unless given after =.
    private static func flags(_ rest: inout ArraySlice<String>, known: [Flag]) throws(UserError) -> Values {
        var values = Values()
        while let argument = rest.first, argument.hasPrefix("-"), argument != "-" {
            rest.removeFirst()
            if argument == "--" { break }
            let body = argument.hasPrefix("--") ? argument.dropFirst(2) : argument.dropFirst()
            let name = String(body.prefix { $0 != "=" })
            let inline = body.contains("=") ? String(body.drop { $0 != "=" }.dropFirst()) : nil
            guard let flag = known.first(where: { $0.names.contains(name) }) else { throw UserError("flag provided but not defined: -\(name)") }
            let value: String
            if flag.takesValue {
                if let inline {
                    value = inline
                } else {
                    guard let next = rest.popFirst() else { throw UserError("flag needs an argument: -\(name)") }
                    value = next
                }
            } else {
                value = inline ?? ""
            }
            values.all[flag.names[0], default: []].append(value)
        }
        return values
    }
}

/// `exec`'s request: a process (from --process's JSON, or the command line) for a running container.
public struct ExecRequest: Equatable, Sendable {
    public var id: String
    public var processFile: String?
    public var arguments: [String] = []
    public var detach = false
    public var pidFile: String?
    public var consoleSocket: String?
    public var tty = false
    public var environment: [String] = []
    public var user: String?
    public var workingDirectory: String?
    public var capabilities: [String] = []
    public var noNewPrivileges: Bool?
    /// Descriptors 3, 4, … of ours that the process gets.
    public var preserveFDs = 0

    init(id: String) { self.id = id }
}
