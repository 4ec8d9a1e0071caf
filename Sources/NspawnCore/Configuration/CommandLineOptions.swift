import ArgumentParser

/// swift-nspawn's command line, in systemd-nspawn's syntax: options first, then the payload's argv.
/// Parsing only collects strings; `Configuration(options:)` validates them.
public struct CommandLineOptions: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "swift-nspawn",
        abstract: "Spawn a command or OS in a lightweight machine.",
        discussion: "Options come first; the first argument that is not an option starts the command to run (default: a shell). See swift-nspawn(1).",
        version: Version.string,
        helpNames: []
    )

    @Option(name: [.customShort("D"), .customLong("directory")], help: "Root directory of the machine.")
    var directory: String?

    @Option(name: [.customShort("M"), .customLong("machine")], help: "Name of the machine (default: the directory's name).")
    var machine: String?

    @Option(help: "Hostname of the machine (default: its name).")
    var hostname: String?

    @Option(help: "The machine's UUID (used when the tree has no valid /etc/machine-id).")
    var uuid: String?

    @Option(name: [.customShort("E"), .customLong("setenv")], help: ArgumentHelp("Set an environment variable for the command.", valueName: "NAME[=VALUE]"))
    var setenv: [String] = []

    @Option(name: .customLong("chdir"), help: "Working directory of the command, inside the machine.")
    var workingDirectory: String?

    @Option(name: [.customShort("u"), .customLong("user")], help: "Run the command as this user of the machine.")
    var user: String?

    @Flag(name: [.customShort("b"), .customLong("boot")], help: "Boot the tree's init (systemd); the command's arguments go to it.")
    var boot = false

    @Flag(name: .customLong("boot-test"), help: "Boot, wait until the system is up, report its state, power off.")
    var bootTest = false

    @Option(name: .customLong("boot-test-timeout"), help: ArgumentHelp("Seconds --boot-test waits for the system to be up (default 120).", valueName: "SECONDS"))
    var bootTestTimeout: String?

    @Option(name: .customLong("notify-ready"), help: ArgumentHelp("yes: tell the service manager READY=1 when the machine says so; no (default): at exec.", valueName: "BOOL"))
    var notifyReady: String?

    @Flag(name: [.customShort("a"), .customLong("as-pid2")], help: "Run the command as PID 2 under a minimal init.")
    var asPID2 = false

    @Option(name: .customLong("kill-signal"), help: "Signal sent to PID 1 when swift-nspawn is asked to stop.")
    var killSignal: String?

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Do not show status messages.")
    var quiet = false

    @Option(name: .customLong("private-users"), help: ArgumentHelp("User namespace: no, yes, pick (default), identity or BASE[:RANGE].", valueName: "MODE"))
    var privateUsers: String?

    @Flag(name: .customShort("U"), help: "Same as --private-users=pick --private-users-ownership=auto.")
    var pickUsers = false

    @Option(name: .customLong("private-users-ownership"), help: ArgumentHelp("How the tree's owners are shown: map (default), auto or off.", valueName: "MODE"))
    var privateUsersOwnership: String?

    @Flag(inversion: .prefixedNo, help: "Private network namespace with only lo (default); --no-private-network shares the host's.")
    var privateNetwork = true

    @Option(name: .customLong("bind"), help: ArgumentHelp("Bind a host path into the machine.", valueName: "SRC[:DST[:OPTIONS]]"))
    var binds: [String] = []

    @Option(name: .customLong("bind-ro"), help: ArgumentHelp("Bind a host path into the machine, read-only.", valueName: "SRC[:DST[:OPTIONS]]"))
    var readOnlyBinds: [String] = []

    @Option(name: .customLong("tmpfs"), help: ArgumentHelp("Mount an empty tmpfs in the machine.", valueName: "PATH[:OPTIONS]"))
    var tmpfs: [String] = []

    @Flag(name: .customLong("read-only"), help: "Mount the root directory read-only.")
    var readOnly = false

    @Option(name: .customLong("capability"), help: ArgumentHelp("Keep these capabilities beyond the default set (\"all\", \"help\").", valueName: "CAP[,CAP…]"))
    var capabilities: [String] = []

    @Option(name: .customLong("drop-capability"), help: ArgumentHelp("Drop these capabilities from the default set (\"all\", \"help\").", valueName: "CAP[,CAP…]"))
    var droppedCapabilities: [String] = []

    @Option(name: .customLong("ambient-capability"), help: ArgumentHelp("Pass these capabilities to the command as ambient ones (\"help\").", valueName: "CAP[,CAP…]"))
    var ambientCapabilities: [String] = []

    @Option(name: .customLong("system-call-filter"), help: ArgumentHelp("Allow these system calls or @groups too; with a leading ~, deny them (\"help\").", valueName: "LIST"))
    var systemCallFilters: [String] = []

    @Option(name: .customLong("nested-user-namespaces"), help: ArgumentHelp("Whether the machine may make user namespaces of its own (default: yes).", valueName: "BOOL"))
    var nestedUserNamespaces: String?

    @Option(name: .customLong("no-new-privileges"), help: ArgumentHelp("Set the no_new_privs flag for the command (default: no).", valueName: "BOOL"))
    var noNewPrivileges: String?

    @Option(help: ArgumentHelp("Register with systemd-machined: yes, no or auto.", valueName: "MODE"))
    var register: String?

    @Flag(name: .customLong("keep-unit"), help: "Use the unit swift-nspawn runs in instead of a new scope.")
    var keepUnit = false

    @Option(help: ArgumentHelp("Console: interactive, read-only, passive, pipe or autopipe.", valueName: "MODE"))
    var console: String?

    @Flag(name: [.customShort("P"), .customLong("pipe")], help: "Same as --console=pipe.")
    var pipe = false

    @Flag(name: [.customShort("h"), .customLong("help")], help: "Show this help.")
    var help = false

    @Flag(name: .customLong("version"), help: "Show the version.")
    var showVersion = false

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command to run and its arguments.", valueName: "COMMAND"))
    var command: [String] = []

    public init() {}

    /// ArgumentParser's passthrough capture swallows -h and --help into the payload; systemd-nspawn
    /// shows help for them when they stand where an option may. (Validation may run more than once,
    /// so it only reads.)
    public func validate() throws {
        if help || command.first == "-h" || command.first == "--help" { throw CleanExit.helpRequest(self) }
        if showVersion { throw CleanExit.message(Version.string) }
    }

    /// The payload's argv. The capture keeps a leading `--` and takes unknown options as the payload;
    /// systemd-nspawn drops the former and rejects the latter.
    func payload() throws(UserError) -> [String] {
        guard let first = command.first else { return [] }
        if first == "--" { return Array(command.dropFirst()) }
        if first.hasPrefix("-") && first.count > 1 { throw UserError("Unknown option \(first).") }
        return command
    }

    public func run() throws {}
}

public enum Version {
    public static let string = "swift-nspawn 0.1.0"
}
