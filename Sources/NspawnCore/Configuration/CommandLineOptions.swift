/// swift-nspawn's command line as systemd-nspawn spells it: options first, then the payload's argv.
/// These are the raw strings; `Configuration(options:)` validates them. Every option is one row of
/// `OptionTable.options`, from which both the parser and --help are made.
public struct CommandLineOptions: Equatable, Sendable {
    var directory: String?
    var image: String?
    var settings: String?
    var ociBundle: String?
    var imagePolicy: String?
    var machine: String?
    var hostname: String?
    var uuid: String?
    var setenv: [String] = []
    var workingDirectory: String?
    var pivotRoot: String?
    var user: String?
    var boot = false
    var bootTest = false
    var bootTestTimeout: String?
    var notifyReady: String?
    var asPID2 = false
    var killSignal: String?
    var quiet = false
    var privateUsers: String?
    var pickUsers = false
    var privateUsersOwnership: String?
    var privateNetworkGiven = false
    var noPrivateNetwork = false
    var networkVeth = false
    var networkVethExtras: [String] = []
    var networkBridge: String?
    var networkZone: String?
    var networkInterfaces: [String] = []
    var networkMacvlans: [String] = []
    var networkIpvlans: [String] = []
    var networkNamespacePath: String?
    var ports: [String] = []
    var binds: [String] = []
    var readOnlyBinds: [String] = []
    var tmpfs: [String] = []
    var overlays: [String] = []
    var readOnlyOverlays: [String] = []
    var inaccessible: [String] = []
    var bindUsers: [String] = []
    var readOnly = false
    var ephemeral = false
    var volatile: String?
    var template: String?
    var capabilities: [String] = []
    var droppedCapabilities: [String] = []
    var ambientCapabilities: [String] = []
    var systemCallFilters: [String] = []
    var nestedUserNamespaces: String?
    var nesting: String?
    var suppressSync: String?
    var noNewPrivileges: String?
    var register: String?
    var keepUnit = false
    var slice: String?
    var properties: [String] = []
    var console: String?
    var pipe = false
    var noPager = false
    var oomScoreAdjust: String?
    var resourceLimits: [String] = []
    var cpuAffinity: String?
    var personality: String?
    var setCredentials: [String] = []
    var linkJournal: String?
    var timezone: String?
    var resolvConf: String?
    var linkJournalTryGuest = false
    var loadCredentials: [String] = []
    var help = false
    var showVersion = false
    /// Set by an OCI bundle only (no option): /proc/sys read-only even where the network namespace
    /// is the machine's own; /sys/fs/cgroup read-only.
    var procSysReadOnly = false
    var cgroupReadOnly = false
    /// An OCI bundle's process.user: "UID:GID:GROUP,GROUP".
    var identity: String?
    /// The OCI runtime's linux.cgroupsPath.
    var cgroupPath: String?
    /// An OCI bundle's linux.sysctl: KEY=VALUE lines.
    var sysctls: String?
    /// An OCI bundle's domainname.
    var domainname: String?
    /// An OCI bundle's linux.devices: DeviceNode lines.
    var devices: String?
    /// An OCI bundle's time namespace: its offsets, as /proc/PID/timens_offsets takes them.
    var timeNamespace: String?
    /// An OCI bundle's PID, IPC and UTS namespaces by path: KIND:PATH lines.
    var joinedNamespaces: String?
    /// An OCI bundle's rootfsPropagation: slave, private or unbindable.
    var rootPropagation: String?
    /// An OCI bundle's linux.seccomp, as JSON.
    var seccompProfile: String?
    /// An OCI bundle's process.consoleSize: ROWSxCOLUMNS.
    var consoleSize: String?
    /// The payload's argv: everything from the first argument that is not an option, or after `--`.
    var command: [String] = []

    public init() {}
}

/// One option: its names, what it stores, and its line in --help.
/// @unchecked: key paths are immutable values; the table is built once and never changed.
/// What it stores is made when it is asked for: a key path is made at run time, and a start asks
/// for the few options it was given, not for all of them (bench/startup).
struct OptionSpec: @unchecked Sendable {
    enum Store {
        case flag(WritableKeyPath<CommandLineOptions, Bool>, value: Bool)
        case value(WritableKeyPath<CommandLineOptions, String?>)
        case list(WritableKeyPath<CommandLineOptions, [String]>)
        /// A long option whose value is optional and only ever inline (--volatile[=MODE]):
        /// `absent` when given bare.
        case optionalValue(WritableKeyPath<CommandLineOptions, String?>, absent: String)
    }

    var long: String?
    var short: Character?
    private let makeStore: () -> Store
    var store: Store { makeStore() }
    /// The placeholder in --help for options that take a value.
    var valueName: String?
    var help: String

    init(long: String?, short: Character? = nil, store: @autoclosure @escaping () -> Store, valueName: String? = nil, help: String) {
        self.long = long
        self.short = short
        self.makeStore = store
        self.valueName = valueName
        self.help = help
    }

    var takesValue: Bool {
        switch store {
        case .flag, .optionalValue: false
        case .value, .list: true
        }
    }
}

enum OptionTable {
    /// In the order --help shows them, grouped as systemd-nspawn's --help groups them.
    static let options: [(group: String, options: [OptionSpec])] = [
        (
            "",
            [
                OptionSpec(long: "help", short: "h", store: .flag(\.help, value: true), help: "Show this help"),
                OptionSpec(long: "version", store: .flag(\.showVersion, value: true), help: "Print the version"),
                OptionSpec(long: "no-pager", store: .flag(\.noPager, value: true), help: "Do not pipe output into a pager (there is none)"),
                OptionSpec(long: "quiet", short: "q", store: .flag(\.quiet, value: true), help: "Do not show status information"),
                OptionSpec(
                    long: "settings", store: .value(\.settings), valueName: "MODE", help: "Read the machine's .nspawn file: yes, no, override or trusted"),
            ]
        ),
        (
            "Image",
            [
                OptionSpec(long: "directory", short: "D", store: .value(\.directory), valueName: "PATH", help: "Root directory for the machine"),
                OptionSpec(
                    long: "image", short: "i", store: .value(\.image), valueName: "PATH", help: "Disk image for the machine (GPT, MBR or a file system)"),
                OptionSpec(
                    long: "image-policy", store: .value(\.imagePolicy), valueName: "POLICY", help: "Which partitions of the image to use, and how protected"),
                OptionSpec(
                    long: "oci-bundle", store: .value(\.ociBundle), valueName: "PATH", help: "OCI bundle to run: its config.json and root file system"),
                OptionSpec(long: "read-only", store: .flag(\.readOnly, value: true), help: "Mount the root directory read-only"),
                OptionSpec(
                    long: "ephemeral", short: "x", store: .flag(\.ephemeral, value: true),
                    help: "Run on a throw-away overlay of the tree; the tree is never written"),
                OptionSpec(
                    long: "template", store: .value(\.template), valueName: "PATH", help: "Make the -D tree as a copy of this one where it does not exist"),
                OptionSpec(
                    long: "volatile", store: .optionalValue(\.volatile, absent: "yes"), valueName: "[=MODE]",
                    help: "Throw-away root or /var: no, yes, state or overlay"),
                OptionSpec(
                    long: "pivot-root", store: .value(\.pivotRoot), valueName: "PATH[:PATH]",
                    help: "The tree's directory to make the root, and where the tree then shows"),
            ]
        ),
        (
            "Execution",
            [
                OptionSpec(long: "boot", short: "b", store: .flag(\.boot, value: true), help: "Boot up full system (arguments go to init)"),
                OptionSpec(long: "boot-test", store: .flag(\.bootTest, value: true), help: "Boot, wait for the system to be up, report its state, power off"),
                OptionSpec(
                    long: "boot-test-timeout", store: .value(\.bootTestTimeout), valueName: "SECONDS", help: "How long --boot-test waits (default: 120)"),
                OptionSpec(long: "as-pid2", short: "a", store: .flag(\.asPID2, value: true), help: "Run the command as PID 2 under a minimal init"),
                OptionSpec(long: "chdir", store: .value(\.workingDirectory), valueName: "PATH", help: "Working directory of the command"),
                OptionSpec(long: "setenv", short: "E", store: .list(\.setenv), valueName: "NAME[=VALUE]", help: "Pass an environment variable to PID 1"),
                OptionSpec(long: "user", short: "u", store: .value(\.user), valueName: "USER", help: "Run the command as this user of the machine"),
                OptionSpec(long: "kill-signal", store: .value(\.killSignal), valueName: "SIGNAL", help: "Signal sent to PID 1 when asked to stop"),
                OptionSpec(long: "notify-ready", store: .value(\.notifyReady), valueName: "BOOL", help: "Say READY=1 when the machine does, not at exec"),
                OptionSpec(long: "suppress-sync", store: .value(\.suppressSync), valueName: "BOOL", help: "Make fsync(), sync() and the like no-ops"),
            ]
        ),
        (
            "System identity",
            [
                OptionSpec(long: "machine", short: "M", store: .value(\.machine), valueName: "NAME", help: "Name of the machine (default: the directory's)"),
                OptionSpec(long: "hostname", store: .value(\.hostname), valueName: "NAME", help: "Hostname of the machine (default: its name)"),
                OptionSpec(long: "uuid", store: .value(\.uuid), valueName: "UUID", help: "Machine UUID, when the tree has no /etc/machine-id"),
            ]
        ),
        (
            "Properties",
            [

                OptionSpec(
                    long: "slice", short: "S", store: .value(\.slice), valueName: "SLICE", help: "Slice of the machine's scope (default: machine.slice)"),
                OptionSpec(
                    long: "property", store: .list(\.properties), valueName: "NAME=VALUE", help: "Resource setting of the machine's cgroup (MemoryMax=…)"),
                OptionSpec(long: "register", store: .value(\.register), valueName: "MODE", help: "Register with systemd-machined: auto (default), yes or no"),
                OptionSpec(long: "keep-unit", store: .flag(\.keepUnit, value: true), help: "Stay in the unit we run in; a reboot exits 133"),
            ]
        ),
        (
            "User namespacing",
            [
                OptionSpec(long: "private-users", store: .value(\.privateUsers), valueName: "MODE", help: "pick (default), no, yes, identity or BASE[:RANGE]"),
                OptionSpec(
                    long: "private-users-ownership", store: .value(\.privateUsersOwnership), valueName: "MODE",
                    help: "Show the tree's owners: map (default), auto or off"),
                OptionSpec(
                    long: "nested-user-namespaces", store: .value(\.nestedUserNamespaces), valueName: "BOOL",
                    help: "May the machine make user namespaces (default: yes)"),
                OptionSpec(
                    long: "nesting", store: .value(\.nesting), valueName: "BOOL",
                    help: "Let the machine run containers: /proc without masks (default: no)"),
                OptionSpec(long: nil, short: "U", store: .flag(\.pickUsers, value: true), help: "Same as --private-users=pick --private-users-ownership=auto"),
            ]
        ),
        (
            "Networking",
            [
                OptionSpec(
                    long: "private-network", store: .flag(\.privateNetworkGiven, value: true), help: "Own network namespace (default; only lo without links)"),
                OptionSpec(long: "no-private-network", store: .flag(\.noPrivateNetwork, value: true), help: "Share the host's network namespace"),
                OptionSpec(
                    long: "network-namespace-path", store: .value(\.networkNamespacePath), valueName: "PATH", help: "Join this network namespace instead"),
                OptionSpec(
                    long: "network-veth", short: "n", store: .flag(\.networkVeth, value: true),
                    help: "veth ve-NAME to host0, with addresses, DHCP and NAT"),
                OptionSpec(
                    long: "network-veth-extra", store: .list(\.networkVethExtras), valueName: "HOST[:MACHINE]", help: "One more veth between host and machine"),
                OptionSpec(
                    long: "network-bridge", store: .value(\.networkBridge), valueName: "BRIDGE", help: "Add the machine's veth (vb-NAME) to this bridge"),
                OptionSpec(
                    long: "network-zone", store: .value(\.networkZone), valueName: "NAME", help: "Add the machine's veth to the zone's bridge vz-NAME"),
                OptionSpec(
                    long: "network-interface", store: .list(\.networkInterfaces), valueName: "IF[:NAME]", help: "Move this host interface into the machine"),
                OptionSpec(
                    long: "network-macvlan", store: .list(\.networkMacvlans), valueName: "IF[:NAME]", help: "A macvlan on this host interface, in the machine"),
                OptionSpec(
                    long: "network-ipvlan", store: .list(\.networkIpvlans), valueName: "IF[:NAME]", help: "An ipvlan on this host interface, in the machine"),
                OptionSpec(
                    long: "port", short: "p", store: .list(\.ports), valueName: "[PROTO:]HOST[:MACHINE]", help: "Forward this host port to the machine"),
            ]
        ),
        (
            "Security",
            [
                OptionSpec(long: "capability", store: .list(\.capabilities), valueName: "CAP,…", help: "Keep these capabilities too (all, help)"),
                OptionSpec(long: "drop-capability", store: .list(\.droppedCapabilities), valueName: "CAP,…", help: "Drop these capabilities (all, help)"),
                OptionSpec(
                    long: "ambient-capability", store: .list(\.ambientCapabilities), valueName: "CAP,…", help: "Give the command these as ambient capabilities"),
                OptionSpec(long: "no-new-privileges", store: .value(\.noNewPrivileges), valueName: "BOOL", help: "Set the no_new_privs flag for the command"),
                OptionSpec(
                    long: "system-call-filter", store: .list(\.systemCallFilters), valueName: "LIST", help: "Allow (or with ~, deny) system calls and @groups"),
            ]
        ),
        (
            "Resources",
            [
                OptionSpec(long: "rlimit", store: .list(\.resourceLimits), valueName: "LIMIT=SOFT[:HARD]", help: "Resource limit of the machine's PID 1"),
                OptionSpec(long: "oom-score-adjust", store: .value(\.oomScoreAdjust), valueName: "VALUE", help: "OOM score adjustment of the machine's PID 1"),
                OptionSpec(long: "cpu-affinity", store: .value(\.cpuAffinity), valueName: "CPUS", help: "CPUs the machine's PID 1 may run on (0-3,6)"),
                OptionSpec(long: "personality", store: .value(\.personality), valueName: "ARCH", help: "Architecture uname reports: x86 or x86-64"),
            ]
        ),
        (
            "Integration",
            [
                OptionSpec(
                    long: "resolv-conf", store: .value(\.resolvConf), valueName: "MODE",
                    help: "The machine's /etc/resolv.conf: off, copy-*, replace-*, bind-*, delete, auto"),
                OptionSpec(
                    long: "timezone", store: .value(\.timezone), valueName: "MODE",
                    help: "The machine's /etc/localtime: off, copy, bind, symlink, delete, auto"),
                OptionSpec(
                    long: "link-journal", store: .value(\.linkJournal), valueName: "MODE",
                    help: "Link the machine's journal: no, auto, host, guest, try-host, try-guest"),
                OptionSpec(long: nil, short: "j", store: .flag(\.linkJournalTryGuest, value: true), help: "Same as --link-journal=try-guest"),
            ]
        ),
        (
            "Mounts",
            [
                OptionSpec(long: "bind", store: .list(\.binds), valueName: "SRC[:DST[:OPTS]]", help: "Bind a host path into the machine"),
                OptionSpec(long: "bind-ro", store: .list(\.readOnlyBinds), valueName: "SRC[:DST[:OPTS]]", help: "Bind a host path into the machine, read-only"),
                OptionSpec(long: "inaccessible", store: .list(\.inaccessible), valueName: "PATH", help: "Cover a path so the machine cannot reach it"),
                OptionSpec(
                    long: "overlay", store: .list(\.overlays), valueName: "PATH[:PATH…]:PATH", help: "Overlay these host directories at the last path"),
                OptionSpec(
                    long: "overlay-ro", store: .list(\.readOnlyOverlays), valueName: "PATH[:PATH…]:PATH", help: "A read-only overlay, likewise"),
                OptionSpec(long: "tmpfs", store: .list(\.tmpfs), valueName: "PATH[:OPTS]", help: "Mount an empty tmpfs in the machine"),
                OptionSpec(long: "bind-user", store: .list(\.bindUsers), valueName: "NAME", help: "Bind a host user and their home into the machine"),
            ]
        ),
        (
            "Input/Output",
            [
                OptionSpec(long: "console", store: .value(\.console), valueName: "MODE", help: "interactive, read-only, passive, pipe or autopipe"),
                OptionSpec(long: "pipe", short: "P", store: .flag(\.pipe, value: true), help: "Same as --console=pipe"),
            ]
        ),
        (
            "Credentials",
            [
                OptionSpec(long: "set-credential", store: .list(\.setCredentials), valueName: "ID:VALUE", help: "Pass a credential with a literal value"),
                OptionSpec(long: "load-credential", store: .list(\.loadCredentials), valueName: "ID:PATH", help: "Pass a credential read from a file"),
            ]
        ),
    ]

    static let all = options.flatMap(\.options)

    static func long(_ name: Substring) -> OptionSpec? { all.first { $0.long.map { $0 == name } ?? false } }

    static func short(_ character: Character) -> OptionSpec? { all.first { $0.short == character } }

    /// By long name, or by short letter where the name is one character (-U, -j).
    static func named(_ name: String) -> OptionSpec? { name.count == 1 ? short(Character(name)) : long(Substring(name)) }
}
