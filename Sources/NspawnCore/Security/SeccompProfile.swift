#if canImport(Glibc)
    import Glibc
#endif

/// An OCI seccomp profile (config.json's linux.seccomp, the form engines turn Docker's and
/// containers-common's profiles into), read and checked. It is compiled into one more filter
/// (SeccompFilter.load), installed on top of swift-nspawn's own: the kernel applies the stricter
/// answer of the two, so a profile can narrow what a machine may do, never widen it.
struct SeccompProfile: Equatable, Sendable {
    /// What a rule does with a matching call.
    enum Action: Equatable, Sendable {
        case killThread, killProcess, trap, errno(UInt16), trace(UInt16), allow, log
        /// The call waits until the agent listening at listenerPath answers for it.
        case notify

        /// libseccomp's (and the kernel's) action value.
        var value: UInt32 {
            switch self {
            case .killThread: 0x0000_0000
            case .killProcess: 0x8000_0000
            case .trap: 0x0003_0000
            case .errno(let code): 0x0005_0000 | UInt32(code)
            case .trace(let code): 0x7ff0_0000 | UInt32(code)
            case .allow: 0x7fff_0000
            case .log: 0x7ffc_0000
            case .notify: 0x7fc0_0000
            }
        }
    }

    /// One comparison of a system call argument; for a masked compare, `value` is the mask.
    struct Comparison: Equatable, Sendable {
        var index: UInt32
        var value: UInt64
        var valueTwo: UInt64
        /// libseccomp's scmp_compare: 1 NE, 2 LT, 3 LE, 4 EQ, 5 GE, 6 GT, 7 MASKED_EQ.
        var op: UInt32
    }

    struct Rule: Equatable, Sendable {
        var names: [String]
        var action: Action
        var comparisons: [Comparison]
    }

    var defaultAction: Action
    /// libseccomp's names ("x86_64", "x86", "x32"...); the native one is always included.
    var architectures: [String]
    /// seccomp(2)'s SECCOMP_FILTER_FLAG_* bits.
    var flags: UInt32
    var rules: [Rule]
    /// Where the listener of a profile with SCMP_ACT_NOTIFY goes, with `listenerMetadata`.
    var listenerPath: String?
    var listenerMetadata: String = ""

    var notifies: Bool { rules.contains { $0.action == .notify } }

    static let actions: [(String, Action)] = [
        ("SCMP_ACT_KILL", .killThread), ("SCMP_ACT_KILL_THREAD", .killThread), ("SCMP_ACT_KILL_PROCESS", .killProcess), ("SCMP_ACT_TRAP", .trap),
        ("SCMP_ACT_ERRNO", .errno(UInt16(EPERM))), ("SCMP_ACT_TRACE", .trace(UInt16(EPERM))), ("SCMP_ACT_ALLOW", .allow), ("SCMP_ACT_LOG", .log),
        ("SCMP_ACT_NOTIFY", .notify),
    ]
    static let operators: [(String, UInt32)] = [
        ("SCMP_CMP_NE", 1), ("SCMP_CMP_LT", 2), ("SCMP_CMP_LE", 3), ("SCMP_CMP_EQ", 4), ("SCMP_CMP_GE", 5), ("SCMP_CMP_GT", 6), ("SCMP_CMP_MASKED_EQ", 7),
    ]
    static let architectureNames = [
        "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel", "mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390",
        "s390x", "parisc", "parisc64", "riscv64", "loongarch64",
    ]
    /// TSYNC is accepted and has nothing to do: the process that installs the filter has one thread.
    static let flagBits: [(String, UInt32)] = [
        ("SECCOMP_FILTER_FLAG_TSYNC", 0), ("SECCOMP_FILTER_FLAG_LOG", 1 << 1), ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 1 << 2),
        ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 1 << 5),
    ]
    /// What the process that installs the filter calls before its listener is handed on (sending
    /// it, and the memory management any code may do): waiting there for an agent that has no
    /// listener yet would never end.
    static let neverNotified: Set<String> = ["sendmsg", "socketcall", "brk", "mmap", "mmap2", "munmap", "mremap", "madvise", "mprotect"]

    /// Reads linux.seccomp.
    init(_ value: JSONValue, read: OCIBundle.Reader) throws(UserError) {
        let field = "linux.seccomp"
        let known: Set<String> = ["defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata", "syscalls"]
        let profile = try read.object(value, field, known: known) ?? [:]
        guard let defaultName = try read.string(profile["defaultAction"], "\(field).defaultAction") else {
            throw read.refuse("\(field).defaultAction", "missing.")
        }
        defaultAction = try Self.action(
            defaultName, errnoRet: profile["defaultErrnoRet"], field: "\(field).defaultAction", errnoField: "\(field).defaultErrnoRet", read: read)
        guard defaultAction != .notify else { throw read.refuse("\(field).defaultAction", "SCMP_ACT_NOTIFY cannot be the default action.") }

        architectures = []
        for (index, name) in try read.strings(profile["architectures"], "\(field).architectures").enumerated() {
            let short = name.hasPrefix("SCMP_ARCH_") ? String(name.dropFirst("SCMP_ARCH_".count)).lowercased() : ""
            guard Self.architectureNames.contains(short) else { throw read.refuse("\(field).architectures[\(index)]", "unknown architecture \(name).") }
            architectures.append(short)
        }
        flags = 0
        for (index, name) in try read.strings(profile["flags"], "\(field).flags").enumerated() {
            guard let bit = Self.flagBits.first(where: { $0.0 == name })?.1 else { throw read.refuse("\(field).flags[\(index)]", "unknown flag \(name).") }
            flags |= bit
        }

        rules = []
        for (index, entry) in try read.array(profile["syscalls"], "\(field).syscalls").enumerated() {
            let at = "\(field).syscalls[\(index)]"
            let syscall = try read.object(entry, at, known: ["names", "action", "errnoRet", "args", "comment"]) ?? [:]
            let names = try read.strings(syscall["names"], "\(at).names")
            guard !names.isEmpty else { throw read.refuse("\(at).names", "missing.") }
            guard let actionName = try read.string(syscall["action"], "\(at).action") else { throw read.refuse("\(at).action", "missing.") }
            let action = try Self.action(actionName, errnoRet: syscall["errnoRet"], field: "\(at).action", errnoField: "\(at).errnoRet", read: read)
            if action == .notify, let name = names.first(where: Self.neverNotified.contains) {
                throw read.refuse("\(at).names", "SCMP_ACT_NOTIFY is not supported for \(name).")
            }
            var comparisons: [Comparison] = []
            for (number, argument) in try read.array(syscall["args"], "\(at).args").enumerated() {
                let place = "\(at).args[\(number)]"
                let members = try read.object(argument, place, known: ["index", "value", "valueTwo", "op"]) ?? [:]
                guard let index = try read.integer(members["index"], "\(place).index", in: 0...5) else { throw read.refuse("\(place).index", "missing.") }
                guard let opName = try read.string(members["op"], "\(place).op"), let op = Self.operators.first(where: { $0.0 == opName })?.1 else {
                    throw read.refuse("\(place).op", "expected one of \(Self.operators.map(\.0).joined(separator: ", ")).")
                }
                comparisons.append(
                    Comparison(
                        index: UInt32(index), value: try read.unsigned(members["value"], "\(place).value") ?? 0,
                        valueTwo: try read.unsigned(members["valueTwo"], "\(place).valueTwo") ?? 0, op: op))
            }
            rules.append(Rule(names: names, action: action, comparisons: comparisons))
        }

        listenerPath = try read.string(profile["listenerPath"], "\(field).listenerPath").flatMap { $0.isEmpty ? nil : $0 }
        listenerMetadata = try read.string(profile["listenerMetadata"], "\(field).listenerMetadata") ?? ""
        if notifies {
            guard let listenerPath, listenerPath.hasPrefix("/") else {
                throw read.refuse("\(field).listenerPath", "SCMP_ACT_NOTIFY needs the absolute path of the agent's socket.")
            }
        }
    }

    /// An action by its name; errnoRet (or defaultErrnoRet) only where the action returns an error.
    private static func action(
        _ name: String, errnoRet: JSONValue?, field: String, errnoField: String, read: OCIBundle.Reader
    ) throws(UserError) -> Action {
        guard let action = actions.first(where: { $0.0 == name })?.1 else {
            throw read.refuse(field, "unknown action \(name).")
        }
        let code = try read.integer(errnoRet, errnoField, in: 0...4095)
        switch (action, code) {
        case (_, nil): return action
        case (.errno, let code?): return .errno(UInt16(code))
        case (.trace, let code?): return .trace(UInt16(code))
        default: throw read.refuse(errnoField, "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return an error.")
        }
    }

    /// What identifies the compiled filter (SeccompFilter's cache): every input of the compiler.
    var cacheKey: String {
        let rules = rules.map { rule in
            let comparisons = rule.comparisons.map { "\($0.index)\($0.op):\($0.value):\($0.valueTwo)" }.joined(separator: "&")
            return "\(rule.names.joined(separator: ","))=\(String(rule.action.value, radix: 16))?\(comparisons)"
        }
        return "oci;default=\(String(defaultAction.value, radix: 16));arch=\(architectures.joined(separator: ","));rules=\(rules.joined(separator: "|"))"
    }

    /// The "container process state" the agent at listenerPath gets with the listener (runtime-spec
    /// config-linux.md, seccomp): `pid` is the process the filter holds, `state` the container's.
    func listenerMessage(pid: Int32, state: JSONValue) -> String {
        JSONValue.object([
            "ociVersion": .string(RuntimeInvocation.specVersion), "fds": .array([.string("seccompFd")]), "pid": .number(pid),
            "metadata": .string(listenerMetadata), "state": state,
        ]).text
    }
}
