#if canImport(Glibc)
    import Glibc
#endif

/// What PID 1 of the machine is started with beyond its namespaces: --oom-score-adjust=,
/// --rlimit=, --cpu-affinity= and --personality=, as systemd-nspawn 252 takes them.
public struct ProcessSettings: Equatable, Sendable {
    public var oomScoreAdjust: Int?
    public var resourceLimits: [ResourceLimit] = []
    public var cpuAffinity: [Int]?
    /// personality(2) persona: PER_LINUX32 for --personality=x86 on x86-64.
    public var personality: UInt?

    public init() {}

    /// From the supervisor, as the host's root, before PID 1 goes on (it passes them to all it
    /// starts): a higher hard limit needs privileges the machine does not have.
    func apply(to pid: pid_t, kernel: any Kernel) throws {
        for limit in resourceLimits { try kernel.setResourceLimit(of: pid, limit) }
        if let cpuAffinity { try kernel.setCPUAffinity(of: pid, cpus: cpuAffinity) }
    }

    /// The OOM score is inherited at clone: the supervisor takes PID 1's for the moment of its birth
    /// (a lower one needs CAP_SYS_RESOURCE, which the machine's root does not have, and /proc/PID
    /// of a process in another user namespace is not ours to write) and returns to its own after.
    func bornWithOOMScoreAdjust<T>(kernel: any Kernel, _ body: () throws -> T) throws -> T {
        guard let oomScoreAdjust else { return try body() }
        let own = try kernel.readFile("/proc/self/oom_score_adj").trimmingCharacters(in: "\n")
        do {
            try kernel.writeFile("\(oomScoreAdjust)", to: "/proc/self/oom_score_adj")
        } catch {
            guard error.errno == .permissionDenied else { throw error }
            throw UserError("--oom-score-adjust=\(oomScoreAdjust): a score this low needs CAP_SYS_RESOURCE, which swift-nspawn does not have here.")
        }
        defer {
            // Without CAP_SYS_RESOURCE the kernel may not let us back down; the machine is not
            // affected, only swift-nspawn itself keeps the machine's score.
            if (try? kernel.writeFile(own, to: "/proc/self/oom_score_adj")) == nil {
                printError("Could not return swift-nspawn's own OOM score to \(own); it keeps the machine's, \(oomScoreAdjust).")
            }
        }
        return try body()
    }

    static func parseOOMScoreAdjust(_ text: String) throws(UserError) -> Int {
        guard let value = Int(text), (-1000...1000).contains(value) else {
            throw UserError("Failed to parse --oom-score-adjust= value: \(text) (an integer from -1000 to 1000).")
        }
        return value
    }

    static func parseCPUAffinity(_ text: String) throws(UserError) -> [Int] {
        guard let list = ResourceProperty.parseList(text), !list.isEmpty, list.allSatisfy({ $0 < 8192 }) else {
            throw UserError("Failed to parse --cpu-affinity= value: \(text) (a list of CPUs such as 0-3,6).")
        }
        return list
    }

    /// systemd-nspawn's personalities: the machine's architecture as uname -m shows it.
    static func parsePersonality(_ text: String) throws(UserError) -> UInt? {
        switch text {
        case "x86-64", "x86_64": return nil  // the native one
        case "x86": return 0x0008  // PER_LINUX32
        default: throw UserError("Unknown or unsupported --personality= value: \(text); known: x86, x86-64.")
        }
    }
}

/// --rlimit=LIMIT=SOFT[:HARD]: LIMIT as RLIMIT_NOFILE or NOFILE, each value a number or infinity.
public struct ResourceLimit: Equatable, Sendable {
    public var resource: Int32
    public var soft: UInt64
    public var hard: UInt64

    static let names: [(String, Int32)] = [
        ("CPU", 0), ("FSIZE", 1), ("DATA", 2), ("STACK", 3), ("CORE", 4), ("RSS", 5), ("NPROC", 6), ("NOFILE", 7), ("MEMLOCK", 8),
        ("AS", 9), ("LOCKS", 10), ("SIGPENDING", 11), ("MSGQUEUE", 12), ("NICE", 13), ("RTPRIO", 14), ("RTTIME", 15),
    ]

    static func parse(_ text: String) throws(UserError) -> ResourceLimit {
        let bad = UserError("Failed to parse --rlimit= value: \(text) (LIMIT=SOFT[:HARD], such as RLIMIT_NOFILE=1024:4096).")
        guard let equals = text.firstIndex(of: "=") else { throw bad }
        var name = String(text[..<equals])
        if name.hasPrefix("RLIMIT_") { name.removeFirst("RLIMIT_".count) }
        guard let resource = names.first(where: { $0.0 == name })?.1 else {
            throw UserError("Unknown resource limit in --rlimit=\(text); known: \(names.map { "RLIMIT_\($0.0)" }.joined(separator: ", ")).")
        }
        let values = text[text.index(after: equals)...].split(separator: ":", omittingEmptySubsequences: false)
        func value(_ word: Substring) throws(UserError) -> UInt64 {
            if word == "infinity" { return UInt64.max }
            guard let number = UInt64(word) else { throw bad }
            return number
        }
        guard (1...2).contains(values.count) else { throw bad }
        let soft = try value(values[0])
        let hard = values.count == 2 ? try value(values[1]) : soft
        guard soft <= hard else { throw UserError("--rlimit=\(text): the soft limit is above the hard one.") }
        return ResourceLimit(resource: resource, soft: soft, hard: hard)
    }
}

/// A user given by number (an OCI bundle's process.user): its IDs and supplementary groups as they
/// are, with no name looked up in the machine's passwd.
public struct NumericIdentity: Equatable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]

    /// "UID:GID:GROUP,GROUP" (the groups may be empty).
    init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, let uid = UInt32(parts[0]), let gid = UInt32(parts[1]), uid != UInt32.max, gid != UInt32.max else { return nil }
        var groups: [UInt32] = []
        for group in parts[2].split(separator: ",") {
            guard let id = UInt32(group), id != UInt32.max else { return nil }
            groups.append(id)
        }
        (self.uid, self.gid, self.groups) = (uid, gid, groups)
    }
}
