#if canImport(Glibc)
    import Glibc
#endif

/// --oci-bundle=PATH: an OCI runtime bundle (its config.json and root file system) read as the
/// machine's settings, as systemd-nspawn reads one: the root directory, the process, the mounts,
/// the namespaces and limits become the options that mean the same, carried in like a trusted
/// .nspawn file (the command line wins; no .nspawn file is read). A field swift-nspawn cannot
/// honour is refused naming it, never dropped.
enum OCIBundle {
    /// The mounts an OCI runtime makes itself and swift-nspawn makes its own way (destination, types).
    static let apiMounts: [String: Set<String>] = [
        "/proc": ["proc"], "/dev": ["tmpfs"], "/dev/pts": ["devpts"], "/dev/shm": ["tmpfs"], "/dev/mqueue": ["mqueue"], "/sys": ["sysfs"],
        "/sys/fs/cgroup": ["cgroup", "cgroup2"],
    ]

    static func load(_ bundle: String) throws(UserError) -> SettingsFile {
        guard let resolved = realpath(bundle, nil) else {
            throw UserError("Failed to resolve OCI bundle path \(bundle): \(SyscallError.last("realpath").errno.message)")
        }
        let directory = String(cString: resolved)
        free(resolved)
        let path = "\(directory)/config.json"
        let bytes: [UInt8]
        switch Result(catching: { () throws(SyscallError) -> [UInt8]? in
            let file = try FileSystem.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            let st = try FileSystem.status(file, path: path)
            guard st.st_mode & S_IFMT == S_IFREG, st.st_size <= 4 << 20 else { return nil }
            return try FileSystem.readAll(fd: file.raw, path: path)
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
        return SettingsFile(path: path, trusted: true, assignments: try assignments(document, bundle: directory, path: path), warnings: [])
    }

    /// The settings the document stands for, each labelled with its field.
    static func assignments(_ document: JSONValue, bundle: String, path: String) throws(UserError) -> [SettingsFile.Assignment] {
        var result: [SettingsFile.Assignment] = []
        func add(_ key: String, _ value: String = "", words: [String]? = nil, field: String) {
            let parts = key.split(separator: "/")
            result.append(.init(section: String(parts[0]), key: String(parts[1]), value: value, line: 0, words: words, field: field))
        }
        func refuse(_ field: String, _ reason: String) -> UserError { UserError("\(path): \(field): \(reason)") }
        func unsupported(_ field: String, _ value: JSONValue?) throws(UserError) {
            guard let value, value != .null else { return }
            switch value {
            case .string(let text) where text.isEmpty: return
            case .array(let items) where items.isEmpty: return
            case .object(let members) where members.isEmpty: return
            default: throw refuse(field, "not supported by swift-nspawn.")
            }
        }
        func strings(_ value: JSONValue?, _ field: String) throws(UserError) -> [String] {
            guard let value, value != .null else { return [] }
            guard let items = value.array else { throw refuse(field, "expected an array of strings.") }
            var texts: [String] = []
            for item in items {
                guard let text = item.string else { throw refuse(field, "expected an array of strings.") }
                texts.append(text)
            }
            return texts
        }

        guard document.object != nil else { throw refuse("(document)", "expected an object.") }
        guard let version = document["ociVersion"]?.string, version.hasPrefix("1.") else {
            throw refuse("ociVersion", "a version 1.x of the OCI runtime specification is needed.")
        }
        guard let rootPath = document["root"]?["path"]?.string, !rootPath.isEmpty else { throw refuse("root.path", "missing.") }
        add("OCI/Directory", rootPath.hasPrefix("/") ? rootPath : "\(bundle)/\(rootPath)", field: "root.path")
        if document["root"]?["readonly"]?.bool == true { add("Files/ReadOnly", "yes", field: "root.readonly") }
        if let hostname = document["hostname"]?.string, !hostname.isEmpty { add("Exec/Hostname", hostname, field: "hostname") }
        try unsupported("domainname", document["domainname"])
        try unsupported("hooks", document["hooks"])

        if let process = document["process"], process != .null {
            if let terminal = process["terminal"]?.bool { add("OCI/Console", terminal ? "interactive" : "pipe", field: "process.terminal") }
            let arguments = try strings(process["args"], "process.args")
            guard !arguments.isEmpty else { throw refuse("process.args", "missing or empty.") }
            add("Exec/Parameters", words: arguments, field: "process.args")
            let environment = try strings(process["env"], "process.env")
            if !environment.isEmpty { add("Exec/Environment", words: environment, field: "process.env") }
            if let cwd = process["cwd"]?.string, cwd != "/" { add("Exec/WorkingDirectory", cwd, field: "process.cwd") }
            if let user = process["user"] {
                let uid = user["uid"]?.uint64 ?? 0
                let gid = user["gid"]?.uint64 ?? 0
                if uid != 0 || gid != 0 {
                    guard uid == gid else {
                        throw refuse("process.user.gid", "differs from uid; swift-nspawn takes the user's group from the machine's /etc/passwd.")
                    }
                    add("Exec/User", "\(uid)", field: "process.user.uid")
                }
                try unsupported("process.user.additionalGids", user["additionalGids"])
                if let umask = user["umask"], umask != .null, umask.uint64 != 0o022 {
                    throw refuse("process.user.umask", "only the default 0022 is supported.")
                }
            }
            if let capabilities = process["capabilities"], capabilities != .null {
                let bounding = CapabilitySet.parseOrNil(try strings(capabilities["bounding"], "process.capabilities.bounding"))
                guard let bounding else { throw refuse("process.capabilities.bounding", "unknown capability.") }
                for set in ["effective", "permitted", "inheritable"] {
                    let names = try strings(capabilities[set], "process.capabilities.\(set)")
                    guard let other = CapabilitySet.parseOrNil(names), other.isSubset(of: bounding) else {
                        throw refuse("process.capabilities.\(set)", "must be part of the bounding set (swift-nspawn keeps one set).")
                    }
                }
                add("Exec/Capability", words: bounding.isEmpty ? [] : ["\(bounding)"], field: "process.capabilities.bounding")
                let dropped = CapabilitySet.all.subtracting(bounding)
                if !dropped.isEmpty { add("Exec/DropCapability", words: ["\(dropped)"], field: "process.capabilities.bounding") }
                let ambient = try strings(capabilities["ambient"], "process.capabilities.ambient")
                if !ambient.isEmpty { add("Exec/AmbientCapability", words: [ambient.joined(separator: ",")], field: "process.capabilities.ambient") }
            }
            for (index, limit) in (process["rlimits"]?.array ?? []).enumerated() {
                guard let type = limit["type"]?.string, let soft = limit["soft"]?.uint64, let hard = limit["hard"]?.uint64 else {
                    throw refuse("process.rlimits[\(index)]", "expected type, soft and hard.")
                }
                let name = type.hasPrefix("RLIMIT_") ? String(type.dropFirst("RLIMIT_".count)) : type
                guard ResourceLimit.names.contains(where: { $0.0 == name }) else { throw refuse("process.rlimits[\(index)].type", "unknown limit \(type).") }
                let text = { (value: UInt64) in value == UInt64.max ? "infinity" : "\(value)" }
                add("Exec/Limit\(name)", "\(text(soft)):\(text(hard))", field: "process.rlimits[\(index)]")
            }
            if let flag = process["noNewPrivileges"]?.bool { add("Exec/NoNewPrivileges", flag ? "yes" : "no", field: "process.noNewPrivileges") }
            if let score = process["oomScoreAdj"]?.int64 { add("Exec/OOMScoreAdjust", "\(score)", field: "process.oomScoreAdj") }
            for field in ["apparmorProfile", "selinuxLabel", "ioPriority", "scheduler", "execCPUAffinity"] {
                try unsupported("process.\(field)", process[field])
            }
        }

        for (index, mount) in (document["mounts"]?.array ?? []).enumerated() {
            let field = "mounts[\(index)]"
            guard let destination = mount["destination"]?.string, destination.hasPrefix("/") else {
                throw refuse("\(field).destination", "expected an absolute path.")
            }
            let type = mount["type"]?.string ?? ""
            let options = try strings(mount["options"], "\(field).options")
            if OCIBundle.apiMounts[destination]?.contains(type) == true { continue }
            try unsupported("\(field).uidMappings", mount["uidMappings"])
            try unsupported("\(field).gidMappings", mount["gidMappings"])
            let propagation: Set<String> = ["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"]
            if type == "bind" || options.contains("bind") || options.contains("rbind") {
                guard let source = mount["source"]?.string, !source.isEmpty else { throw refuse("\(field).source", "missing.") }
                let other = options.filter { !["bind", "rbind", "ro", "rw"].contains($0) && !propagation.contains($0) }
                guard other.isEmpty else { throw refuse("\(field).options", "\(other.joined(separator: ",")) not supported for binds.") }
                let readOnly = options.contains("ro")
                add(
                    readOnly ? "Files/BindReadOnly" : "Files/Bind",
                    "\(source.hasPrefix("/") ? source : "\(bundle)/\(source)"):\(destination):\(options.contains("rbind") ? "rbind" : "norbind")",
                    field: field)
            } else if type == "tmpfs" {
                let flags: Set<String> = ["nosuid", "nodev", "noexec", "rw", "strictatime", "relatime", "noatime"]
                let data = options.filter { !flags.contains($0) && !propagation.contains($0) }
                add("Files/TemporaryFileSystem", data.isEmpty ? destination : "\(destination):\(data.joined(separator: ","))", field: field)
            } else {
                throw refuse(field, "a \(type.isEmpty ? "mount without a type" : "\(type) mount") on \(destination) is not supported by swift-nspawn.")
            }
        }

        let linux = document["linux"] ?? .null
        // Each type listed, with the path to join ("" for a new one).
        var namespaces: [String: String] = [:]
        for (index, namespace) in (linux["namespaces"]?.array ?? []).enumerated() {
            guard let type = namespace["type"]?.string else { throw refuse("linux.namespaces[\(index)].type", "missing.") }
            namespaces[type] = namespace["path"]?.string ?? ""
        }
        for type in ["pid", "mount", "ipc", "uts"] {
            guard namespaces.keys.contains(type) else {
                throw refuse("linux.namespaces", "swift-nspawn always gives a machine a \(type) namespace of its own.")
            }
            if let path = namespaces[type], !path.isEmpty {
                throw refuse("linux.namespaces", "joining a \(type) namespace (\(path)) is not supported by swift-nspawn.")
            }
        }
        if let unknown = namespaces.keys.first(where: { !["pid", "mount", "ipc", "uts", "network", "user", "cgroup"].contains($0) }) {
            throw refuse("linux.namespaces", "a \(unknown) namespace is not supported by swift-nspawn.")
        }
        switch namespaces["network"] {
        case nil: add("Network/Private", "no", field: "linux.namespaces")
        case .some(let path) where !path.isEmpty: add("OCI/NetworkNamespacePath", path, field: "linux.namespaces")
        default: add("Network/Private", "yes", field: "linux.namespaces")
        }
        if namespaces.keys.contains("user") {
            let uids = linux["uidMappings"]?.array ?? []
            let gids = linux["gidMappings"]?.array ?? []
            if uids.isEmpty && gids.isEmpty {
                add("Exec/PrivateUsers", "pick", field: "linux.namespaces")
            } else {
                guard uids.count == 1, gids.count == 1, uids[0]["containerID"]?.uint64 == 0, uids == gids, let host = uids[0]["hostID"]?.uint64,
                    let size = uids[0]["size"]?.uint64
                else {
                    throw refuse("linux.uidMappings", "swift-nspawn maps one range from 0, the same for users and groups.")
                }
                add("Exec/PrivateUsers", "\(host):\(size)", field: "linux.uidMappings")
            }
        } else {
            add("Exec/PrivateUsers", "no", field: "linux.namespaces")
        }
        // Those swift-nspawn masks anyway are masked its way (an empty file over the entry).
        for path in try strings(linux["maskedPaths"], "linux.maskedPaths") where !MountPlan.maskedProcEntries.contains(path) {
            add("Files/Inaccessible", words: [path], field: "linux.maskedPaths")
        }
        let readOnly = MountPlan.readOnlyProcEntries + ["/proc/sys", "/proc/sysrq-trigger"] + MountPlan.maskedProcEntries
        for path in try strings(linux["readonlyPaths"], "linux.readonlyPaths") where !readOnly.contains(path) {
            throw refuse("linux.readonlyPaths", "\(path) is not one swift-nspawn makes read-only.")
        }
        if let resources = linux["resources"], resources != .null {
            for (name, value) in resources.object ?? [:] {
                switch name {
                case "memory":
                    for (key, limit) in value.object ?? [:] {
                        guard key == "limit", let bytes = limit.int64 else { throw refuse("linux.resources.memory.\(key)", "not supported by swift-nspawn.") }
                        if bytes >= 0 { add("OCI/Property", "MemoryMax=\(bytes)", field: "linux.resources.memory.limit") }
                    }
                case "pids":
                    guard let limit = value["limit"]?.int64, value.object?.count == 1 else { throw refuse("linux.resources.pids", "expected a limit.") }
                    if limit > 0 { add("OCI/Property", "TasksMax=\(limit)", field: "linux.resources.pids.limit") }
                case "devices":
                    // Denying every device is swift-nspawn's own policy; anything else is not.
                    for (index, rule) in (value.array ?? []).enumerated() where !(rule["allow"]?.bool == false && rule["type"] == nil && rule["major"] == nil) {
                        throw refuse("linux.resources.devices[\(index)]", "swift-nspawn allows the devices it makes, and no others.")
                    }
                default:
                    try unsupported("linux.resources.\(name)", value)
                }
            }
        }
        if let personality = linux["personality"]?["domain"]?.string {
            guard ["LINUX", "LINUX32"].contains(personality) else { throw refuse("linux.personality.domain", "unknown domain \(personality).") }
            add("Exec/Personality", personality == "LINUX32" ? "x86" : "x86-64", field: "linux.personality")
        }
        for field in ["sysctl", "seccomp", "cgroupsPath", "rootfsPropagation", "mountLabel", "intelRdt", "timeOffsets", "devices"] {
            try unsupported("linux.\(field)", linux[field])
        }
        return result
    }
}

extension CapabilitySet {
    /// The set these names make, nil where one is unknown.
    static func parseOrNil(_ names: [String]) -> CapabilitySet? {
        names.isEmpty ? CapabilitySet() : try? parse(names.joined(separator: ","), option: "")
    }
}
