#if canImport(Glibc)
    import Glibc
#endif

/// Everything the command line said, validated, as plain values. Building it has no side effects:
/// bad input fails here, before anything exists on the host.
public struct Configuration: Equatable, Sendable {
    public var directory: String?
    /// -i: a disk image holding the machine's tree.
    public var image: String?
    /// --image-policy: which of the image's partitions are used, and how they must be protected.
    public var imagePolicy = ImagePolicy.containerDefault
    public var machineName: String?
    public var hostname: String?
    public var uuid: MachineID?
    public var environment: [String] = []
    public var workingDirectory: String?
    public var user: String?
    /// An OCI bundle's numeric user (no name looked up in the machine's passwd).
    public var identity: NumericIdentity?
    public var asPID2 = false
    public var boot = false
    /// --boot-test: the seconds to wait for the booted system; nil without a boot test.
    public var bootTestTimeout: Int?
    public var notifyReady = false
    public var killSignal: Int32?
    public var quiet = false
    public var userNamespace: UserNamespaceMode = .pick
    public var ownership: OwnershipMode = .map
    public var privateNetwork: Bool { network.privateNetwork }
    public var network = NetworkConfiguration()
    public var capabilities: CapabilityPolicy = .standard(privateNetwork: true)
    public var systemCallFilters: [String] = []
    /// Whether the machine may create user namespaces (systemd's PrivateUsers= needs them); "no"
    /// takes away the kernel attack surface they open (CVE-2022-0185, CVE-2023-0386 …).
    public var nestedUserNamespaces = true
    /// --suppress-sync: the disk-syncing calls return success at once.
    public var suppressSync = false
    /// --nesting: the machine may run containers of its own (their procfs needs a fully visible one).
    public var nesting = false
    /// systemd-nspawn's SYSTEMD_SECCOMP=0: no seccomp filter at all (for debugging, never a default).
    public var seccomp = true
    public var binds: [BindMount] = []
    public var tmpfs: [TmpfsMount] = []
    /// --overlay and --overlay-ro.
    public var overlays: [OverlayMount] = []
    /// --inaccessible paths.
    public var inaccessible: [String] = []
    /// --bind-user: host users (and their homes) brought into the machine.
    public var bindUsers: [String] = []
    public var readOnly = false
    /// -x: the machine's root is an overlay with a throw-away upper layer over the tree.
    public var ephemeral = false
    /// --template: the tree the -D tree is copied from where it does not exist yet.
    public var template: String?
    /// --volatile: what of the machine is a throw-away tmpfs.
    public var volatile: VolatileMode = .no
    /// --pivot-root=NEW[:OLD]: the tree's directory NEW becomes the machine's root, and the whole
    /// tree shows at OLD in it (or nowhere), for trees with several bootable directories (OSTree).
    public var pivotRoot: PivotRoot?
    public var register: RegisterMode = .auto
    public var keepUnit = false
    public var slice = "machine.slice"
    public var properties: [ResourceProperty] = []
    public var console: ConsoleMode?
    public var switches = EnvironmentSwitches()
    /// --link-journal (auto, as with systemd-nspawn).
    public var linkJournal: LinkJournalMode = .auto
    /// --timezone (auto: the host's time zone, mounted, never written into the tree).
    public var timezone: TimezoneMode = .auto
    /// --resolv-conf (auto: bound, never written; see ResolvConfSetup).
    public var resolvConf: ResolvConfMode = .auto
    public var process = ProcessSettings()
    /// --set-credential values, in order.
    public var credentials: [Credential] = []
    /// --load-credential ID and file, read by the launcher.
    public var credentialFiles: [CredentialFile] = []
    public var command: [String] = []
    /// An OCI bundle's readonlyPaths /proc/sys: its network sysctls stay read-only too.
    public var procSysReadOnly = false
    /// An OCI bundle's read-only /sys/fs/cgroup.
    public var cgroupReadOnly = false
    /// The OCI runtime's linux.cgroupsPath: the machine's cgroup, absolute in the cgroup2 hierarchy
    /// or relative to swift-nspawn-runc's own.
    public var cgroupPath: String?
    /// swift-nspawn-runc --systemd-cgroup: cgroupPath is runc's "slice:prefix:name".
    var systemdCgroupDriver = false
    /// swift-nspawn-runc create --preserve-fds: descriptors 3, 4, … passed on to the payload.
    var preservedDescriptors: Int32 = 0
    /// An OCI bundle's linux.sysctl: set in the machine's own namespaces before its PID 1 runs.
    public var sysctls: [Sysctl] = []
    /// An OCI bundle's seccomp profile, installed over swift-nspawn's own filter.
    var seccompProfile: SeccompProfile?
    /// An OCI bundle's domainname.
    var domainname: String?
    /// An OCI bundle's linux.devices: made in the machine's /dev, and let through its device filter.
    var devices: [DeviceNode] = []
    /// An OCI bundle's PID, IPC and UTS namespaces to be born in.
    var joinedNamespaces: [JoinedNamespace] = []
    /// An OCI bundle's time namespace and its offsets.
    var timeNamespace: TimeOffsets?
    /// An OCI bundle's rootfsPropagation.
    var rootPropagation: RootPropagation?
    /// An OCI bundle's process.consoleSize: the pty's rows and columns (the OCI runtime's `create`).
    public var consoleSize: ConsoleSize?
    /// --oci-bundle: an OCI bundle whose config.json is read as the machine's settings.
    public var ociBundle: String?
    /// --settings: whether and how the machine's .nspawn file is read.
    public var settings: SettingsMode = .yes
    /// The command line as given, which a settings file's keys are carried into.
    var options = CommandLineOptions()

    public init() {}

    /// Throws UserError for bad input, InformationRequest for "help" values.
    public init(options o: CommandLineOptions, environment lookup: (String) -> String? = Configuration.processEnvironment) throws {
        options = o
        if let text = o.settings { settings = try SettingsMode.parse(text) }
        if let directory = o.directory {
            guard !directory.isEmpty else { throw UserError("Directory path given with -D may not be empty.") }
            self.directory = directory
        }
        if let image = o.image {
            guard !image.isEmpty else { throw UserError("Image path given with -i may not be empty.") }
            guard directory == nil else { throw UserError("Please specify either --directory= or --image=, the combination of both is not supported.") }
            self.image = image
        }
        if let text = o.imagePolicy { imagePolicy = try ImagePolicy.parse(text) }
        if let bundle = o.ociBundle {
            guard !bundle.isEmpty else { throw UserError("OCI bundle path given with --oci-bundle may not be empty.") }
            guard o.image == nil, o.template == nil else { throw UserError("--oci-bundle= may not be combined with --image= or --template=.") }
            ociBundle = bundle
            guard o.settings == nil else { throw UserError("--settings= does not apply with --oci-bundle=: no .nspawn file is read.") }
            guard o.nesting.flatMap(Configuration.parseBooleanValue) != true else {
                throw UserError("--nesting=yes may not be combined with --oci-bundle=: it takes away the /proc masks a bundle asks for.")
            }
        }
        procSysReadOnly = o.procSysReadOnly
        cgroupReadOnly = o.cgroupReadOnly
        cgroupPath = o.cgroupPath
        if let text = o.consoleSize {
            let parts = text.split(separator: "x").compactMap { UInt16($0) }
            guard parts.count == 2 else { throw UserError("Invalid console size: \(text)") }
            consoleSize = ConsoleSize(rows: parts[0], columns: parts[1])
        }
        sysctls = try (o.sysctls ?? "").split(separator: "\n").map { line throws(UserError) in try Sysctl.parse(String(line)) }
        joinedNamespaces = try Self.lines(o.joinedNamespaces, "Invalid namespace to join", JoinedNamespace.init(parsing:))
        devices = try Self.lines(o.devices, "Invalid device", DeviceNode.init(parsing:))
        if let text = o.timeNamespace {
            guard let offsets = TimeOffsets(parsing: text) else { throw UserError("Invalid time offsets: \(text)") }
            timeNamespace = offsets
        }
        if let name = o.domainname {
            // What setdomainname(2) takes: at most 64 bytes.
            guard name.utf8.count <= 64, !name.contains("\0") else { throw UserError("Invalid domain name: \(name)") }
            domainname = name
        }
        if let text = o.rootPropagation {
            guard let propagation = RootPropagation(rawValue: text) else { throw UserError("Invalid root propagation: \(text)") }
            rootPropagation = propagation
        }
        if let text = o.seccompProfile {
            guard let profile = try? JSONValue.parse(Array(text.utf8)) else { throw UserError("Invalid seccomp profile: \(text)") }
            seccompProfile = try SeccompProfile(profile, read: OCIBundle.Reader(path: "config.json"))
        }
        if let text = o.identity {
            guard let identity = NumericIdentity(parsing: text) else { throw UserError("Invalid numeric user: \(text)") }
            guard user == nil else { throw UserError("--user= and an OCI bundle's process.user may not be combined.") }
            self.identity = identity
        }
        if let machine = o.machine {
            guard MachineName.isValid(machine) else { throw UserError("Invalid machine name: \(machine)") }
            machineName = machine
        }
        if let hostname = o.hostname {
            guard MachineName.isValid(hostname) else { throw UserError("Invalid hostname: \(hostname)") }
            self.hostname = hostname
        }
        if let text = o.uuid {
            guard let id = MachineID(parsing: text), !id.isNull else { throw UserError("Invalid UUID: \(text)") }
            uuid = id
        }
        for assignment in o.setenv {
            if let value = try EnvironmentAssignment.parse(assignment, lookup: lookup) { environment.append(value) }
        }
        if let directory = o.workingDirectory {
            guard let normalized = PathName.normalizedAbsolute(directory) else {
                throw UserError("Working directory \(directory) must be an absolute path without \"..\".")
            }
            workingDirectory = normalized
        }
        if let text = o.pivotRoot { pivotRoot = try PivotRoot.parse(text) }
        if let user = o.user {
            guard !user.isEmpty, !user.contains("/"), !user.contains(":") else { throw UserError("Invalid user name: \(user)") }
            self.user = user
        }
        asPID2 = o.asPID2
        boot = o.boot || o.bootTest
        if o.bootTest || o.bootTestTimeout != nil {
            guard o.bootTest else { throw UserError("--boot-test-timeout= needs --boot-test.") }
            let text = o.bootTestTimeout ?? "120"
            guard let seconds = Int(text), seconds > 0 else { throw UserError("Failed to parse --boot-test-timeout= value: \(text)") }
            bootTestTimeout = seconds
        }
        if let text = o.notifyReady { notifyReady = try Self.parseBoolean(text, option: "--notify-ready") }
        if let text = o.killSignal {
            guard let signal = SignalName.parse(text) else { throw UserError("Cannot parse signal: \(text)") }
            killSignal = signal
        }
        quiet = o.quiet
        if killSignal == nil && boot {
            // systemd's manager shuts down cleanly on SIGRTMIN+3, as systemd-nspawn -b relies on.
            killSignal = SignalName.parse("SIGRTMIN+3")
        }
        if o.pickUsers {
            userNamespace = .pick
            ownership = .auto
        }
        if let mode = o.privateUsers { userNamespace = try UserNamespaceMode.parse(mode) }
        if let mode = o.privateUsersOwnership { ownership = try OwnershipMode.parse(mode) }
        if o.privateNetworkGiven && o.noPrivateNetwork { throw UserError("--private-network and --no-private-network contradict each other.") }
        network = try NetworkConfiguration(o)
        let capabilityLists = [("--capability", o.capabilities), ("--drop-capability", o.droppedCapabilities), ("--ambient-capability", o.ambientCapabilities)]
        if capabilityLists.contains(where: { $0.1.contains("help") }) { throw InformationRequest(text: CapabilitySet.helpText) }
        func union(_ option: String, _ lists: [String]) throws(UserError) -> CapabilitySet {
            var set = CapabilitySet()
            for list in lists { set.formUnion(try CapabilitySet.parse(list, option: option)) }
            return set
        }
        if o.systemCallFilters.contains("help") { throw InformationRequest(text: SeccompPolicy.helpText) }
        try SeccompPolicy.validate(o.systemCallFilters)
        systemCallFilters = o.systemCallFilters
        seccomp = lookup("SYSTEMD_SECCOMP") != "0"
        if let text = o.suppressSync { suppressSync = try Self.parseBoolean(text, option: "--suppress-sync") }
        switches = try EnvironmentSwitches.read(lookup)
        if let text = o.nestedUserNamespaces {
            nestedUserNamespaces = try Self.parseBoolean(text, option: "--nested-user-namespaces")
            if !nestedUserNamespaces && userNamespace == .no {
                throw UserError("--nested-user-namespaces=no needs a user namespace for the machine (not --private-users=no).")
            }
        }
        if let text = o.nesting {
            nesting = try Self.parseBoolean(text, option: "--nesting")
            if nesting && !nestedUserNamespaces { throw UserError("--nesting=yes and --nested-user-namespaces=no contradict each other.") }
            if nesting && userNamespace == .no {
                throw UserError("--nesting=yes needs a user namespace for the machine (not --private-users=no): without one its root is the host's root.")
            }
        }
        let ambient = try union("--ambient-capability", o.ambientCapabilities)
        if !ambient.isEmpty && boot { throw UserError("--ambient-capability= may not be combined with --boot.") }
        capabilities = try CapabilityPolicy(
            retain: try union("--capability", o.capabilities), drop: try union("--drop-capability", o.droppedCapabilities),
            // CAP_NET_ADMIN over a namespace of its own only, not one joined (the host's root owns that).
            ambient: ambient, privateNetwork: privateNetwork && network.namespacePath == nil,
            noNewPrivileges: try o.noNewPrivileges.map { v throws(UserError) in try Self.parseBoolean(v, option: "--no-new-privileges") } ?? false)
        binds =
            try o.binds.map { spec throws(UserError) in try BindMount.parse(spec, readOnly: false) }
            + o.readOnlyBinds.map { spec throws(UserError) in try BindMount.parse(spec, readOnly: true) }
        tmpfs = try o.tmpfs.map { spec throws(UserError) in try TmpfsMount.parse(spec) }
        overlays =
            try o.overlays.map { spec throws(UserError) in try OverlayMount.parse(spec, readOnly: false) }
            + o.readOnlyOverlays.map { spec throws(UserError) in try OverlayMount.parse(spec, readOnly: true) }
        inaccessible = try o.inaccessible.map { path throws(UserError) in
            guard let normalized = PathName.normalizedAbsolute(path), normalized != "/" else {
                throw UserError("Path in --inaccessible=\(path) must be absolute, not the root, and may not contain \"..\".")
            }
            return normalized
        }
        for name in o.bindUsers {
            guard BoundUser.isValidName(name) else { throw UserError("Invalid user name to bind: \(name)") }
            guard !bindUsers.contains(name) else { throw UserError("User \(name) given to --bind-user= more than once.") }
            bindUsers.append(name)
        }
        guard bindUsers.count <= Int(BoundUser.lastMachineID - BoundUser.firstMachineID + 1) else {
            throw UserError("At most \(BoundUser.lastMachineID - BoundUser.firstMachineID + 1) users can be bound into a machine.")
        }
        readOnly = o.readOnly
        ephemeral = o.ephemeral
        if let text = o.volatile {
            guard let mode = VolatileMode(rawValue: text) ?? Configuration.parseBooleanValue(text).map({ $0 ? .yes : .no }) else {
                throw UserError("Failed to parse --volatile= argument: \(text); known: no, yes, state, overlay.")
            }
            volatile = mode
        }
        if ephemeral && volatile != .no { throw UserError("--volatile= and --ephemeral cannot be combined.") }
        if let text = o.template {
            guard let path = PathName.normalizedAbsolute(text), path != "/" else {
                throw UserError("--template= takes an absolute path to a directory, not the root: \(text)")
            }
            guard image == nil else { throw UserError("--template= is not supported with --image=.") }
            guard directory != nil else { throw UserError("--template= needs --directory=: the tree to make from it.") }
            guard !ephemeral else { throw UserError("--ephemeral and --template= may not be combined.") }
            template = path
        }
        if let mode = o.register { register = try RegisterMode.parse(mode) }
        keepUnit = o.keepUnit
        if let slice = o.slice {
            let name = slice.dropLast(".slice".count)
            guard slice.hasSuffix(".slice"), !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:@".contains($0) }) else {
                throw UserError("Invalid slice name: \(slice) (a unit name ending in .slice, such as machine.slice).")
            }
            self.slice = slice
        }
        properties = try o.properties.map { text throws(UserError) in try ResourceProperty.parse(text) }
        if let mode = o.console {
            guard let parsed = ConsoleMode(rawValue: mode) else {
                throw UserError("Unknown console mode: \(mode); known: \(ConsoleMode.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            console = parsed
        }
        if o.pipe { console = .pipe }
        process.oomScoreAdjust = try o.oomScoreAdjust.map { text throws(UserError) in try ProcessSettings.parseOOMScoreAdjust(text) }
        process.resourceLimits = try o.resourceLimits.map { text throws(UserError) in try ResourceLimit.parse(text) }
        process.cpuAffinity = try o.cpuAffinity.map { text throws(UserError) in try ProcessSettings.parseCPUAffinity(text) }
        if let text = o.personality { process.personality = try ProcessSettings.parsePersonality(text) }
        if o.linkJournalTryGuest { linkJournal = .tryGuest }
        if let text = o.linkJournal { linkJournal = try LinkJournalMode.parse(text) }
        if let text = o.timezone { timezone = try TimezoneMode.parse(text) }
        if let text = o.resolvConf { resolvConf = try ResolvConfMode.parse(text) }
        credentials = try o.setCredentials.map { text throws(UserError) in try Credential.parseSet(text) }
        credentialFiles = try o.loadCredentials.map { text throws(UserError) in try Credential.parseLoad(text) }
        let ids = credentials.map(\.id) + credentialFiles.map(\.id)
        if let duplicate = Dictionary(grouping: ids, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw UserError("Duplicate credential '\(duplicate)', refusing.")
        }
        command = o.command
        try verify()
    }

    /// Checks between options, as systemd-nspawn's verify_arguments() does.
    func verify() throws(UserError) {
        if boot && asPID2 { throw UserError("--boot and --as-pid2 may not be combined.") }
        if ephemeral || volatile != .no, ![.auto, .no].contains(linkJournal) {
            throw UserError(
                "\(ephemeral ? "--ephemeral" : "--volatile=") and --link-journal=\(linkJournal.rawValue) may not be combined: a throw-away machine's journal goes with it."
            )
        }
        if userNamespace == .no && !bindUsers.isEmpty {
            throw UserError("--bind-user= needs a user namespace for the machine (not --private-users=no).")
        }
        if userNamespace == .no, let mapped = binds.first(where: { $0.ownership != .raw }) {
            throw UserError(
                "\(mapped.readOnly ? "--bind-ro" : "--bind")=\(mapped.source):\(mapped.destination):\(mapped.ownership.rawValue) needs a user namespace for the machine (not --private-users=no)."
            )
        }
        let destinations = binds.map(\.destination) + tmpfs.map(\.destination) + overlays.map(\.destination)
        if let duplicate = Dictionary(grouping: destinations, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw UserError("Mount destination \(duplicate) is given more than once.")
        }
    }

    /// The machine's mounts sorted by destination, so that a parent is mounted before what goes inside it.
    public var customMountsInOrder: [CustomMount] {
        (binds.map(CustomMount.bind) + tmpfs.map(CustomMount.tmpfs) + overlays.map(CustomMount.overlay)).sorted { $0.destination < $1.destination }
    }

    static func parseBooleanValue(_ text: String) -> Bool? { try? parseBoolean(text, option: "") }

    /// As systemd's parse_boolean: any case of these.
    static func parseBoolean(_ text: String, option: String) throws(UserError) -> Bool {
        switch text.lowercased() {
        case "1", "yes", "y", "true", "t", "on": return true
        case "0", "no", "n", "false", "f", "off": return false
        default: throw UserError("Failed to parse \(option)= value: \(text)")
        }
    }

    /// One value a line, as the settings carry an OCI bundle's lists; a line `parse` refuses is
    /// "`invalid`: LINE".
    private static func lines<T>(_ text: String?, _ invalid: String, _ parse: (String) -> T?) throws(UserError) -> [T] {
        try (text ?? "").split(separator: "\n").map { line throws(UserError) in
            guard let value = parse(String(line)) else { throw UserError("\(invalid): \(line)") }
            return value
        }
    }

    public static func processEnvironment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

/// An option value that asks for information instead of a run ("--capability=help").
public struct InformationRequest: Error {
    public var text: String
}

/// --pivot-root=NEW[:OLD], both absolute, found in the tree as the machine resolves paths.
public struct PivotRoot: Equatable, Sendable {
    public var newRoot: String
    public var oldRoot: String?

    static func parse(_ text: String) throws(UserError) -> PivotRoot {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let invalid = UserError("Failed to parse --pivot-root= argument: \(text) (NEW[:OLD], absolute paths without \"..\").")
        guard parts.count <= 2, let newRoot = PathName.normalizedAbsolute(parts[0]) else { throw invalid }
        // "NEW:" is NEW alone, as systemd-nspawn reads it.
        guard parts.count == 2, !parts[1].isEmpty else { return PivotRoot(newRoot: newRoot) }
        guard let oldRoot = PathName.normalizedAbsolute(parts[1]), oldRoot != "/" else { throw invalid }
        return PivotRoot(newRoot: newRoot, oldRoot: oldRoot)
    }
}

/// --volatile=: systemd-nspawn 252's modes, with a user namespace too (systemd-nspawn fails there).
public enum VolatileMode: String, Equatable, Sendable {
    /// The tree as it is.
    case no
    /// A tmpfs root, with the tree's /usr bound into it read-only: a machine that starts from nothing
    /// but its vendor files.
    case yes
    /// The tree read-only, with a tmpfs at /var.
    case state
    /// The tree read-only below an overlay whose upper layer is a tmpfs: -x's root.
    case overlay
}

/// A kernel setting of the machine's own namespaces (an OCI bundle's linux.sysctl). Only the ones
/// the kernel keeps per namespace, as runc allows: network settings (of a network namespace of the
/// machine's own, checked by MachinePlan) and IPC ones; never one of the host's.
public struct Sysctl: Equatable, Sendable {
    public var key: String
    public var value: String

    static let namespacedPrefixes = ["net.", "fs.mqueue."]
    static let namespacedKeys: Set<String> = [
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
    ]

    /// The file under /proc/sys.
    var path: String { "/proc/sys/" + key.split(separator: ".").joined(separator: "/") }
    var isNetwork: Bool { key.hasPrefix("net.") }

    static func parse(_ line: String) throws(UserError) -> Sysctl {
        let key = String(line.prefix { $0 != "=" })
        let value = String(line.dropFirst(key.count + 1))
        let components = key.split(separator: ".", omittingEmptySubsequences: false)
        guard components.count >= 2, components.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } })
        else { throw UserError("linux.sysctl: \(key) is not a sysctl name.") }
        guard namespacedPrefixes.contains(where: key.hasPrefix) || namespacedKeys.contains(key) else {
            throw UserError("linux.sysctl: \(key) is not a setting of the machine's own namespaces.")
        }
        return Sysctl(key: key, value: value)
    }
}

/// A terminal's size: an OCI bundle's process.consoleSize.
public struct ConsoleSize: Equatable, Sendable {
    public var rows: UInt16
    public var columns: UInt16
}
