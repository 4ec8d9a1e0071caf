#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import CSeccomp

/// The payload's seccomp filters as BPF programs, compiled by libseccomp once per policy and then
/// read from a cache only root can write: systemd-nspawn spends most of its start-up compiling the
/// same filters on every run. The allow-list is cached as SeccompRangeProgram re-emits it (less
/// than half the instructions). swift-nspawn's own policy is two programs, and the kernel applies the
/// stricter answer: the allow-list, and argument rules that the allow-list cannot carry. An OCI
/// seccomp profile is one more program, loaded with the flags it asks for.
public struct SeccompFilter: Equatable, Sendable {
    public static let cacheDirectory = "/var/cache/swift-nspawn/seccomp"
    /// Filters are compiled for these architectures, so 32-bit binaries meet the same policy.
    static let architectures = ["x86", "x32"]
    private static let magic = "swift-nspawn seccomp 1\n"
    /// Bumped whenever `compile` changes what it produces for the same policy.
    static let compilerRevision = 5

    /// seccomp(2)'s SECCOMP_FILTER_FLAG_* bits.
    static let specAllow: UInt32 = 1 << 2
    static let newListener: UInt32 = 1 << 3
    static let waitKillableReceive: UInt32 = 1 << 5

    /// The BPF programs, each a whole number of 8-byte sock_filter instructions.
    public var programs: [[UInt8]]
    /// What each program is loaded with. SPEC_ALLOW for swift-nspawn's own: the guest does not pay
    /// the speculative store bypass mitigation that seccomp would force on it.
    var flags = specAllow
    /// Loading yields a listener: the program has SCMP_ACT_NOTIFY rules.
    var listens = false

    /// From the cache, or compiled (and cached) when it has none for this policy.
    public static func load(_ policy: SeccompPolicy) throws -> SeccompFilter {
        try cached(key: cacheKey(policy), programs: 2) { try compile(policy) }
    }

    /// An OCI profile's filter, from the cache or compiled, with the profile's flags.
    static func load(_ profile: SeccompProfile) throws -> SeccompFilter {
        var filter = try cached(key: cacheKey(profile.cacheKey, architectures: ["native"] + profile.architectures), programs: 1) {
            try compile(profile)
        }
        filter.listens = profile.notifies
        // Killable waits exist only for a listener's calls; the kernel refuses the flag without one.
        filter.flags = filter.listens ? profile.flags | newListener : profile.flags & ~waitKillableReceive
        return filter
    }

    private static func cached(key: String, programs count: Int, compile: () throws -> SeccompFilter) throws -> SeccompFilter {
        let path = cachePath(key: key)
        if let programs = readCache(path, key: key), programs.count == count { return SeccompFilter(programs: programs) }
        let filter = try compile()
        writeCache(filter, to: path, key: key)
        return filter
    }

    static func cachePath(key: String) -> String { "\(cacheDirectory)/\(String(StableHash.fnv1a(key.utf8), radix: 16)).bpf" }

    static func cacheKey(_ policy: SeccompPolicy) -> String { cacheKey(policy.cacheKey, architectures: ["native"] + architectures) }

    static func cacheKey(_ inputs: String, architectures: [String]) -> String {
        let version = seccomp_version().map { "\($0.pointee.major).\($0.pointee.minor).\($0.pointee.micro)" } ?? "?"
        return "\(inputs);arch=\(architectures.joined(separator: ","));libseccomp=\(version);compiler=\(compilerRevision)"
    }

    // MARK: Compiling

    static func compile(_ policy: SeccompPolicy) throws -> SeccompFilter {
        let argumentRules = try Context(defaultAction: SCMP_ACT_ALLOW, architectures: architectures)
        for request in [UInt64(TIOCSTI), UInt64(TIOCLINUX)] {
            // Compared on the low 32 bits only: the kernel ignores the upper half of the request,
            // so TIOCSTI | 1 << 32 must not slip past (CVE-2019-10063).
            try argumentRules.add(errno(EPERM), "ioctl", [scmp_arg_cmp(arg: 1, op: SCMP_CMP_MASKED_EQ, datum_a: 0xffff_ffff, datum_b: request)])
        }
        if policy.suppressSync {
            for call in SeccompPolicy.syncCalls { try argumentRules.add(errno(0), call) }
        }
        // The audit subsystem is not namespaced; as systemd-nspawn, make it look absent.
        try argumentRules.add(
            errno(EAFNOSUPPORT), "socket",
            [
                scmp_arg_cmp(arg: 0, op: SCMP_CMP_EQ, datum_a: UInt64(AF_NETLINK), datum_b: 0),
                scmp_arg_cmp(arg: 2, op: SCMP_CMP_EQ, datum_a: 9, datum_b: 0),  // NETLINK_AUDIT (linux/netlink.h)
            ])
        return SeccompFilter(programs: [compact(try allowList(policy).export()), try argumentRules.export()])
    }

    /// Every call libseccomp knows, allowed or refused with EPERM as the policy says; any other
    /// number gets ENOSYS, as systemd-nspawn answers calls newer than its list.
    static func allowList(_ policy: SeccompPolicy) throws -> Context {
        let allowed = policy.allowed()
        let allowList = try Context(defaultAction: errno(ENOSYS), architectures: architectures)
        for name in SeccompPolicy.known.sorted() {
            // A keyring call the policy makes absent gets the default answer, ENOSYS: no rule.
            if !allowed.contains(name) && policy.keyringsAbsent && SeccompPolicy.keyringCalls.contains(name) { continue }
            try allowList.add(allowed.contains(name) ? SCMP_ACT_ALLOW : errno(EPERM), name)
        }
        return allowList
    }

    /// A profile's rules, in its order. A rule that does what the default does is no rule
    /// (libseccomp refuses it); conditions on one argument twice are a rule each, as runc makes them
    /// (libseccomp cannot AND them); a call this libseccomp does not know is skipped, as runc does.
    static func compile(_ profile: SeccompProfile) throws -> SeccompFilter {
        SeccompFilter(programs: [compact(try context(profile).export())])
    }

    /// The program with the same decisions in fewer instructions where it decides on the
    /// architecture and number alone (SeccompRangeProgram): the kernel verifies and JITs every
    /// instruction on every start.
    static func compact(_ program: [UInt8]) -> [UInt8] { SeccompRangeProgram.compacted(program) ?? program }

    /// The profile's rules in a libseccomp context (its pseudo filter code shows them: tests).
    static func context(_ profile: SeccompProfile) throws -> Context {
        let context = try Context(defaultAction: profile.defaultAction.value, architectures: profile.architectures)
        for rule in profile.rules where rule.action != profile.defaultAction {
            let conditions = rule.comparisons.map {
                scmp_arg_cmp(arg: $0.index, op: scmp_compare(rawValue: $0.op), datum_a: $0.value, datum_b: $0.valueTwo)
            }
            let indices = rule.comparisons.map(\.index)
            let rules = Set(indices).count == indices.count ? [conditions] : conditions.map { [$0] }
            for name in rule.names {
                for conditions in rules { try context.add(rule.action.value, name, conditions) }
            }
        }
        return context
    }

    static func errno(_ code: Int32) -> UInt32 { 0x0005_0000 | (UInt32(code) & 0xffff) }
    static let SCMP_ACT_ALLOW: UInt32 = 0x7fff_0000

    /// A libseccomp filter context for the native architecture and `architectures`. Every
    /// libseccomp call is checked: a rule that cannot be added fails the start, it never vanishes.
    final class Context {
        let ctx: scmp_filter_ctx

        init(defaultAction: UInt32, architectures: [String]) throws {
            guard let ctx = seccomp_init(defaultAction) else { throw UserError("seccomp_init() failed.") }
            self.ctx = ctx
            // Loading is ours to do (seccomp(2) below), without no_new_privs.
            try Self.check("seccomp_attr_set(SCMP_FLTATR_CTL_NNP)") { seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) }
            // A binary tree over the system call numbers: a few comparisons per call instead of a
            // walk through hundreds of rules, on every system call the machine makes.
            // Only a speed-up: a libseccomp older than 2.5 does not know it.
            try Self.check("seccomp_attr_set(SCMP_FLTATR_CTL_OPTIMIZE)", tolerating: [EINVAL, EOPNOTSUPP]) {
                seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
            }
            for name in architectures {
                let arch = seccomp_arch_resolve_name(name)
                guard arch != 0 else { throw UserError("libseccomp does not know the architecture \(name).") }
                // EEXIST: the native architecture is already in the filter.
                try Self.check("seccomp_arch_add", path: name, tolerating: [EEXIST]) { seccomp_arch_add(ctx, arch) }
            }
        }

        deinit { seccomp_release(ctx) }

        /// Adds a rule. A call an architecture does not have is skipped for it (EDOM), as systemd
        /// does; any other failure is an error.
        func add(_ action: UInt32, _ name: String, _ conditions: [scmp_arg_cmp] = []) throws {
            let number = seccomp_syscall_resolve_name(name)
            guard number != __NR_SCMP_ERROR else { return }
            try Self.check("seccomp_rule_add", path: name, tolerating: [EDOM]) {
                conditions.withUnsafeBufferPointer { seccomp_rule_add_array(ctx, action, number, UInt32($0.count), $0.baseAddress) }
            }
        }

        /// libseccomp returns -errno.
        private static func check(_ call: String, path: String? = nil, tolerating: [Int32] = [], _ body: () -> Int32) throws(SyscallError) {
            let r = body()
            guard r < 0, !tolerating.contains(-r) else { return }
            throw SyscallError(call, path: path, errno: .init(rawValue: -r))
        }

        func export() throws -> [UInt8] { try export(seccomp_export_bpf, "seccomp_export_bpf") }

        /// libseccomp's pseudo filter code: the rules as text.
        func exportPFC() throws -> String { String(decoding: try export(seccomp_export_pfc, "seccomp_export_pfc"), as: UTF8.self) }

        private func export(_ exporter: (scmp_filter_ctx?, Int32) -> Int32, _ name: String) throws -> [UInt8] {
            let fd = OwnedFD(try sys("memfd_create") { nsp_memfd_create("seccomp") })
            let r = exporter(ctx, fd.raw)
            if r < 0 { throw SyscallError(name, errno: .init(rawValue: -r)) }
            try sys("lseek", path: "seccomp") { lseek(fd.raw, 0, SEEK_SET) }
            return try FileSystem.readAll(fd: fd.raw, path: "seccomp")
        }
    }

    // MARK: Cache

    /// The cache file: a header naming the full key, then each program's length and bytes. It is
    /// used only when it and its directory belong to root and nobody else may write them.
    private static func readCache(_ path: String, key: String) -> [[UInt8]]? {
        guard ownedByRootOnly(cacheDirectory), let fd = try? FileSystem.open(path, O_RDONLY | O_NOFOLLOW) else { return nil }
        guard let st = try? FileSystem.status(fd, path: path), st.st_uid == 0, st.st_mode & 0o022 == 0,
            let bytes = try? FileSystem.readAll(fd: fd.raw, path: path)
        else { return nil }
        let header = Array((magic + key + "\n").utf8)
        guard bytes.count > header.count, Array(bytes[0..<header.count]) == header else { return nil }
        var programs: [[UInt8]] = []
        var offset = header.count
        while offset + 4 <= bytes.count {
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
            offset += 4
            guard length % 8 == 0, length > 0, offset + length <= bytes.count else { return nil }
            programs.append(Array(bytes[offset..<(offset + length)]))
            offset += length
        }
        return offset == bytes.count ? programs : nil
    }

    /// Written to a temporary file and renamed, so a reader sees a whole file or none.
    private static func writeCache(_ filter: SeccompFilter, to path: String, key: String) {
        guard (try? RuntimeDirectory.create(cacheDirectory, mode: 0o700)) != nil, ownedByRootOnly(cacheDirectory) else { return }
        var bytes = Array((magic + key + "\n").utf8)
        for program in filter.programs {
            let n = UInt32(program.count)
            bytes += [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 24)] + program
        }
        let temporary = "\(path).\(getpid()).tmp"
        guard let fd = try? FileSystem.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600) else { return }
        if (try? FileSystem.writeAll(fd: fd.raw, bytes, path: temporary)) != nil, fsync(fd.raw) == 0, rename(temporary, path) == 0 { return }
        _ = try? sys("unlink", path: temporary) { unlink(temporary) }
    }

    private static func ownedByRootOnly(_ directory: String) -> Bool {
        guard let st = try? FileSystem.stat(directory, followSymlinks: false) else { return false }
        return st.st_mode & S_IFMT == S_IFDIR && st.st_uid == 0 && st.st_mode & 0o022 == 0
    }

    // MARK: Loading

    /// Installs the programs in this process, while it still has CAP_SYS_ADMIN in its user
    /// namespace (no no_new_privs needed). Returns the listener when the filter has one.
    @discardableResult
    func install() throws -> OwnedFD? {
        var listener: OwnedFD?
        for program in programs {
            let fd = try sys("seccomp(SECCOMP_SET_MODE_FILTER)") {
                program.withUnsafeBytes { nsp_seccomp_load(flags, $0.baseAddress, $0.count) }
            }
            if listens { listener = OwnedFD(fd) }
        }
        return listener
    }
}
