#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The machine's cgroup, made directly in the host's cgroup2 hierarchy (a host without systemd, or
/// until delegation over sd-bus takes over). It sits below swift-nspawn's own cgroup, belongs to the
/// machine's root so the guest can manage its subtree, and is removed, with anything the guest made
/// below it, when the machine ends.
final class MachineCgroup {
    static let cgroup2Magic: Int = 0x6367_7270

    /// Absolute path on the host, e.g. /sys/fs/cgroup/unified/machine-web.
    public let path: String
    /// An O_DIRECTORY fd for clone3(CLONE_INTO_CGROUP): the machine is born in its cgroup.
    let fd: OwnedFD
    private let kernel: any Kernel
    private var removed = false

    private init(path: String, fd: OwnedFD, kernel: any Kernel) {
        self.path = path
        self.fd = fd
        self.kernel = kernel
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
    /// ready for a machine: depth limit, owned by the machine's root. Its device filter comes later
    /// (attachDeviceFilter), before the machine's PID 1 runs anything of the machine's.
    static func create(at path: String, machine name: String, owner: UInt32, kernel: any Kernel) throws -> MachineCgroup {
        do {
            try makeDirectory(path, kernel: kernel)
        } catch {
            guard error.errno == .fileExists else { throw error }
            // A leftover of a run that was SIGKILLed: reuse it only if nothing lives in it.
            guard !isPopulated(path, kernel: kernel) else { throw UserError("Machine '\(name)' already exists: its cgroup \(path) is in use.") }
            removeTree(path, kernel: kernel)
            try kernel.makeDirectory(path, in: nil, mode: 0o755, path: path)
        }
        let cgroup = MachineCgroup(path: path, fd: try kernel.open(path, in: nil, flags: O_RDONLY | O_DIRECTORY, mode: 0), kernel: kernel)
        do {
            // Host-root-owned limits the guest cannot raise: how deep its subtree may go.
            try? kernel.writeFile("\(maximumDepth - 1)", to: "\(path)/cgroup.max.depth")
            if owner != 0 {
                // What a delegated subtree needs (cgroups(7), "Delegation"): the directory and the
                // files that move processes and enable controllers, owned by the delegatee.
                for entry in [".", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
                    try kernel.changeOwner("\(path)/\(entry)", in: nil, uid: owner, gid: owner, path: "\(path)/\(entry)")
                }
            }
        } catch {
            cgroup.remove()
            throw error
        }
        return cgroup
    }

    /// The only device nodes the cgroup's processes may open or make. The kernel verifies the
    /// program as it loads it (~0.2 ms), so the supervisor attaches it while the outer child builds
    /// the tree, and PID 1 waits for it (SetupMessage.devicesFiltered) before it goes on to the
    /// machine's program: until then only our own setup runs in the cgroup, which opens no device.
    /// `required`: false only inside a machine (swift-nspawn nested), where bpf() is its filter's
    /// to refuse and the device policy of the machine around us covers every cgroup below ours.
    func attachDeviceFilter(_ filter: DeviceFilter, required: Bool) throws {
        do {
            try kernel.attachDeviceFilter(filter.bytes, to: fd, name: path)
        } catch {
            guard error.errno == .notPermitted && !required else { throw error }
        }
    }

    /// Hands the cgroup over (the OCI runtime's `create`): this process no longer removes it.
    func relinquish() { removed = true }

    /// Kills whatever is left, waits (bounded) until the cgroup is empty, and removes it and its children.
    public func remove() {
        guard !removed else { return }
        removed = true
        Self.remove(path, kernel: kernel)
    }

    /// remove(), for a cgroup by path: the OCI runtime's `delete` of one its `create` made.
    static func remove(_ path: String, kernel: any Kernel) {
        // Most machines leave nothing behind: then one rmdir does it. cgroup2 refuses it (EBUSY)
        // while a process or a cgroup below is left, and the longer way below takes over.
        if (try? kernel.remove(path, in: nil, directory: true, path: path)) != nil { return }
        if isPopulated(path, kernel: kernel) {
            try? kernel.writeFile("1", to: "\(path)/cgroup.kill")
            waitUntilEmpty(path, timeoutMilliseconds: 2000, kernel: kernel)
        }
        removeTree(path, kernel: kernel)
    }

    /// The PIDs of the processes in the cgroup and the cgroups the guest made below it (as deep as
    /// cgroup.max.depth lets them go), for the OCI runtime's `kill --all`.
    static func processes(_ path: String, depth: Int = 0) -> [pid_t] {
        var pids = ((try? FileSystem.readFile("\(path)/cgroup.procs")) ?? "").split(separator: "\n").compactMap { pid_t($0) }
        guard depth <= maximumDepth, let directory = try? FileSystem.open(path, O_RDONLY | O_DIRECTORY),
            let entries = try? FileSystem.entries(of: directory.raw, path: path)
        else { return pids }
        for (name, type) in entries where type == UInt8(DT_DIR) && name != "." && name != ".." {
            pids += processes("\(path)/\(name)", depth: depth + 1)
        }
        return pids
    }

    /// Writes resource settings into the cgroup's own files. A controller the parent does not enable
    /// for us has no files here: that setting is skipped with a warning, never silently.
    /// The warning shows even with --quiet: a limit asked for and not in force must not go unsaid.
    /// `strict`: a setting that cannot be applied is an error (the OCI runtime's resources).
    func apply(_ properties: [ResourceProperty], strict: Bool) throws {
        try Self.apply(properties, to: path, strict: strict, kernel: kernel)
    }

    /// apply(), for a cgroup by path: the OCI runtime's `update` of one its `create` made.
    static func apply(_ properties: [ResourceProperty], to path: String, strict: Bool, kernel: any Kernel) throws {
        for property in properties {
            let (file, value, controller) = property.cgroupFile
            guard kernel.exists("\(path)/\(file)") else {
                let problem = "The cgroup controller \(controller) is not enabled for \(path)"
                if strict { throw UserError("\(problem): the limit \(property.busProperty.0)= cannot be applied.") }
                printError("\(problem); --property=\(property.busProperty.0)= is not applied.")
                continue
            }
            try kernel.writeFile(value, to: "\(path)/\(file)")
        }
    }

    /// mkdir, and where the parent is missing, mkdir -p: an OCI runtime's cgroupsPath may name
    /// parents that do not exist yet (containerd's /NAMESPACE/ID). They stay, shared by the runtime's
    /// machines, with every controller they have enabled for their children, as runc leaves them.
    private static func makeDirectory(_ path: String, kernel: any Kernel) throws(SyscallError) {
        do {
            try kernel.makeDirectory(path, in: nil, mode: 0o755, path: path)
        } catch  where error.errno == .noSuchFileOrDirectory {
            var parent = ""
            for component in path.split(separator: "/").dropLast() {
                parent += "/" + component
                do {
                    try kernel.makeDirectory(parent, in: nil, mode: 0o755, path: parent)
                } catch  where error.errno == .fileExists {
                    continue
                }
                if let above = parent.lastIndex(of: "/") { delegateControllers(in: String(parent[..<above]), kernel: kernel) }
            }
            if let above = path.lastIndex(of: "/") { delegateControllers(in: String(path[..<above]), kernel: kernel) }
            try kernel.makeDirectory(path, in: nil, mode: 0o755, path: path)
        }
    }

    /// Moves this process into a cgroup, making it if needed.
    static func enter(_ path: String, kernel: any Kernel) throws(SyscallError) {
        do {
            try kernel.makeDirectory(path, in: nil, mode: 0o755, path: path)
        } catch {
            guard error.errno == .fileExists else { throw error }
        }
        try kernel.writeFile("\(getpid())", to: "\(path)/cgroup.procs")
    }

    /// Enables for the children of a cgroup every controller it has, so the machine's payload (and
    /// the guest's manager below it) can use them. A controller that cannot be enabled is left out.
    static func delegateControllers(in path: String, kernel: any Kernel) {
        let available = ((try? kernel.readFile("\(path)/cgroup.controllers")) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
        for controller in available {
            try? kernel.writeFile("+\(controller)", to: "\(path)/cgroup.subtree_control")
        }
    }

    /// Moves a process in (cgroup.procs): for a machine that could not be born here.
    func adopt(_ pid: pid_t) throws(SyscallError) {
        try kernel.writeFile("\(pid)", to: "\(path)/cgroup.procs")
    }

    /// cgroup.events holds "populated 1" while a process is inside (or below).
    private static func hasPopulatedLine(_ events: String) -> Bool {
        events.split(separator: "\n").contains("populated 1")
    }

    static func isPopulated(_ path: String, kernel: any Kernel) -> Bool {
        guard let events = try? kernel.readFile("\(path)/cgroup.events") else { return false }
        return hasPopulatedLine(events)
    }

    /// cgroup.events signals POLLPRI when "populated" changes (cgroups(7)): no sleeping in steps.
    static func waitUntilEmpty(_ path: String, timeoutMilliseconds: Int32, kernel: any Kernel) {
        guard let events = try? kernel.open("\(path)/cgroup.events", in: nil, flags: O_RDONLY, mode: 0) else { return }
        let deadline = Clock.monotonicNanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            let text = (try? kernel.readAll(events, name: path)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let now = Clock.monotonicNanoseconds()
            guard hasPopulatedLine(text), now < deadline else { return }
            _ = kernel.poll(events, events: Int16(POLLPRI), timeoutMilliseconds: Int32((deadline - now) / 1_000_000) + 1)
        }
    }

    /// rmdir children before parents (a cgroup's control files vanish with their directory), through
    /// directory descriptors: the guest owns the subtree and may nest it beyond PATH_MAX.
    static func removeTree(_ path: String, kernel: any Kernel) {
        guard let slash = path.lastIndex(of: "/") else { return }
        guard let parent = try? kernel.open(String(path[..<slash]), in: nil, flags: O_RDONLY | O_DIRECTORY, mode: 0) else {
            // No descriptor to be had (a start that failed for want of them): a cgroup that has none
            // below it goes by its path.
            try? kernel.remove(path, in: nil, directory: true, path: path)
            return
        }
        removeTree(named: String(path[path.index(after: slash)...]), in: parent, path: path, depth: 0, kernel: kernel)
    }

    private static func removeTree(named name: String, in parent: OwnedFD, path: String, depth: Int, kernel: any Kernel) {
        if depth < maximumDepth, let directory = try? kernel.open(name, in: parent, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW, mode: 0) {
            for child in (try? kernel.subdirectories(of: directory, name: path)) ?? [] {
                removeTree(named: child, in: directory, path: "\(path)/\(child)", depth: depth + 1, kernel: kernel)
            }
        }
        try? kernel.remove(name, in: parent, directory: true, path: path)
    }

    /// The guest may not nest deeper than this (cgroup.max.depth, set before the guest owns the
    /// cgroup); it also bounds our recursion when removing it.
    static let maximumDepth = 64

    deinit { remove() }
}
