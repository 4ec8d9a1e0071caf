#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The machine's cgroup, made directly in the host's cgroup2 hierarchy (a host without systemd, or
/// until delegation over sd-bus takes over). It sits below swift-nspawn's own cgroup, belongs to the
/// machine's root so the guest can manage its subtree, and is removed, with anything the guest made
/// below it, when the machine ends.
public final class MachineCgroup {
    static let cgroup2Magic: Int = 0x6367_7270

    /// Absolute path on the host, e.g. /sys/fs/cgroup/unified/machine-web.
    public let path: String
    /// An O_DIRECTORY fd for clone3(CLONE_INTO_CGROUP): the machine is born in its cgroup.
    let fd: OwnedFD
    private var removed = false

    private init(path: String, fd: OwnedFD) {
        self.path = path
        self.fd = fd
    }

    /// Where cgroup2 is mounted: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
    static func findHierarchy() -> String? {
        ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"].first { candidate in
            var fs = statfs()
            return statfs(candidate, &fs) == 0 && Int(fs.f_type) == cgroup2Magic
        }
    }

    /// This process's cgroup2 path, from the "0::" line of /proc/self/cgroup.
    static func ownPath() throws -> String {
        let text = try FileSystem.readFile("/proc/self/cgroup")
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else {
            throw UserError("/proc/self/cgroup has no cgroup2 entry.")
        }
        return String(line.dropFirst(3))
    }

    /// A cgroup at an absolute path (the "payload" cgroup in a scope systemd delegated to us), made
    /// ready for a machine: depth limit, device filter, owned by the machine's root.
    public static func create(at path: String, machine name: String, owner: UInt32) throws -> MachineCgroup {
        if mkdir(path, 0o755) != 0 {
            guard Glibc.errno == EEXIST else { throw SyscallError.last("mkdir", path: path) }
            // A leftover of a run that was SIGKILLed: reuse it only if nothing lives in it.
            guard !isPopulated(path) else { throw UserError("Machine '\(name)' already exists: its cgroup \(path) is in use.") }
            removeTree(path)
            try sys("mkdir", path: path) { mkdir(path, 0o755) }
        }
        let cgroup = MachineCgroup(path: path, fd: try FileSystem.open(path, O_RDONLY | O_DIRECTORY))
        // Host-root-owned limits the guest cannot raise: how deep its subtree may go.
        _ = try? FileSystem.write("\(maximumDepth - 1)", to: "\(path)/cgroup.max.depth")
        // Before anything lives in it: the only device nodes its processes may open or make.
        let program = DeviceFilter.closed.bytes
        if program.withUnsafeBytes({ nsp_attach_device_filter(cgroup.fd.raw, $0.baseAddress, $0.count) }) != 0 {
            let error = SyscallError.last("bpf(BPF_PROG_ATTACH)", path: path)
            // Inside a machine (swift-nspawn nested), bpf() is its filter's to refuse, and the device
            // policy of the machine around us already covers every cgroup below ours.
            if !(error.errno == .notPermitted && Self.insideMachine) {
                cgroup.remove()
                throw error
            }
        }
        if owner != 0 {
            // What a delegated subtree needs (cgroups(7), "Delegation"): the directory and the files
            // that move processes and enable controllers, owned by the delegatee.
            for entry in [".", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
                let file = "\(path)/\(entry)"
                if chown(file, owner, owner) != 0 {
                    let error = SyscallError.last("chown", path: file)
                    cgroup.remove()
                    throw error
                }
            }
        }
        return cgroup
    }

    /// Whether we run inside a machine: its manager says so in /run/host (systemd's container interface).
    static var insideMachine: Bool {
        FileSystem.exists("/run/host/container-manager")
    }

    /// Kills whatever is left, waits (bounded) until the cgroup is empty, and removes it and its children.
    public func remove() {
        guard !removed else { return }
        removed = true
        if Self.isPopulated(path) {
            _ = try? FileSystem.write("1", to: "\(path)/cgroup.kill")
            Self.waitUntilEmpty(path, timeoutMilliseconds: 2000)
        }
        Self.removeTree(path)
    }

    /// Writes resource settings into the cgroup's own files. A controller the parent does not enable
    /// for us has no files here: that setting is skipped with a warning, never silently.
    /// The warning shows even with --quiet: a limit asked for and not in force must not go unsaid.
    func apply(_ properties: [ResourceProperty]) throws {
        for property in properties {
            let (file, value, controller) = property.cgroupFile
            guard FileSystem.exists("\(path)/\(file)") else {
                printError("The cgroup controller \(controller) is not enabled for \(path); --property=\(property.busProperty.0)= is not applied.")
                continue
            }
            try FileSystem.write(value, to: "\(path)/\(file)")
        }
    }

    /// Moves this process into a cgroup, making it if needed.
    static func enter(_ path: String) throws(SyscallError) {
        if mkdir(path, 0o755) != 0 && Glibc.errno != EEXIST { throw SyscallError.last("mkdir", path: path) }
        try FileSystem.write("\(getpid())", to: "\(path)/cgroup.procs")
    }

    /// Enables for the children of a cgroup every controller it has, so the machine's payload (and
    /// the guest's manager below it) can use them. A controller that cannot be enabled is left out.
    static func delegateControllers(in path: String) {
        let available = ((try? FileSystem.readFile("\(path)/cgroup.controllers")) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
        for controller in available {
            _ = try? FileSystem.write("+\(controller)", to: "\(path)/cgroup.subtree_control")
        }
    }

    /// Moves a process in (cgroup.procs): for a machine that could not be born here.
    func adopt(_ pid: pid_t) throws(SyscallError) {
        try FileSystem.write("\(pid)", to: "\(path)/cgroup.procs")
    }

    /// cgroup.events holds "populated 1" while a process is inside (or below).
    private static func hasPopulatedLine(_ events: String) -> Bool {
        events.split(separator: "\n").contains("populated 1")
    }

    static func isPopulated(_ path: String) -> Bool {
        guard let events = try? FileSystem.readFile("\(path)/cgroup.events") else { return false }
        return hasPopulatedLine(events)
    }

    /// cgroup.events signals POLLPRI when "populated" changes (cgroups(7)): no sleeping in steps.
    static func waitUntilEmpty(_ path: String, timeoutMilliseconds: Int32) {
        guard let events = try? FileSystem.open("\(path)/cgroup.events", O_RDONLY) else { return }
        let deadline = Clock.monotonicNanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            _ = lseek(events.raw, 0, SEEK_SET)
            let text = (try? FileSystem.readAll(fd: events.raw, path: path)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let now = Clock.monotonicNanoseconds()
            guard hasPopulatedLine(text), now < deadline else { return }
            var pfd = pollfd(fd: events.raw, events: Int16(POLLPRI), revents: 0)
            _ = poll(&pfd, 1, Int32((deadline - now) / 1_000_000) + 1)
        }
    }

    /// rmdir children before parents (a cgroup's control files vanish with their directory), through
    /// directory descriptors: the guest owns the subtree and may nest it beyond PATH_MAX.
    static func removeTree(_ path: String) {
        guard let slash = path.lastIndex(of: "/"), let parent = try? FileSystem.open(String(path[..<slash]), O_RDONLY | O_DIRECTORY) else { return }
        removeTree(named: String(path[path.index(after: slash)...]), in: parent.raw, depth: 0)
    }

    private static func removeTree(named name: String, in parent: Int32, depth: Int) {
        if depth < maximumDepth, let dirfd = try? FileSystem.open(name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, at: parent),
            let dir = fdopendir(dup(dirfd.raw))
        {
            var children: [String] = []
            while let entry = readdir(dir) {
                let child = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if entry.pointee.d_type == UInt8(DT_DIR), child != ".", child != ".." { children.append(child) }
            }
            closedir(dir)
            for child in children { removeTree(named: child, in: dirfd.raw, depth: depth + 1) }
        }
        unlinkat(parent, name, AT_REMOVEDIR)
    }

    /// The guest may not nest deeper than this (cgroup.max.depth, set before the guest owns the
    /// cgroup); it also bounds our recursion when removing it.
    static let maximumDepth = 64

    deinit { remove() }
}
