#if canImport(Glibc)
    import Glibc
#endif

/// --oci-bundle=PATH: an OCI runtime bundle (its config.json and root file system) read as the
/// machine's settings, as systemd-nspawn reads one: the root directory, the process, the mounts,
/// the namespaces and limits become the options that mean the same, carried in like a trusted
/// .nspawn file (the command line wins; no .nspawn file is read). A field swift-nspawn cannot
/// honour, of the wrong type, or unknown, is refused naming it, never dropped.
enum OCIBundle {
    /// The mounts an OCI runtime makes itself and swift-nspawn makes its own way (destination,
    /// types), and the options that ask for nothing swift-nspawn does not do there anyway (its
    /// sizes and modes are its own). "ro" on /sys/fs/cgroup is honoured.
    static let apiMounts: [String: Set<String>] = [
        "/proc": ["proc"], "/dev": ["tmpfs"], "/dev/pts": ["devpts"], "/dev/shm": ["tmpfs"], "/dev/mqueue": ["mqueue"], "/sys": ["sysfs"],
        "/sys/fs/cgroup": ["cgroup", "cgroup2"], "/run": ["tmpfs"],
    ]
    static let apiMountOptions: Set<String> = [
        "nosuid", "nodev", "noexec", "strictatime", "relatime", "rw", "ro", "newinstance", "ptmxmode=0666", "ptmxmode=666", "mode=620", "mode=0620",
        "gid=5", "mode=755", "mode=0755", "mode=1777", "mode=01777", "size=65536k",
    ]

    /// Whether an option of an API mount asks for nothing swift-nspawn does not do: the list above
    /// and propagation. swift-nspawn's /run is writable and executable.
    static func isAPIMountOption(_ option: String, destination: String) -> Bool {
        (apiMountOptions.contains(option) || propagationOptions.contains(option)) && !(destination == "/run" && (option == "ro" || option == "noexec"))
    }
    static let propagationOptions: Set<String> = ["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"]

    /// The devices an engine's rules allow besides swift-nspawn's own (DeviceFilter.closed): the
    /// console's node, whose place a pty of swift-nspawn's takes.
    static let engineDevices: [(major: UInt32, minor: UInt32?)] = [(5, 1)]

    /// - Parameter runtime: read for the OCI runtime command line (swift-nspawn-runc), where the
    ///   bundle's cgroupsPath places the machine's cgroup.
    static func load(_ bundle: String, runtime: Bool = false) throws(UserError) -> SettingsFile {
        try read(bundle, runtime: runtime).settings
    }

    /// load(), with what the OCI runtime's `create` records besides: the bundle's directory, resolved,
    /// config.json's annotations (metadata for `state`, nothing for the machine) and its hooks (the
    /// runtime's to run; --oci-bundle refuses them).
    static func read(
        _ bundle: String, runtime: Bool
    ) throws(UserError) -> (settings: SettingsFile, directory: String, annotations: [String: JSONValue], hooks: RuntimeHooks) {
        let directory: String
        do {
            directory = try FileSystem.canonicalPath(bundle)
        } catch {
            throw UserError("Failed to resolve OCI bundle path \(bundle): \(error.errno.message)")
        }
        let path = "\(directory)/config.json"
        let bytes: [UInt8]
        switch Result(catching: { () throws(SyscallError) -> [UInt8]? in
            try FileSystem.readRegular(try FileSystem.open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK), path: path, limit: 4 << 20)
        }) {
        case .success(let read?): bytes = read
        case .success(nil): throw UserError("\(path) is not a regular file of at most 4 MiB. Refusing.")
        case .failure(let error): throw UserError("Failed to read OCI bundle: \(error)")
        }
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw UserError("\(path): not valid JSON: \(error)")
        }
        // A masked path of the kernel's (/proc, /sys) that this kernel lacks is not there to mask,
        // as runc takes it (runc spec's list names some that newer kernels dropped).
        let exists = { (masked: String) in !(masked.hasPrefix("/proc/") || masked.hasPrefix("/sys/")) || FileSystem.exists(masked) }
        let settings = SettingsFile(
            path: path, trusted: true, assignments: try assignments(document, bundle: directory, path: path, runtime: runtime, kernelHas: exists),
            warnings: [])
        let hooks = runtime ? try RuntimeHooks(document["hooks"], read: Reader(path: path)) : RuntimeHooks()
        return (settings, directory, document["annotations"]?.object ?? [:], hooks)
    }

    /// Reads config.json's values, each at its field; every read refuses a wrong type. (Also exec's
    /// process object.)
    struct Reader {
        let path: String

        func refuse(_ field: String, _ reason: String) -> UserError { UserError("\(path): \(field): \(reason)") }

        /// `known`: the member names allowed; nil for any (a map).
        func object(_ value: JSONValue?, _ field: String, known: Set<String>?) throws(UserError) -> [String: JSONValue]? {
            guard let value, value != .null else { return nil }
            guard let members = value.object else { throw refuse(field, "expected an object.") }
            if let known, let unknown = members.keys.sorted().first(where: { !known.contains($0) }) {
                throw refuse(field.isEmpty ? unknown : "\(field).\(unknown)", "not supported by swift-nspawn.")
            }
            return members
        }

        func array(_ value: JSONValue?, _ field: String) throws(UserError) -> [JSONValue] {
            guard let value, value != .null else { return [] }
            guard let items = value.array else { throw refuse(field, "expected an array.") }
            return items
        }

        func string(_ value: JSONValue?, _ field: String) throws(UserError) -> String? {
            guard let value, value != .null else { return nil }
            guard let text = value.string else { throw refuse(field, "expected a string.") }
            return text
        }

        func strings(_ value: JSONValue?, _ field: String) throws(UserError) -> [String] {
            var texts: [String] = []
            for (index, item) in try array(value, field).enumerated() {
                guard let text = item.string else { throw refuse("\(field)[\(index)]", "expected a string.") }
                texts.append(text)
            }
            return texts
        }

        func bool(_ value: JSONValue?, _ field: String) throws(UserError) -> Bool? {
            guard let value, value != .null else { return nil }
            guard let flag = value.bool else { throw refuse(field, "expected true or false.") }
            return flag
        }

        func integer(_ value: JSONValue?, _ field: String, in range: ClosedRange<Int64>) throws(UserError) -> Int64? {
            guard let value, value != .null else { return nil }
            guard let number = value.int64, range.contains(number) else {
                throw refuse(field, "expected an integer from \(range.lowerBound) to \(range.upperBound).")
            }
            return number
        }

        func unsigned(_ value: JSONValue?, _ field: String) throws(UserError) -> UInt64? {
            guard let value, value != .null else { return nil }
            guard let number = value.uint64 else { throw refuse(field, "expected an unsigned integer.") }
            return number
        }

        /// An entry of process.rlimits: its name without RLIMIT_, and the limit.
        func resourceLimit(_ value: JSONValue, _ field: String) throws(UserError) -> (name: String, limit: ResourceLimit) {
            let limit = try object(value, field, known: ["type", "soft", "hard"])
            guard let type = try string(limit?["type"], "\(field).type"), let soft = try unsigned(limit?["soft"], "\(field).soft"),
                let hard = try unsigned(limit?["hard"], "\(field).hard")
            else { throw refuse(field, "expected type, soft and hard.") }
            let name = type.hasPrefix("RLIMIT_") ? String(type.dropFirst("RLIMIT_".count)) : type
            guard let resource = ResourceLimit.names.first(where: { $0.0 == name })?.1 else { throw refuse("\(field).type", "unknown limit \(type).") }
            return (name, ResourceLimit(resource: resource, soft: soft, hard: hard))
        }

        /// A field swift-nspawn has nothing for: refused unless empty.
        func unsupported(_ value: JSONValue?, _ field: String) throws(UserError) {
            guard let value, value != .null else { return }
            switch value {
            case .string(let text) where text.isEmpty: return
            case .array(let items) where items.isEmpty: return
            case .object(let members) where members.isEmpty: return
            default: throw refuse(field, "not supported by swift-nspawn.")
            }
        }
    }

    /// The settings the document stands for, each labelled with its field.
    /// - Parameter kernelHas: whether a masked path of /proc or /sys is there to mask.
    static func assignments(
        _ document: JSONValue, bundle: String, path: String, runtime: Bool = false, kernelHas: (String) -> Bool = { _ in true }
    ) throws(UserError) -> [SettingsFile.Assignment] {
        let read = Reader(path: path)
        var result: [SettingsFile.Assignment] = []
        func add(_ key: String, _ value: String = "", words: [String]? = nil, field: String) {
            let parts = key.split(separator: "/")
            result.append(.init(section: String(parts[0]), key: String(parts[1]), value: value, line: 0, words: words, field: field))
        }

        let top = try read.object(
            document, "", known: ["ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux"])
        guard let top else { throw read.refuse("(document)", "expected an object.") }
        guard let version = try read.string(top["ociVersion"], "ociVersion"), version.hasPrefix("1.") else {
            throw read.refuse("ociVersion", "a version 1.x of the OCI runtime specification is needed.")
        }
        let root = try read.object(top["root"], "root", known: ["path", "readonly"])
        guard let rootPath = try read.string(root?["path"], "root.path"), !rootPath.isEmpty else { throw read.refuse("root.path", "missing.") }
        add("OCI/Directory", rootPath.hasPrefix("/") ? rootPath : "\(bundle)/\(rootPath)", field: "root.path")
        if try read.bool(root?["readonly"], "root.readonly") == true { add("Files/ReadOnly", "yes", field: "root.readonly") }
        if let hostname = try read.string(top["hostname"], "hostname"), !hostname.isEmpty { add("Exec/Hostname", hostname, field: "hostname") }
        if let domainname = try read.string(top["domainname"], "domainname"), !domainname.isEmpty {
            guard domainname.utf8.count <= 64 else { throw read.refuse("domainname", "longer than 64 bytes.") }
            add("OCI/Domainname", domainname, field: "domainname")
        }
        // The runtime's to run (RuntimeHooks); nothing for the machine.
        if !runtime { try read.unsupported(top["hooks"], "hooks") }
        // Metadata for whoever made the bundle; nothing for the machine.
        if let annotations = top["annotations"], annotations != .null, annotations.object == nil {
            throw read.refuse("annotations", "expected an object.")
        }

        try process(top["process"], read: read, add: add)
        // A mount ID-mapped as the container's user namespace needs that namespace's mappings.
        let linuxFields = top["linux"]?.object
        let userNamespace =
            linuxFields?["namespaces"]?.array?.contains { $0["type"]?.string == "user" } == true
            ? (uids: linuxFields?["uidMappings"] ?? .array([]), gids: linuxFields?["gidMappings"] ?? .array([])) : nil
        try mounts(top["mounts"], bundle: bundle, read: read, userNamespace: userNamespace, add: add)
        try linux(top["linux"], read: read, runtime: runtime, kernelHas: kernelHas, add: add)
        return result
    }

    private static func process(_ value: JSONValue?, read: Reader, add: (String, String, [String]?, String) -> Void) throws(UserError) {
        let known: Set<String> = [
            "terminal", "consoleSize", "user", "args", "commandLine", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges", "oomScoreAdj",
            "apparmorProfile", "selinuxLabel", "ioPriority", "scheduler", "execCPUAffinity",
        ]
        guard let process = try read.object(value, "process", known: known) else { return }
        if let terminal = try read.bool(process["terminal"], "process.terminal") {
            add("OCI/Console", terminal ? "interactive" : "pipe", nil, "process.terminal")
        }
        if let size = try read.object(process["consoleSize"], "process.consoleSize", known: ["height", "width"]) {
            let rows = try read.integer(size["height"], "process.consoleSize.height", in: 0...0xffff) ?? 0
            let columns = try read.integer(size["width"], "process.consoleSize.width", in: 0...0xffff) ?? 0
            if rows > 0 && columns > 0 { add("OCI/ConsoleSize", "\(rows)x\(columns)", nil, "process.consoleSize") }
        }
        let arguments = try read.strings(process["args"], "process.args")
        guard !arguments.isEmpty else { throw read.refuse("process.args", "missing or empty.") }
        add("Exec/Parameters", "", arguments, "process.args")
        try read.unsupported(process["commandLine"], "process.commandLine")
        let environment = try read.strings(process["env"], "process.env")
        if !environment.isEmpty { add("Exec/Environment", "", environment, "process.env") }
        if let cwd = try read.string(process["cwd"], "process.cwd"), cwd != "/" { add("Exec/WorkingDirectory", cwd, nil, "process.cwd") }
        if let user = try read.object(process["user"], "process.user", known: ["uid", "gid", "umask", "additionalGids", "username"]) {
            // The IDs as they are: never a name looked up in the machine's passwd, which could say
            // anything about a number (a user named "1000" of UID 0).
            let uid = try read.integer(user["uid"], "process.user.uid", in: 0...0xffff_fffe) ?? 0
            let gid = try read.integer(user["gid"], "process.user.gid", in: 0...0xffff_fffe) ?? 0
            var groups: [Int64] = []
            for (index, value) in try read.array(user["additionalGids"], "process.user.additionalGids").enumerated() {
                groups.append(try read.integer(value, "process.user.additionalGids[\(index)]", in: 0...0xffff_fffe) ?? 0)
            }
            if uid != 0 || gid != 0 || !groups.isEmpty {
                add("OCI/Identity", "\(uid):\(gid):\(groups.map(String.init).joined(separator: ","))", nil, "process.user")
            }
            try read.unsupported(user["username"], "process.user.username")
            if let umask = try read.unsigned(user["umask"], "process.user.umask"), umask != 0o022 {
                throw read.refuse("process.user.umask", "only the default 0022 is supported.")
            }
        }
        let capabilityKnown: Set<String> = ["bounding", "effective", "permitted", "inheritable", "ambient"]
        if let capabilities = try read.object(process["capabilities"], "process.capabilities", known: capabilityKnown) {
            guard let bounding = CapabilitySet.parseOrNil(try read.strings(capabilities["bounding"], "process.capabilities.bounding")) else {
                throw read.refuse("process.capabilities.bounding", "unknown capability.")
            }
            for set in ["effective", "permitted", "inheritable"] {
                let names = try read.strings(capabilities[set], "process.capabilities.\(set)")
                guard let other = CapabilitySet.parseOrNil(names), other.isSubset(of: bounding) else {
                    throw read.refuse("process.capabilities.\(set)", "must be part of the bounding set (swift-nspawn keeps one set).")
                }
            }
            add("Exec/Capability", "", bounding.isEmpty ? [] : ["\(bounding)"], "process.capabilities.bounding")
            let dropped = CapabilitySet.all.subtracting(bounding)
            if !dropped.isEmpty { add("Exec/DropCapability", "", ["\(dropped)"], "process.capabilities.bounding") }
            let ambient = try read.strings(capabilities["ambient"], "process.capabilities.ambient")
            guard let ambientSet = CapabilitySet.parseOrNil(ambient), ambientSet.isSubset(of: bounding) else {
                throw read.refuse("process.capabilities.ambient", "must be part of the bounding set.")
            }
            if !ambient.isEmpty { add("Exec/AmbientCapability", "", [ambient.joined(separator: ",")], "process.capabilities.ambient") }
        }
        for (index, value) in try read.array(process["rlimits"], "process.rlimits").enumerated() {
            let field = "process.rlimits[\(index)]"
            let (name, limit) = try read.resourceLimit(value, field)
            let text = { (value: UInt64) in value == UInt64.max ? "infinity" : "\(value)" }
            add("Exec/Limit\(name)", "\(text(limit.soft)):\(text(limit.hard))", nil, field)
        }
        if let flag = try read.bool(process["noNewPrivileges"], "process.noNewPrivileges") {
            add("Exec/NoNewPrivileges", flag ? "yes" : "no", nil, "process.noNewPrivileges")
        }
        if let score = try read.integer(process["oomScoreAdj"], "process.oomScoreAdj", in: -1000...1000) {
            add("Exec/OOMScoreAdjust", "\(score)", nil, "process.oomScoreAdj")
        }
        for field in ["apparmorProfile", "selinuxLabel", "ioPriority", "scheduler", "execCPUAffinity"] {
            try read.unsupported(process[field], "process.\(field)")
        }
    }

    /// `userNamespace`: the container's mappings when it has a user namespace.
    private static func mounts(
        _ value: JSONValue?, bundle: String, read: Reader, userNamespace: (uids: JSONValue, gids: JSONValue)?,
        add: (String, String, [String]?, String) -> Void
    ) throws(UserError) {
        let propagation = propagationOptions
        for (index, value) in try read.array(value, "mounts").enumerated() {
            let field = "mounts[\(index)]"
            let mount = try read.object(value, field, known: ["destination", "type", "source", "options", "uidMappings", "gidMappings"]) ?? [:]
            guard let destination = try read.string(mount["destination"], "\(field).destination"), destination.hasPrefix("/") else {
                throw read.refuse("\(field).destination", "expected an absolute path.")
            }
            let type = try read.string(mount["type"], "\(field).type") ?? ""
            let options = try read.strings(mount["options"], "\(field).options")
            // idmap (ridmap: of the submounts too): the mount shows its owners as the container's
            // user namespace maps them, swift-nspawn's idmap bind. Mappings of its own are refused.
            let idmapped = options.contains("idmap") || options.contains("ridmap")
            if idmapped {
                guard let userNamespace else { throw read.refuse("\(field).options", "idmap needs a user namespace.") }
                for (name, own) in [("uidMappings", userNamespace.uids), ("gidMappings", userNamespace.gids)] {
                    let given = mount[name] ?? .null
                    guard given == .null || given == .array([]) || given == own else {
                        throw read.refuse("\(field).\(name)", "swift-nspawn maps a mount as the container's user namespace only.")
                    }
                }
            } else {
                try read.unsupported(mount["uidMappings"], "\(field).uidMappings")
                try read.unsupported(mount["gidMappings"], "\(field).gidMappings")
            }
            if apiMounts[destination]?.contains(type) == true {
                let other = options.filter { !isAPIMountOption($0, destination: destination) }
                guard other.isEmpty else {
                    throw read.refuse("\(field).options", "\(other.joined(separator: ",")) on \(destination): swift-nspawn mounts it its own way.")
                }
                if destination == "/sys/fs/cgroup" && options.contains("ro") { add("OCI/CgroupReadOnly", "", nil, field) }
                continue
            }
            if type == "bind" || options.contains("bind") || options.contains("rbind") {
                guard let source = try read.string(mount["source"], "\(field).source"), !source.isEmpty else {
                    throw read.refuse("\(field).source", "missing.")
                }
                // nodev: every bind is.
                let other = options.filter {
                    !["bind", "rbind", "ro", "rw", "nosuid", "noexec", "nodev", "idmap", "ridmap"].contains($0) && !propagation.contains($0)
                }
                guard other.isEmpty else { throw read.refuse("\(field).options", "\(other.joined(separator: ",")) not supported for binds.") }
                // swift-nspawn maps a bind with its submounts: ridmap, or idmap of a bind that has none.
                if options.contains("idmap") && options.contains("rbind") {
                    throw read.refuse("\(field).options", "idmap of an rbind maps only its top mount; swift-nspawn maps the submounts too (ridmap).")
                }
                let flags = [options.contains("rbind") ? "rbind" : "norbind"] + ["nosuid", "noexec"].filter(options.contains) + (idmapped ? ["idmap"] : [])
                add(
                    options.contains("ro") ? "Files/BindReadOnly" : "Files/Bind",
                    "\(source.hasPrefix("/") ? source : "\(bundle)/\(source)"):\(destination):\(flags.joined(separator: ","))", nil, field)
            } else if idmapped {
                throw read.refuse("\(field).options", "idmap is supported for binds only.")
            } else if type == "tmpfs" {
                // swift-nspawn's tmpfs mounts are nosuid and nodev; other mount flags it does not set.
                let flags: Set<String> = ["nosuid", "nodev", "rw", "relatime"]
                if let other = options.first(where: { ["noexec", "ro", "strictatime", "noatime", "nodiratime", "sync", "dirsync"].contains($0) }) {
                    throw read.refuse("\(field).options", "\(other) not supported for tmpfs mounts.")
                }
                let data = options.filter { !flags.contains($0) && !propagation.contains($0) }
                add("Files/TemporaryFileSystem", data.isEmpty ? destination : "\(destination):\(data.joined(separator: ","))", nil, field)
            } else {
                throw read.refuse(field, "a \(type.isEmpty ? "mount without a type" : "\(type) mount") on \(destination) is not supported by swift-nspawn.")
            }
        }
    }

    private static func linux(
        _ value: JSONValue?, read: Reader, runtime: Bool, kernelHas: (String) -> Bool, add: (String, String, [String]?, String) -> Void
    ) throws(UserError) {
        let known: Set<String> = [
            "namespaces", "uidMappings", "gidMappings", "maskedPaths", "readonlyPaths", "resources", "personality", "sysctl", "seccomp", "cgroupsPath",
            "rootfsPropagation", "mountLabel", "intelRdt", "timeOffsets", "devices", "netDevices", "memoryPolicy",
        ]
        let linux = try read.object(value, "linux", known: known) ?? [:]
        // Each type listed, with the path to join ("" for a new one).
        var namespaces: [String: String] = [:]
        for (index, value) in try read.array(linux["namespaces"], "linux.namespaces").enumerated() {
            let namespace = try read.object(value, "linux.namespaces[\(index)]", known: ["type", "path"])
            guard let type = try read.string(namespace?["type"], "linux.namespaces[\(index)].type") else {
                throw read.refuse("linux.namespaces[\(index)].type", "missing.")
            }
            guard ["pid", "mount", "ipc", "uts", "network", "user", "cgroup", "time"].contains(type) else {
                throw read.refuse("linux.namespaces[\(index)]", "a \(type) namespace is not supported by swift-nspawn.")
            }
            guard namespaces[type] == nil else { throw read.refuse("linux.namespaces[\(index)]", "the \(type) namespace is listed twice.") }
            let joined = try read.string(namespace?["path"], "linux.namespaces[\(index)].path") ?? ""
            guard joined.isEmpty || ["network", "pid", "ipc", "uts"].contains(type) else {
                throw read.refuse("linux.namespaces[\(index)].path", "joining a \(type) namespace is not supported by swift-nspawn.")
            }
            namespaces[type] = joined
        }
        for type in ["pid", "mount", "ipc", "uts"] where namespaces[type] == nil {
            throw read.refuse("linux.namespaces", "swift-nspawn always gives a machine a \(type) namespace of its own.")
        }
        switch namespaces["network"] {
        case nil: add("Network/Private", "no", nil, "linux.namespaces")
        case .some(let path) where !path.isEmpty: add("OCI/NetworkNamespacePath", path, nil, "linux.namespaces")
        default: add("Network/Private", "yes", nil, "linux.namespaces")
        }
        if let offsets = try read.object(linux["timeOffsets"], "linux.timeOffsets", known: ["monotonic", "boottime"]) {
            guard namespaces["time"] != nil else { throw read.refuse("linux.timeOffsets", "given without a time namespace.") }
            var time = TimeOffsets()
            for clock in ["monotonic", "boottime"] {
                guard let offset = try read.object(offsets[clock], "linux.timeOffsets.\(clock)", known: ["secs", "nanosecs"]) else { continue }
                let value = (
                    seconds: try read.integer(offset["secs"], "linux.timeOffsets.\(clock).secs", in: Int64.min...Int64.max) ?? 0,
                    nanoseconds: try read.integer(offset["nanosecs"], "linux.timeOffsets.\(clock).nanosecs", in: 0...999_999_999) ?? 0
                )
                if clock == "monotonic" { time.monotonic = value } else { time.boottime = value }
            }
            add("OCI/TimeNamespace", time.text, nil, "linux.timeOffsets")
        } else if namespaces["time"] != nil {
            add("OCI/TimeNamespace", TimeOffsets().text, nil, "linux.namespaces")
        }
        let joined = ["pid", "ipc", "uts"].compactMap { kind in namespaces[kind].flatMap { $0.isEmpty ? nil : "\(kind):\($0)" } }
        if !joined.isEmpty {
            // Owned by the host's user namespace, they would refuse the machine's root (mqueue, the
            // hostname, IPC sysctls).
            guard namespaces["user"] == nil else {
                throw read.refuse(
                    "linux.namespaces", "a pid, ipc or uts namespace to join may not be combined with a user namespace of the container's own.")
            }
            guard joined.allSatisfy({ JoinedNamespace(parsing: $0) != nil }) else { throw read.refuse("linux.namespaces", "a path to join must be absolute.") }
            add("OCI/JoinedNamespaces", joined.joined(separator: "\n"), nil, "linux.namespaces")
        }
        let uids = try read.array(linux["uidMappings"], "linux.uidMappings")
        let gids = try read.array(linux["gidMappings"], "linux.gidMappings")
        if namespaces["user"] != nil {
            if uids.isEmpty && gids.isEmpty {
                // A range swift-nspawn picks is locked for as long as its picker lives; `create` ends
                // before its machine does, so another could pick the same one.
                guard !runtime else {
                    throw read.refuse("linux.uidMappings", "\(RuntimeInvocation.name) needs the user namespace's mappings; it picks no range itself.")
                }
                add("Exec/PrivateUsers", "pick", nil, "linux.namespaces")
            } else {
                guard uids.count == 1, gids.count == 1, uids == gids, uids[0].object?.count == 3, uids[0]["containerID"]?.uint64 == 0,
                    let host = uids[0]["hostID"]?.uint64, let size = uids[0]["size"]?.uint64
                else {
                    throw read.refuse("linux.uidMappings", "swift-nspawn maps one range from 0, the same for users and groups.")
                }
                add("Exec/PrivateUsers", "\(host):\(size)", nil, "linux.uidMappings")
            }
        } else {
            guard uids.isEmpty && gids.isEmpty else { throw read.refuse("linux.uidMappings", "given without a user namespace.") }
            add("Exec/PrivateUsers", "no", nil, "linux.namespaces")
        }
        // Those swift-nspawn masks anyway are masked its way (an empty file over the entry).
        for masked in try read.strings(linux["maskedPaths"], "linux.maskedPaths") where !MountPlan.maskedProcEntries.contains(masked) && kernelHas(masked) {
            add("OCI/Inaccessible", masked, nil, "linux.maskedPaths")
        }
        let readOnly = MountPlan.readOnlyProcEntries + ["/proc/sys", "/proc/sysrq-trigger"] + MountPlan.maskedProcEntries
        for entry in try read.strings(linux["readonlyPaths"], "linux.readonlyPaths") {
            guard readOnly.contains(entry) else { throw read.refuse("linux.readonlyPaths", "\(entry) is not one swift-nspawn makes read-only.") }
            // Where the network namespace is the machine's own, its sysctls are writable unless this says no.
            if entry == "/proc/sys" { add("OCI/ProcSysReadOnly", "", nil, "linux.readonlyPaths") }
        }
        let devices = try devices(linux["devices"], read: read)
        if !devices.isEmpty { add("OCI/Devices", devices.map(\.text).joined(separator: "\n"), nil, "linux.devices") }
        try resources(linux["resources"], read: read, devices: devices, add: add)
        if let personality = try read.object(linux["personality"], "linux.personality", known: ["domain", "flags"]) {
            let domain = try read.string(personality["domain"], "linux.personality.domain") ?? ""
            guard ["LINUX", "LINUX32"].contains(domain) else { throw read.refuse("linux.personality.domain", "unknown domain \(domain).") }
            try read.unsupported(personality["flags"], "linux.personality.flags")
            add("Exec/Personality", domain == "LINUX32" ? "x86" : "x86-64", nil, "linux.personality")
        }
        if runtime, let cgroupsPath = try read.string(linux["cgroupsPath"], "linux.cgroupsPath"), !cgroupsPath.isEmpty {
            guard !cgroupsPath.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
                throw read.refuse("linux.cgroupsPath", "may not contain . or .. components.")
            }
            add("OCI/CgroupPath", cgroupsPath, nil, "linux.cgroupsPath")
        } else {
            try read.unsupported(linux["cgroupsPath"], "linux.cgroupsPath")
        }
        if let sysctl = try read.object(linux["sysctl"], "linux.sysctl", known: nil) {
            var lines: [String] = []
            for (key, value) in sysctl.sorted(by: { $0.key < $1.key }) {
                guard let text = value.string, !text.contains("\n"), !key.contains("=") else { throw read.refuse("linux.sysctl.\(key)", "expected a string.") }
                lines.append("\(key)=\(text)")
            }
            if !lines.isEmpty { add("OCI/Sysctls", lines.joined(separator: "\n"), nil, "linux.sysctl") }
        }
        if let seccomp = linux["seccomp"], seccomp != .null {
            let profile = try SeccompProfile(seccomp, read: read)
            // --oci-bundle has nobody to hand a listener to (systemd-nspawn has no SCMP_ACT_NOTIFY either).
            guard runtime || !profile.notifies else { throw read.refuse("linux.seccomp", "SCMP_ACT_NOTIFY is supported by \(RuntimeInvocation.name) only.") }
            add("OCI/SeccompProfile", seccomp.text, nil, "linux.seccomp")
        }
        if let propagation = try read.string(linux["rootfsPropagation"], "linux.rootfsPropagation"), !propagation.isEmpty {
            // A machine's mounts are private: they share nothing with the host's (RootPropagation).
            let name = propagation.hasPrefix("r") ? String(propagation.dropFirst()) : propagation
            guard RootPropagation(rawValue: name) != nil else {
                throw read.refuse(
                    "linux.rootfsPropagation", "\(propagation) is not supported by swift-nspawn: a machine's mounts share no propagation with the host's.")
            }
            add("OCI/RootPropagation", name, nil, "linux.rootfsPropagation")
        }
        for field in ["mountLabel", "intelRdt", "netDevices", "memoryPolicy"] {
            try read.unsupported(linux[field], "linux.\(field)")
        }
    }

    /// A LinuxResources object on its own (the OCI runtime's `update --resources`), as the settings
    /// it stands for: what linux.resources in config.json takes, and nothing more.
    static func resourceProperties(_ value: JSONValue, path: String) throws(UserError) -> [ResourceProperty] {
        var properties: [ResourceProperty] = []
        var failure: UserError?
        try resources(value, read: Reader(path: path)) { key, setting, _, _ in
            guard key == "OCI/Property" else { return }
            do throws(UserError) { properties.append(try ResourceProperty.parse(setting)) } catch { failure = error }
        }
        if let failure { throw failure }
        return properties
    }

    /// `devices`: linux.devices, which allow rules may name besides swift-nspawn's own.
    private static func resources(
        _ value: JSONValue?, read: Reader, devices: [DeviceNode] = [], add: (String, String, [String]?, String) -> Void
    ) throws(UserError) {
        let known: Set<String> = ["memory", "pids", "devices", "cpu", "blockIO", "hugepageLimits", "network", "rdma", "unified"]
        guard let resources = try read.object(value, "linux.resources", known: known) else { return }
        if let memory = try read.object(resources["memory"], "linux.resources.memory", known: ["limit"]),
            let bytes = try read.integer(memory["limit"], "linux.resources.memory.limit", in: -1...Int64.max), bytes >= 0
        {
            add("OCI/Property", "MemoryMax=\(bytes)", nil, "linux.resources.memory.limit")
        }
        if let pids = try read.object(resources["pids"], "linux.resources.pids", known: ["limit"]),
            let limit = try read.integer(pids["limit"], "linux.resources.pids.limit", in: -1...Int64.max), limit > 0
        {
            add("OCI/Property", "TasksMax=\(limit)", nil, "linux.resources.pids.limit")
        }
        try deviceRules(resources["devices"], read: read, devices: devices)
        // The default weight asks for nothing.
        if let cpu = try read.object(
            resources["cpu"], "linux.resources.cpu", known: ["shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle", "burst"])
        {
            for (field, value) in cpu.sorted(by: { $0.key < $1.key }) where value != .null && !(field == "shares" && value.uint64 == 1024) {
                throw read.refuse("linux.resources.cpu.\(field)", "not supported by swift-nspawn.")
            }
        }
        for field in ["blockIO", "hugepageLimits", "network", "rdma", "unified"] {
            try read.unsupported(resources[field], "linux.resources.\(field)")
        }
    }
}

extension OCIBundle {
    /// linux.devices: nodes below /dev, made in the machine's /dev as its own are. One of swift-nspawn's
    /// own names must be that very device (it is made anyway).
    private static func devices(_ value: JSONValue?, read: Reader) throws(UserError) -> [DeviceNode] {
        var nodes: [DeviceNode] = []
        for (index, value) in try read.array(value, "linux.devices").enumerated() {
            let field = "linux.devices[\(index)]"
            let device = try read.object(value, field, known: ["type", "path", "major", "minor", "fileMode", "uid", "gid"]) ?? [:]
            let type = try read.string(device["type"], "\(field).type") ?? ""
            guard ["c", "u", "b"].contains(type) else { throw read.refuse("\(field).type", "expected c, u or b (a FIFO is not supported).") }
            let path = try read.string(device["path"], "\(field).path") ?? ""
            let components = path.split(separator: "/", omittingEmptySubsequences: false)
            guard path.hasPrefix("/dev/"), DeviceNode.isName(String(path.dropFirst("/dev/".count))), !["pts", "shm", "mqueue"].contains(components[2])
            else {
                throw read.refuse("\(field).path", "expected a path below /dev (not in /dev/pts, /dev/shm or /dev/mqueue).")
            }
            guard let major = try read.integer(device["major"], "\(field).major", in: 0...0xfff),
                let minor = try read.integer(device["minor"], "\(field).minor", in: 0...0xfffff)
            else { throw read.refuse(field, "expected major and minor.") }
            // Engines send the node's type bits with it (Podman: 020666); the permissions are what count.
            let mode = (try read.integer(device["fileMode"], "\(field).fileMode", in: 0...0o177777) ?? 0o666) & 0o777
            let uid = try read.integer(device["uid"], "\(field).uid", in: 0...Int64(UInt32.max)) ?? 0
            let gid = try read.integer(device["gid"], "\(field).gid", in: 0...Int64(UInt32.max)) ?? 0
            let node = DeviceNode(
                name: components.dropFirst(2).joined(separator: "/"), major: UInt32(major), minor: UInt32(minor), block: type == "b", mode: UInt32(mode),
                uid: UInt32(uid), gid: UInt32(gid))
            if let own = DeviceNode.standard.first(where: { $0.name == node.name }) {
                guard own.major == node.major && own.minor == node.minor && !node.block else {
                    throw read.refuse(field, "/dev/\(node.name) is swift-nspawn's own \(own.major):\(own.minor).")
                }
                continue
            }
            guard !nodes.contains(where: { $0.name == node.name }) else { throw read.refuse(field, "/dev/\(node.name) is listed twice.") }
            nodes.append(node)
        }
        return nodes
    }

    /// Denying every device, then allowing some, as engines write it: honoured where what it allows
    /// is what swift-nspawn's own policy allows (DeviceFilter.closed, and the console's node, whose
    /// place a pty takes) or a device of linux.devices (which the machine gets rwm, as with runc);
    /// anything else is not swift-nspawn's to grant.
    private static func deviceRules(_ value: JSONValue?, read: Reader, devices: [DeviceNode]) throws(UserError) {
        // Character devices by major and minor (nil: every minor).
        var allowed: [(major: UInt32, minor: UInt32?)] = []
        for (index, value) in try read.array(value, "linux.resources.devices").enumerated() {
            let field = "linux.resources.devices[\(index)]"
            let rule = try read.object(value, field, known: ["allow", "type", "major", "minor", "access"]) ?? [:]
            let allow = try read.bool(rule["allow"], "\(field).allow") ?? false
            let type = try read.string(rule["type"], "\(field).type") ?? "a"
            let major = try read.integer(rule["major"], "\(field).major", in: -1...Int64(UInt32.max))
            let minor = try read.integer(rule["minor"], "\(field).minor", in: -1...Int64(UInt32.max))
            let access = try read.string(rule["access"], "\(field).access") ?? "rwm"
            if !allow {
                // Deny all, first: the only denial that is swift-nspawn's own.
                guard index == 0, type == "a", major ?? -1 == -1, minor ?? -1 == -1 else {
                    throw read.refuse(field, "swift-nspawn denies every device but its own; a denial of some only is not supported.")
                }
                continue
            }
            guard type == "c" || type == "b", let major, major >= 0 else {
                throw read.refuse(field, "swift-nspawn allows the devices it makes, and no others.")
            }
            let node = (major: UInt32(major), minor: minor.flatMap { $0 < 0 ? nil : UInt32($0) })
            if devices.contains(where: { $0.block == (type == "b") && $0.major == node.major && $0.minor == node.minor }) {
                // linux.devices' own: allowed rwm whatever the rule says, as runc allows them.
                guard Set(access).isSubset(of: "rwm") else { throw read.refuse("\(field).access", "expected letters of rwm.") }
                continue
            }
            let known = (DeviceFilter.closed.rules.map { ($0.major, $0.minor) } + engineDevices).contains { $0.major == node.major && $0.minor == node.minor }
            // Narrower access than swift-nspawn's own to its devices is not something it does.
            guard type == "c", known, access == "rwm" else {
                throw read.refuse(field, "swift-nspawn allows the devices it makes, and no others.")
            }
            allowed.append(node)
        }
        // Rules that allow devices must allow all of swift-nspawn's: it makes them in every machine.
        guard !allowed.isEmpty else { return }
        for own in DeviceFilter.closed.rules where !allowed.contains(where: { $0.major == own.major && $0.minor == own.minor }) {
            throw read.refuse(
                "linux.resources.devices", "denies the device \(own.major):\(own.minor.map(String.init) ?? "*"), which every swift-nspawn machine has.")
        }
    }
}

extension CapabilitySet {
    /// The set these names make, nil where one is unknown.
    static func parseOrNil(_ names: [String]) -> CapabilitySet? {
        names.isEmpty ? CapabilitySet() : try? parse(names.joined(separator: ","), option: "")
    }
}
