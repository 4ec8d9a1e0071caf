#if canImport(Glibc)
    import Glibc
#endif

/// One container of the OCI runtime command line, as `create` leaves it in its directory under
/// --root: state.json (this record) and, until `start` opens it, exec.fifo, the gate its PID 1
/// waits at. What the container is now (created, running, stopped) is read off the kernel each
/// time, never stored: PID 1 is known by its PID and its start time, so a reused PID is not it.
struct ContainerRecord: Equatable {
    var id: String
    var bundle: String
    var rootfs: String
    var pid: Int32
    /// /proc/PID/stat's starttime (clock ticks after boot) of PID 1.
    var startTime: UInt64
    /// RFC 3339, in UTC with nanoseconds, as runc writes it.
    var created: String
    /// The machine's cgroup on the host (absolute), which `delete` empties and removes.
    var cgroup: String
    var annotations: [String: JSONValue]
    /// config.json's hooks, for `start` (startContainer, poststart) and `delete` (poststop).
    var hooks = RuntimeHooks()

    enum Status: String {
        case created, running, paused, stopped
    }

    static let stateFile = "state.json"
    static let gate = "exec.fifo"

    static func directory(root: String, id: String) -> String { "\(root)/\(id)" }

    var json: JSONValue {
        .object([
            "id": .string(id), "bundle": .string(bundle), "rootfs": .string(rootfs), "pid": .number(pid), "startTime": .number(startTime),
            "created": .string(created), "cgroup": .string(cgroup), "annotations": .object(annotations), "hooks": hooks.json,
        ])
    }

    /// Written to a new file and renamed into place: a reader sees the old record or the new one.
    func write(in directory: String) throws {
        try FileSystem.replace(directory + "/" + Self.stateFile, contents: json.text, mode: 0o600)
    }

    /// The record of container `id`; "does not exist" (the words containerd looks for) when there is none.
    static func read(root: String, id: String) throws -> ContainerRecord {
        let path = directory(root: root, id: id) + "/" + stateFile
        guard let text = try? FileSystem.readFile(path) else { throw UserError("container does not exist: \(id)") }
        guard let record = (try? JSONValue.parse(Array(text.utf8))).flatMap(ContainerRecord.init) else {
            throw UserError("\(path): not a state this runtime wrote.")
        }
        return record
    }

    /// Created while PID 1 waits at the gate, running once it went through, paused while its
    /// cgroup is frozen, stopped once it is gone (or a zombie, or its PID is another process's now).
    func status(root: String) -> Status {
        guard let stat = ProcessStat.read(pid), stat.startTime == startTime, stat.state != "Z", stat.state != "X" else { return .stopped }
        if frozen { return .paused }
        return FileSystem.exists(Self.directory(root: root, id: id) + "/" + Self.gate) ? .created : .running
    }

    /// Whether `pause` froze the machine's cgroup (cgroup.freeze, cgroup2's freezer).
    var frozen: Bool { (try? FileSystem.readFile(cgroup + "/cgroup.freeze"))?.hasPrefix("1") == true }

    /// The state the runtime specification defines, as `state` prints it (with runc's rootfs,
    /// created and owner, which go-runc reads).
    func state(root: String) -> JSONValue {
        let status = status(root: root)
        return state(status: status.rawValue, pid: status == .stopped ? 0 : pid)
    }

    /// `status` may be "creating" too: what the seccomp agent is told while `create` runs.
    func state(status: String, pid: Int32) -> JSONValue {
        .object([
            "ociVersion": .string(RuntimeInvocation.specVersion), "id": .string(id), "status": .string(status), "pid": .number(pid), "bundle": .string(bundle),
            "rootfs": .string(rootfs), "created": .string(created),
            "owner": .string(""), "annotations": .object(annotations),
        ])
    }
}

extension ContainerRecord {
    /// A record as `json` wrote it; nil for anything else. (In an extension: the memberwise
    /// initializer stays.)
    init?(_ json: JSONValue) {
        guard let id = json["id"]?.string, let bundle = json["bundle"]?.string, let rootfs = json["rootfs"]?.string,
            let pid = json["pid"]?.int64.flatMap(Int32.init(exactly:)), let startTime = json["startTime"]?.uint64, let created = json["created"]?.string,
            let cgroup = json["cgroup"]?.string, let annotations = json["annotations"]?.object,
            let hooks = try? RuntimeHooks(json["hooks"], read: OCIBundle.Reader(path: ContainerRecord.stateFile))
        else { return nil }
        self.init(
            id: id, bundle: bundle, rootfs: rootfs, pid: pid, startTime: startTime, created: created, cgroup: cgroup, annotations: annotations, hooks: hooks)
    }
}

/// What /proc/PID/stat says of a process: its state letter and start time.
struct ProcessStat: Equatable {
    var state: Character
    var startTime: UInt64

    static func read(_ pid: Int32) -> ProcessStat? {
        guard pid > 0, let text = try? FileSystem.readFile("/proc/\(pid)/stat") else { return nil }
        return parse(text)
    }

    /// The command name, in parentheses, may hold anything: the fields are counted after its last ")".
    static func parse(_ text: String) -> ProcessStat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // Field 3 (state) is the first after the name; field 22 (starttime) the 20th.
        guard fields.count >= 20, let state = fields[0].first, let startTime = UInt64(fields[19]) else { return nil }
        return ProcessStat(state: state, startTime: startTime)
    }
}
