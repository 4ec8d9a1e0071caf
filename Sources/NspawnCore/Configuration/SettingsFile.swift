#if canImport(Glibc)
    import Glibc
#endif

/// --settings=: whether a machine's .nspawn file is read, and how far it is believed.
public enum SettingsMode: String, Equatable, Sendable {
    /// Read; the command line wins where both say something.
    case yes
    case no
    /// Read; the file wins (systemd-nspawn@.service's mode).
    case override
    /// Read and trusted wherever it lies.
    case trusted

    static func parse(_ text: String) throws(UserError) -> SettingsMode {
        if let mode = SettingsMode(rawValue: text) { return mode }
        if let flag = Configuration.parseBooleanValue(text) { return flag ? .yes : .no }
        throw UserError("Failed to parse --settings= argument: \(text); known: yes, no, override, trusted.")
    }
}

/// A machine's NAME.nspawn file (systemd.nspawn(5)): [Exec], [Files] and [Network] keys, each the
/// counterpart of a command-line option and carried into the configuration through it, so that a
/// setting means and checks exactly what its option does. A file in /etc/systemd/nspawn or
/// /run/systemd/nspawn is trusted; one next to the tree or image is not, and then every key that
/// would give the machine more than the tree alone could ask for (mounts of host paths, capabilities,
/// the network, the ID range, limits) is ignored with a warning, as systemd-nspawn does.
struct SettingsFile: Equatable {
    struct Assignment: Equatable {
        var section: String
        var key: String
        var value: String
        var line: Int
        /// Words given as such (an OCI bundle's arrays), not split from `value`.
        var words: [String]? = nil
        /// Where it came from, where that is not a line (an OCI bundle's field, such as process.args).
        var field: String? = nil

        func place(in path: String) -> String { field.map { "\(path): \($0)" } ?? "\(path):\(line)" }
    }

    var path: String
    var trusted: Bool
    var assignments: [Assignment]
    /// Unknown sections and keys, by file and line (ignored, as systemd-nspawn ignores them).
    var warnings: [String]

    static let trustedDirectories = ["/etc/systemd/nspawn", "/run/systemd/nspawn"]
    static let sections = ["Exec", "Files", "Network"]

    /// The first NAME.nspawn of the trusted directories, else the one beside the tree or image
    /// (`beside`: not in a trusted directory).
    static func find(name: String, besides directory: String, trustAll: Bool) -> (path: String, trusted: Bool, beside: Bool)? {
        for trustedDirectory in trustedDirectories where FileSystem.exists("\(trustedDirectory)/\(name).nspawn") {
            return ("\(trustedDirectory)/\(name).nspawn", true, false)
        }
        let beside = "\(directory == "/" ? "" : directory)/\(name).nspawn"
        return FileSystem.exists(beside) ? (beside, trustAll, true) : nil
    }

    /// Reads and parses the file. One beside the tree is opened without following a symbolic link:
    /// whoever may write there must not make us read a file of root's.
    static func load(_ path: String, trusted: Bool, beside: Bool) throws(UserError) -> SettingsFile {
        let text: String
        switch Result(catching: { () throws(SyscallError) -> [UInt8]? in
            let file = try FileSystem.open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | (beside ? O_NOFOLLOW : 0))
            return try FileSystem.readRegular(file, path: path, limit: 1 << 20)
        }) {
        case .success(let bytes?): text = String(decoding: bytes, as: UTF8.self)
        case .success(nil): throw UserError("Settings file \(path) is not a regular file of at most 1 MiB. Refusing.")
        case .failure(let error): throw UserError("Failed to read settings file: \(error)")
        }
        var file = try parse(text, path: path)
        file.trusted = trusted
        return file
    }

    /// The file's syntax, as systemd's configuration files have it: "[Section]" headers, "Key=Value"
    /// lines, "#" and ";" comments, a trailing backslash joining the next line.
    static func parse(_ text: String, path: String) throws(UserError) -> SettingsFile {
        var file = SettingsFile(path: path, trusted: false, assignments: [], warnings: [])
        var section: String?
        var pending = ""
        var pendingLine = 0
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            var line = Substring(raw)
            if line.last == "\r" { line = line.dropLast() }
            if pending.isEmpty {
                pendingLine = number
                let trimmed = line.drop { $0 == " " || $0 == "\t" }
                if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            }
            if line.last == "\\" {
                pending += String(line.dropLast()) + " "
                continue
            }
            let whole = (pending + String(line)).trimmingCharacters(in: " \t")
            pending = ""
            let place = "\(path):\(pendingLine)"
            guard whole.unicodeScalars.allSatisfy({ $0.value >= 0x20 || $0 == "\t" }) else {
                throw UserError("\(place): Line contains control characters.")
            }
            if whole.hasPrefix("[") {
                guard whole.hasSuffix("]"), whole.count > 2 else { throw UserError("\(place): Invalid section header '\(whole)'.") }
                let name = String(whole.dropFirst().dropLast())
                section = name
                if !Self.sections.contains(name) { file.warnings.append("\(place): Unknown section '\(name)'. Ignoring.") }
                continue
            }
            guard let section else { throw UserError("\(place): Assignment outside of section.") }
            guard let equals = whole.firstIndex(of: "=") else { throw UserError("\(place): Missing '='.") }
            let key = String(whole[..<equals]).trimmingCharacters(in: " \t")
            guard !key.isEmpty else { throw UserError("\(place): Missing key name before '='.") }
            guard sections.contains(section) else { continue }
            let value = String(whole[whole.index(after: equals)...]).trimmingCharacters(in: " \t")
            // A misspelt key would silently leave out what it meant to set (a bind, a port): an error,
            // where systemd-nspawn warns. swift-nspawn knows every key of systemd-nspawn 252.
            guard keys["\(section)/\(key)"] != nil else { throw UserError("\(place): Unknown key '\(key)' in section [\(section)].") }
            file.assignments.append(Assignment(section: section, key: key, value: value, line: pendingLine))
        }
        if !pending.isEmpty { throw UserError("\(path):\(pendingLine): Line continues past the end of the file.") }
        return file
    }

    // MARK: What each key does

    /// @unchecked: key paths are immutable values (as in OptionSpec).
    enum Effect: Equatable, @unchecked Sendable {
        /// The value of this option (the last assignment wins).
        case value(String)
        /// Appended to this list option; `words`: split into words (quotes kept together) first.
        case list(String, words: Bool)
        /// A boolean: yes gives the first option (a flag), no the second (where there is one).
        case flag(String, off: String?)
        /// The command's arguments (or init's, with Boot=), as words, appended.
        case parameters
        /// LimitNAME=: --rlimit=NAME=VALUE.
        case resourceLimit(String)
        /// A key of systemd-nspawn's that swift-nspawn has no counterpart for: ignored, saying why.
        case unsupported(String)
        /// An OCI bundle's setting that no option makes: set to true, or to the value.
        case internalFlag(WritableKeyPath<CommandLineOptions, Bool>)
        case internalValue(WritableKeyPath<CommandLineOptions, String?>)
    }

    /// Keys that say one thing together (systemd-nspawn's SETTING_* masks): the command line's
    /// options of a group and the file's keys of it are never mixed. Where the command line gave
    /// any option of the group, the file's keys of it are ignored (unless --settings=override);
    /// where the file's are used, they replace the command line's options of the group.
    enum Group: String {
        case start, network, users, journal, mounts, capabilities, user

        /// The group's options, by long name or short letter.
        var options: [String] {
            switch self {
            case .start: ["boot", "as-pid2"]
            case .network:
                [
                    "private-network", "no-private-network", "network-namespace-path", "network-veth", "network-veth-extra", "network-bridge",
                    "network-zone", "network-interface", "network-macvlan", "network-ipvlan", "port",
                ]
            case .users: ["private-users", "private-users-ownership", "U"]
            case .journal: ["link-journal", "j"]
            case .mounts: ["bind", "bind-ro", "tmpfs", "inaccessible", "overlay", "overlay-ro"]
            case .capabilities: ["capability", "ambient-capability"]
            // An OCI bundle's numeric user and -u: one or the other.
            case .user: ["user"]
            }
        }
    }

    struct Key: Equatable, Sendable {
        var effect: Effect
        /// Ignored in an untrusted file: it gives the machine what its tree alone may not ask for.
        var trustedOnly = false
        /// From an untrusted file, only values starting with "~" (SystemCallFilter='s deny-lists).
        var untrustedDenyListsOnly = false
        var group: Group? = nil
        var merge = Merge.replace
        /// Each value is a NAME=VALUE assignment (Environment=): a bare NAME, which -E looks up in
        /// swift-nspawn's own environment, is refused.
        var assignmentsOnly = false
    }

    /// How a list key's values meet the command line's.
    enum Merge: Equatable, Sendable {
        /// As the group decides: kept from the command line, or replaced.
        case replace
        /// Only ever added to the command line's list, whoever wins (DropCapability=,
        /// SystemCallFilter=, a bundle's masks): a file can take capabilities and calls away,
        /// never give back what the command line took.
        case add
        /// Added, but not for a NAME= the command line gives (a bundle's --property limits).
        case addUnlessNamed
    }

    static let keys: [String: Key] = {
        var keys: [String: Key] = [
            "Exec/Boot": Key(effect: .flag("boot", off: nil), group: .start),
            "Exec/Ephemeral": Key(effect: .flag("ephemeral", off: nil), trustedOnly: true),
            "Exec/ProcessTwo": Key(effect: .flag("as-pid2", off: nil), group: .start),
            "Exec/Parameters": Key(effect: .parameters, group: .start),
            "Exec/Environment": Key(effect: .list("setenv", words: true), assignmentsOnly: true),
            "Exec/User": Key(effect: .value("user")),
            "Exec/WorkingDirectory": Key(effect: .value("chdir")),
            "Exec/PivotRoot": Key(effect: .value("pivot-root")),
            "Exec/Capability": Key(effect: .list("capability", words: true), trustedOnly: true, group: .capabilities),
            "Exec/AmbientCapability": Key(effect: .list("ambient-capability", words: true), trustedOnly: true, group: .capabilities),
            "Exec/DropCapability": Key(effect: .list("drop-capability", words: true), merge: .add),
            "Exec/NoNewPrivileges": Key(effect: .value("no-new-privileges")),
            "Exec/KillSignal": Key(effect: .value("kill-signal")),
            "Exec/Personality": Key(effect: .value("personality")),
            "Exec/MachineID": Key(effect: .value("uuid"), trustedOnly: true),
            "Exec/PrivateUsers": Key(effect: .value("private-users"), trustedOnly: true, group: .users),
            "Exec/NotifyReady": Key(effect: .value("notify-ready")),
            "Exec/SystemCallFilter": Key(effect: .list("system-call-filter", words: false), untrustedDenyListsOnly: true, merge: .add),
            "Exec/OOMScoreAdjust": Key(effect: .value("oom-score-adjust"), trustedOnly: true),
            "Exec/CPUAffinity": Key(effect: .value("cpu-affinity"), trustedOnly: true),
            "Exec/Hostname": Key(effect: .value("hostname")),
            "Exec/ResolvConf": Key(effect: .value("resolv-conf")),
            "Exec/Timezone": Key(effect: .value("timezone")),
            "Exec/LinkJournal": Key(effect: .value("link-journal"), trustedOnly: true, group: .journal),
            "Exec/SuppressSync": Key(effect: .value("suppress-sync")),
            "Files/ReadOnly": Key(effect: .flag("read-only", off: nil)),
            "Files/Volatile": Key(effect: .value("volatile")),
            "Files/Bind": Key(effect: .list("bind", words: false), trustedOnly: true, group: .mounts),
            "Files/BindReadOnly": Key(effect: .list("bind-ro", words: false), trustedOnly: true, group: .mounts),
            "Files/BindUser": Key(effect: .list("bind-user", words: true), trustedOnly: true),
            "Files/TemporaryFileSystem": Key(effect: .list("tmpfs", words: false), trustedOnly: true, group: .mounts),
            "Files/Inaccessible": Key(effect: .list("inaccessible", words: true), trustedOnly: true, group: .mounts),
            "Files/Overlay": Key(effect: .list("overlay", words: false), trustedOnly: true, group: .mounts),
            "Files/OverlayReadOnly": Key(effect: .list("overlay-ro", words: false), trustedOnly: true, group: .mounts),
            "Files/PrivateUsersOwnership": Key(effect: .value("private-users-ownership"), trustedOnly: true, group: .users),
            "Files/PrivateUsersChown": Key(
                effect: .unsupported("swift-nspawn never rewrites the tree's owners; PrivateUsersOwnership=map shows them mapped"), trustedOnly: true),
            "Network/Private": Key(effect: .flag("private-network", off: "no-private-network"), trustedOnly: true, group: .network),
            "Network/VirtualEthernet": Key(effect: .flag("network-veth", off: nil), trustedOnly: true, group: .network),
            "Network/VirtualEthernetExtra": Key(effect: .list("network-veth-extra", words: false), trustedOnly: true, group: .network),
            "Network/Interface": Key(effect: .list("network-interface", words: true), trustedOnly: true, group: .network),
            "Network/MACVLAN": Key(effect: .list("network-macvlan", words: true), trustedOnly: true, group: .network),
            "Network/IPVLAN": Key(effect: .list("network-ipvlan", words: true), trustedOnly: true, group: .network),
            "Network/Bridge": Key(effect: .value("network-bridge"), trustedOnly: true, group: .network),
            "Network/Zone": Key(effect: .value("network-zone"), trustedOnly: true, group: .network),
            "Network/Port": Key(effect: .list("port", words: false), trustedOnly: true, group: .network),
        ]
        for name in ResourceLimit.names.map(\.0) {
            keys["Exec/Limit\(name)"] = Key(effect: .resourceLimit(name), trustedOnly: true)
        }
        // What an OCI bundle says that no .nspawn key does (the parser takes no [OCI] section).
        keys["OCI/Directory"] = Key(effect: .value("directory"), trustedOnly: true)
        keys["OCI/Console"] = Key(effect: .value("console"), trustedOnly: true)
        keys["OCI/NetworkNamespacePath"] = Key(effect: .value("network-namespace-path"), trustedOnly: true, group: .network)
        // A bundle's limits and masks only add to the command line's (a --property or --bind given
        // must not drop them); for a property both name, the command line's value counts.
        keys["OCI/Property"] = Key(effect: .list("property", words: false), trustedOnly: true, merge: .addUnlessNamed)
        keys["OCI/Inaccessible"] = Key(effect: .list("inaccessible", words: false), trustedOnly: true, merge: .add)
        keys["OCI/ProcSysReadOnly"] = Key(effect: .internalFlag(\.procSysReadOnly), trustedOnly: true)
        keys["OCI/CgroupReadOnly"] = Key(effect: .internalFlag(\.cgroupReadOnly), trustedOnly: true)
        keys["OCI/Identity"] = Key(effect: .internalValue(\.identity), trustedOnly: true, group: .user)
        keys["OCI/CgroupPath"] = Key(effect: .internalValue(\.cgroupPath), trustedOnly: true)
        keys["OCI/Sysctls"] = Key(effect: .internalValue(\.sysctls), trustedOnly: true)
        keys["OCI/SeccompProfile"] = Key(effect: .internalValue(\.seccompProfile), trustedOnly: true)
        keys["OCI/Domainname"] = Key(effect: .internalValue(\.domainname), trustedOnly: true)
        keys["OCI/Devices"] = Key(effect: .internalValue(\.devices), trustedOnly: true)
        keys["OCI/JoinedNamespaces"] = Key(effect: .internalValue(\.joinedNamespaces), trustedOnly: true)
        keys["OCI/TimeNamespace"] = Key(effect: .internalValue(\.timeNamespace), trustedOnly: true)
        keys["OCI/RootPropagation"] = Key(effect: .internalValue(\.rootPropagation), trustedOnly: true)
        keys["OCI/ConsoleSize"] = Key(effect: .internalValue(\.consoleSize), trustedOnly: true)
        return keys
    }()

    // MARK: Applying it

    /// The command line's options with the file's settings carried in: where both say something the
    /// command line wins, or with `override` the file (a group of keys as a whole, see Group).
    /// Returns them with the warnings to show (the keys an untrusted file may not set). Values are
    /// checked by the configuration they make.
    func apply(to commandLine: CommandLineOptions, override: Bool) throws(UserError) -> (options: CommandLineOptions, warnings: [String]) {
        var warnings = self.warnings
        var ignored = Set<String>()
        var usable: [(Assignment, Key)] = []
        for assignment in assignments {
            guard let key = Self.keys["\(assignment.section)/\(assignment.key)"] else { continue }
            let place = assignment.place(in: path)
            let allowList = key.untrustedDenyListsOnly && !assignment.value.hasPrefix("~") && !assignment.value.isEmpty
            if !trusted && (key.trustedOnly || allowList) {
                if ignored.insert(assignment.key).inserted {
                    warnings.append(
                        "\(place): Ignoring \(assignment.key)= in an untrusted settings file (trusted ones live in \(Self.trustedDirectories.joined(separator: " and ")); --settings=trusted trusts this one)."
                    )
                }
                continue
            }
            if case .unsupported(let reason) = key.effect {
                if ignored.insert(assignment.key).inserted { warnings.append("\(place): Ignoring \(assignment.key)=: \(reason).") }
                continue
            }
            // A boolean is checked even where the command line's group wins: the line is wrong either way.
            if case .flag = key.effect, Configuration.parseBooleanValue(assignment.value) == nil {
                throw UserError("\(place): Failed to parse \(assignment.key)= value: \(assignment.value)")
            }
            usable.append((assignment, key))
        }

        // Each unit (a group, an option, a limit) the file sets: kept from the command line, or replaced.
        var options = commandLine
        var decided: [Unit: Bool] = [:]
        for (assignment, key) in usable {
            let unit = Unit(key, named: assignment.key)
            if decided[unit] == nil {
                let adds = key.merge != .replace
                decided[unit] = adds || override || !unit.given(in: commandLine)
                if decided[unit] == true && !adds { unit.clear(in: &options) }
            }
            guard decided[unit] == true else { continue }
            try apply(assignment, key, to: &options, commandLine: commandLine)
        }
        return (options, warnings)
    }

    private func apply(_ assignment: Assignment, _ key: Key, to options: inout CommandLineOptions, commandLine: CommandLineOptions) throws(UserError) {
        let place = assignment.place(in: path)
        switch key.effect {
        case .value(let name):
            switch OptionTable.named(name)?.store {
            case .value(let path), .optionalValue(let path, _): options[keyPath: path] = assignment.value
            default: return
            }
        case .list(let name, let words):
            guard case .list(let path) = OptionTable.named(name)?.store else { return }
            // An empty value empties the list of what the file put there.
            if assignment.value.isEmpty && assignment.words == nil {
                options[keyPath: path] = key.merge == .replace ? [] : commandLine[keyPath: path]
                return
            }
            var values = assignment.words ?? [assignment.value]
            if assignment.words == nil && words { values = try Self.words(assignment.value, place: place) }
            if key.merge == .addUnlessNamed {
                values.removeAll { value in commandLine[keyPath: path].contains { $0.hasPrefix(value.prefix { $0 != "=" } + "=") } }
            }
            if key.assignmentsOnly, let bare = values.first(where: { !$0.contains("=") }) {
                // Never a lookup in swift-nspawn's own environment, as a bare -E NAME makes.
                throw UserError("\(place): Environment= takes NAME=VALUE assignments, not '\(bare)'.")
            }
            options[keyPath: path] += values
        case .flag(let on, let off):
            let flag = Configuration.parseBooleanValue(assignment.value) ?? false
            if case .flag(let path, _) = OptionTable.named(on)?.store { options[keyPath: path] = flag }
            if let off, case .flag(let path, _) = OptionTable.named(off)?.store { options[keyPath: path] = !flag }
        case .parameters:
            if let words = assignment.words { options.command += words } else { options.command += try Self.words(assignment.value, place: place) }
        case .resourceLimit(let name):
            options.resourceLimits.removeAll { Self.entry($0, sets: name) }
            options.resourceLimits.append("\(name)=\(assignment.value)")
        case .internalFlag(let path):
            options[keyPath: path] = true
        case .internalValue(let path):
            options[keyPath: path] = assignment.value
        case .unsupported:
            return
        }
    }

    /// Whether an --rlimit= entry sets this limit (NOFILE=… or RLIMIT_NOFILE=…).
    private static func entry(_ entry: String, sets limit: String) -> Bool { entry.hasPrefix("\(limit)=") || entry.hasPrefix("RLIMIT_\(limit)=") }

    /// What a key is decided with (kept from the command line, or replaced): its group, its
    /// option, its limit, or (a bundle's settings no option makes) itself.
    private enum Unit: Hashable {
        case group(Group)
        case option(String)
        case limit(String)
        case unlisted(String)

        init(_ key: Key, named name: String) {
            if let group = key.group {
                self = .group(group)
                return
            }
            switch key.effect {
            case .value(let option), .list(let option, _), .flag(let option, _): self = .option(option)
            case .resourceLimit(let limit): self = .limit(limit)
            case .parameters, .unsupported, .internalFlag, .internalValue: self = .unlisted(name)
            }
        }

        private var options: [String] {
            switch self {
            case .group(let group): group.options
            case .option(let option): [option]
            case .limit, .unlisted: []
            }
        }

        /// Whether the command line gave any option of the unit.
        func given(in options: CommandLineOptions) -> Bool {
            if case .limit(let limit) = self { return options.resourceLimits.contains { SettingsFile.entry($0, sets: limit) } }
            if self == .group(.start) && !options.command.isEmpty { return true }
            return self.options.contains { name in
                switch OptionTable.named(name)?.store {
                case .flag(let path, let value): options[keyPath: path] == value
                case .value(let path), .optionalValue(let path, _): options[keyPath: path] != nil
                case .list(let path): !options[keyPath: path].isEmpty
                case nil: false
                }
            }
        }

        /// The unit's options as if the command line had not given them.
        func clear(in options: inout CommandLineOptions) {
            if case .limit(let limit) = self { options.resourceLimits.removeAll { SettingsFile.entry($0, sets: limit) } }
            if self == .group(.start) { options.command = [] }
            for name in self.options {
                switch OptionTable.named(name)?.store {
                case .flag(let path, let value): options[keyPath: path] = !value
                case .value(let path), .optionalValue(let path, _): options[keyPath: path] = nil
                case .list(let path): options[keyPath: path] = []
                case nil: continue
                }
            }
        }
    }

    /// The configuration the command line and this file make; where it fails, the error names the
    /// line whose setting brought it: the first line from which the same error shows (found by
    /// bisection, so a long file costs a few configurations, not one a line).
    func configuration(
        commandLine: CommandLineOptions, override: Bool, environment: (String) -> String?
    ) throws(UserError) -> (configuration: Configuration, warnings: [String]) {
        let (options, warnings) = try apply(to: commandLine, override: override)
        func failure(of options: CommandLineOptions) -> String? {
            do {
                _ = try Configuration(options: options, environment: environment)
                return nil
            } catch {
                return error is InformationRequest ? "'help' lists values on the command line only" : "\(error)"
            }
        }
        do {
            return (try Configuration(options: options, environment: environment), warnings)
        } catch {
            let final = failure(of: options) ?? "\(error)"
            func prefixFailure(_ count: Int) -> String? {
                var prefix = self
                prefix.assignments = Array(assignments.prefix(count))
                guard let (partial, _) = try? prefix.apply(to: commandLine, override: override) else { return nil }
                return failure(of: partial)
            }
            var low = 1
            var high = assignments.count
            while low < high {
                let middle = (low + high) / 2
                if prefixFailure(middle) == final { high = middle } else { low = middle + 1 }
            }
            guard !assignments.isEmpty, prefixFailure(low) == final else { throw UserError("\(path): \(final)") }
            throw UserError("\(assignments[low - 1].place(in: path)): \(final)")
        }
    }

    /// Words separated by blanks, with "…" or '…' keeping blanks in one (systemd's extract_first_word).
    static func words(_ text: String, place: String) throws(UserError) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        var escaped = false
        for character in text {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
                inWord = true
            } else if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        guard quote == nil, !escaped else { throw UserError("\(place): Unbalanced quoting in '\(text)'.") }
        if inWord { words.append(current) }
        return words
    }
}
