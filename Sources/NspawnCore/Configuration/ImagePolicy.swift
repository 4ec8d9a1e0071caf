/// --image-policy=: for each kind of partition of the Discoverable Partitions Specification, what
/// a disk image may hold there and whether it is used (systemd.image-policy(7)): rules
/// "DESIGNATOR=FLAG+FLAG" joined by ":", an empty designator for the kinds no rule names, or one of
/// "*" (anything), "-" (nothing used) and "~" (nothing may be there). Kinds no rule names are
/// ignored.
public struct ImagePolicy: Equatable, Sendable {
    public enum Designator: String, CaseIterable, Sendable {
        case root, usr, home, srv, esp, xbootldr, swap, tmp, `var`
        case rootVerity = "root-verity", rootVeritySignature = "root-verity-sig"
        case usrVerity = "usr-verity", usrVeritySignature = "usr-verity-sig"
    }

    public struct Flags: OptionSet, Equatable, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// Present and used, neither Verity-protected nor LUKS-encrypted.
        public static let unprotected = Flags(rawValue: 1 << 0)
        public static let verity = Flags(rawValue: 1 << 1)
        public static let signed = Flags(rawValue: 1 << 2)
        public static let encrypted = Flags(rawValue: 1 << 3)
        /// Present but left alone.
        public static let unused = Flags(rawValue: 1 << 4)
        public static let absent = Flags(rawValue: 1 << 5)
        /// The partition's GPT read-only flag must be off (with read-only-on too: either way).
        public static let readOnlyOff = Flags(rawValue: 1 << 6)
        public static let readOnlyOn = Flags(rawValue: 1 << 7)
        public static let growFileSystemOff = Flags(rawValue: 1 << 8)
        public static let growFileSystemOn = Flags(rawValue: 1 << 9)
        public static let open: Flags = [.unprotected, .verity, .signed, .encrypted, .unused, .absent]
        public static let ignore: Flags = [.unused, .absent]

        static let names: [(String, Flags)] = [
            ("unprotected", .unprotected), ("verity", .verity), ("signed", .signed), ("encrypted", .encrypted), ("unused", .unused),
            ("absent", .absent), ("open", .open), ("ignore", .ignore), ("read-only-off", .readOnlyOff), ("read-only-on", .readOnlyOn),
            ("growfs-off", .growFileSystemOff), ("growfs-on", .growFileSystemOn),
        ]
    }

    var rules: [Designator: Flags]
    /// For the kinds no rule names.
    var fallback: Flags

    public func flags(for designator: Designator) -> Flags { rules[designator] ?? fallback }

    /// systemd-nspawn's own: the root and /usr may be anything or missing, the other file systems
    /// unprotected, encrypted or missing, swap and the Verity partitions' own rules unused.
    public static let containerDefault = ImagePolicy(
        rules: [
            .root: [.verity, .signed, .encrypted, .unprotected, .absent], .usr: [.verity, .signed, .encrypted, .unprotected, .absent],
            .home: [.encrypted, .unprotected, .absent], .srv: [.encrypted, .unprotected, .absent], .tmp: [.encrypted, .unprotected, .absent],
            .var: [.encrypted, .unprotected, .absent], .esp: [.unprotected, .absent], .xbootldr: [.unprotected, .absent],
        ],
        fallback: .ignore)

    public static func parse(_ text: String) throws(UserError) -> ImagePolicy {
        switch text {
        case "*": return ImagePolicy(rules: [:], fallback: .open)
        case "-": return ImagePolicy(rules: [:], fallback: .ignore)
        case "~": return ImagePolicy(rules: [:], fallback: .absent)
        default: break
        }
        // Kinds no rule names are left alone unless a default rule says otherwise.
        var policy = ImagePolicy(rules: [:], fallback: .ignore)
        var fallbackGiven = false
        for rule in text.split(separator: ":", omittingEmptySubsequences: false) {
            guard let equals = rule.firstIndex(of: "=") else {
                throw UserError("Failed to parse image policy: \(text): rule '\(rule)' has no '='.")
            }
            let name = String(rule[..<equals])
            var flags: Flags = []
            for flagName in rule[rule.index(after: equals)...].split(separator: "+") {
                guard let flag = Flags.names.first(where: { $0.0 == flagName })?.1 else {
                    throw UserError("Failed to parse image policy: \(text): unknown partition policy flag '\(flagName)'.")
                }
                flags.formUnion(flag)
            }
            if flags.isSubset(of: [.readOnlyOff, .readOnlyOn, .growFileSystemOff, .growFileSystemOn]) { flags.formUnion(.open) }
            if name.isEmpty {
                guard !fallbackGiven else { throw UserError("Failed to parse image policy: \(text): the default rule is given twice.") }
                fallbackGiven = true
                policy.fallback = flags
                continue
            }
            guard let designator = Designator(rawValue: name) else {
                throw UserError("Failed to parse image policy: \(text): unknown partition designator '\(name)'.")
            }
            guard policy.rules[designator] == nil else {
                throw UserError("Failed to parse image policy: \(text): partition '\(name)' is given twice.")
            }
            policy.rules[designator] = flags
        }
        return policy
    }
}
