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
    }

    var path: String
    var trusted: Bool
    var assignments: [Assignment]
    /// Unknown sections and keys, by file and line (ignored, as systemd-nspawn ignores them).
    var warnings: [String]

    static let trustedDirectories = ["/etc/systemd/nspawn", "/run/systemd/nspawn"]

    /// The first NAME.nspawn of the trusted directories, else the one beside the tree or image.
    static func find(name: String, besides directory: String, trustAll: Bool) -> (path: String, trusted: Bool)? {
        for trustedDirectory in trustedDirectories where FileSystem.exists("\(trustedDirectory)/\(name).nspawn") {
            return ("\(trustedDirectory)/\(name).nspawn", true)
        }
        let beside = "\(directory == "/" ? "" : directory)/\(name).nspawn"
        return FileSystem.exists(beside) ? (beside, trustAll) : nil
    }

    static func load(_ path: String, trusted: Bool) throws(UserError) -> SettingsFile {
        let text: String
        switch Result(catching: { () throws(SyscallError) -> [UInt8]? in
            let file = try FileSystem.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            let st = try FileSystem.status(file, path: path)
            guard st.st_mode & S_IFMT == S_IFREG, st.st_size <= 1 << 20 else { return nil }
            return try FileSystem.readAll(fd: file.raw, path: path)
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
                if !["Exec", "Files", "Network"].contains(name) { file.warnings.append("\(place): Unknown section '\(name)'. Ignoring.") }
                continue
            }
            guard let section else { throw UserError("\(place): Assignment outside of section.") }
            guard let equals = whole.firstIndex(of: "=") else { throw UserError("\(place): Missing '='.") }
            let key = String(whole[..<equals]).trimmingCharacters(in: " \t")
            guard !key.isEmpty else { throw UserError("\(place): Missing key name before '='.") }
            guard ["Exec", "Files", "Network"].contains(section) else { continue }
            let value = String(whole[whole.index(after: equals)...]).trimmingCharacters(in: " \t")
            guard keys["\(section)/\(key)"] != nil else {
                file.warnings.append("\(place): Unknown key '\(key)' in section [\(section)], ignoring.")
                continue
            }
            file.assignments.append(Assignment(section: section, key: key, value: value, line: pendingLine))
        }
        if !pending.isEmpty { throw UserError("\(path):\(pendingLine): Line continues past the end of the file.") }
        return file
    }

    // MARK: What each key does

    enum Effect: Equatable {
        /// The value of this option (the last assignment wins).
        case value(String)
        /// Appended to this list option; `words`: split into words (quotes kept together) first.
        /// An empty value empties the list.
        case list(String, words: Bool)
        /// A boolean: yes gives the first option (a flag), no the second (where there is one).
        case flag(String, off: String?)
        /// The command's arguments (or init's, with Boot=).
        case parameters
        /// LimitNAME=: --rlimit=NAME=VALUE.
        case resourceLimit(String)
    }

    struct Key: Equatable {
        var effect: Effect
        /// Ignored in an untrusted file: it gives the machine what its tree alone may not ask for.
        var trustedOnly = false
    }

    static let keys: [String: Key] = {
        var keys: [String: Key] = [
            "Exec/Boot": Key(effect: .flag("boot", off: nil)),
            "Exec/Ephemeral": Key(effect: .flag("ephemeral", off: nil), trustedOnly: true),
            "Exec/ProcessTwo": Key(effect: .flag("as-pid2", off: nil)),
            "Exec/Parameters": Key(effect: .parameters),
            "Exec/Environment": Key(effect: .list("setenv", words: true)),
            "Exec/User": Key(effect: .value("user")),
            "Exec/WorkingDirectory": Key(effect: .value("chdir")),
            "Exec/PivotRoot": Key(effect: .value("pivot-root")),
            "Exec/Capability": Key(effect: .list("capability", words: true), trustedOnly: true),
            "Exec/AmbientCapability": Key(effect: .list("ambient-capability", words: true), trustedOnly: true),
            "Exec/DropCapability": Key(effect: .list("drop-capability", words: true)),
            "Exec/NoNewPrivileges": Key(effect: .value("no-new-privileges")),
            "Exec/KillSignal": Key(effect: .value("kill-signal")),
            "Exec/Personality": Key(effect: .value("personality")),
            "Exec/MachineID": Key(effect: .value("uuid"), trustedOnly: true),
            "Exec/PrivateUsers": Key(effect: .value("private-users"), trustedOnly: true),
            "Exec/NotifyReady": Key(effect: .value("notify-ready")),
            // Deny-lists (~…) are honoured from any file; allow-lists only from a trusted one.
            "Exec/SystemCallFilter": Key(effect: .list("system-call-filter", words: false)),
            "Exec/OOMScoreAdjust": Key(effect: .value("oom-score-adjust"), trustedOnly: true),
            "Exec/CPUAffinity": Key(effect: .value("cpu-affinity"), trustedOnly: true),
            "Exec/Hostname": Key(effect: .value("hostname")),
            "Exec/ResolvConf": Key(effect: .value("resolv-conf")),
            "Exec/Timezone": Key(effect: .value("timezone")),
            "Exec/LinkJournal": Key(effect: .value("link-journal"), trustedOnly: true),
            "Exec/SuppressSync": Key(effect: .value("suppress-sync")),
            "Files/ReadOnly": Key(effect: .flag("read-only", off: nil)),
            "Files/Volatile": Key(effect: .value("volatile")),
            "Files/Bind": Key(effect: .list("bind", words: false), trustedOnly: true),
            "Files/BindReadOnly": Key(effect: .list("bind-ro", words: false), trustedOnly: true),
            "Files/BindUser": Key(effect: .list("bind-user", words: true), trustedOnly: true),
            "Files/TemporaryFileSystem": Key(effect: .list("tmpfs", words: false), trustedOnly: true),
            "Files/Inaccessible": Key(effect: .list("inaccessible", words: true), trustedOnly: true),
            "Files/Overlay": Key(effect: .list("overlay", words: false), trustedOnly: true),
            "Files/OverlayReadOnly": Key(effect: .list("overlay-ro", words: false), trustedOnly: true),
            "Files/PrivateUsersOwnership": Key(effect: .value("private-users-ownership"), trustedOnly: true),
            "Network/Private": Key(effect: .flag("private-network", off: "no-private-network"), trustedOnly: true),
            "Network/VirtualEthernet": Key(effect: .flag("network-veth", off: nil), trustedOnly: true),
            "Network/VirtualEthernetExtra": Key(effect: .list("network-veth-extra", words: false), trustedOnly: true),
            "Network/Interface": Key(effect: .list("network-interface", words: true), trustedOnly: true),
            "Network/MACVLAN": Key(effect: .list("network-macvlan", words: true), trustedOnly: true),
            "Network/IPVLAN": Key(effect: .list("network-ipvlan", words: true), trustedOnly: true),
            "Network/Bridge": Key(effect: .value("network-bridge"), trustedOnly: true),
            "Network/Zone": Key(effect: .value("network-zone"), trustedOnly: true),
            "Network/Port": Key(effect: .list("port", words: false), trustedOnly: true),
        ]
        for name in ResourceLimit.names.map(\.0) {
            keys["Exec/Limit\(name)"] = Key(effect: .resourceLimit(name), trustedOnly: true)
        }
        return keys
    }()

    // MARK: Applying it

    /// The command line's options with the file's settings carried in: where both say something the
    /// command line wins, or with `override` the file. Returns them with the warnings to show (the
    /// keys an untrusted file may not set). Values are checked by the configuration they make.
    func apply(to commandLine: CommandLineOptions, override: Bool) throws(UserError) -> (options: CommandLineOptions, warnings: [String]) {
        var options = commandLine
        var warnings = self.warnings
        var ignored = Set<String>()
        var replaced = Set<String>()
        for assignment in assignments {
            guard let key = Self.keys["\(assignment.section)/\(assignment.key)"] else { continue }
            let place = "\(path):\(assignment.line)"
            let allowList = assignment.key == "SystemCallFilter" && !assignment.value.hasPrefix("~") && !assignment.value.isEmpty
            if !trusted && (key.trustedOnly || allowList) {
                if ignored.insert(assignment.key).inserted {
                    warnings.append(
                        "\(place): Ignoring \(assignment.key)= in an untrusted settings file (trusted ones live in \(Self.trustedDirectories.joined(separator: " and ")); --settings=trusted trusts this one)."
                    )
                }
                continue
            }
            switch key.effect {
            case .value(let name):
                let spec = Self.option(name)
                guard override || !Self.given(spec, in: commandLine) else { continue }
                try Self.store(spec, assignment.value, into: &options, place: place)
            case .list(let name, let words):
                let spec = Self.option(name)
                guard override || !Self.given(spec, in: commandLine) else { continue }
                guard case .list(let path) = spec.store else { continue }
                if replaced.insert(name).inserted || assignment.value.isEmpty { options[keyPath: path] = [] }
                if assignment.value.isEmpty { continue }
                options[keyPath: path] += words ? try Self.words(assignment.value, place: place) : [assignment.value]
            case .flag(let on, let off):
                let onSpec = Self.option(on)
                let offSpec = off.map(Self.option)
                guard override || !(Self.given(onSpec, in: commandLine) || offSpec.map { Self.given($0, in: commandLine) } ?? false) else { continue }
                guard let flag = Configuration.parseBooleanValue(assignment.value) else {
                    throw UserError("\(place): Failed to parse \(assignment.key)= value: \(assignment.value)")
                }
                if case .flag(let path, _) = onSpec.store { options[keyPath: path] = flag }
                if let offSpec, case .flag(let path, _) = offSpec.store { options[keyPath: path] = !flag }
            case .parameters:
                guard override || commandLine.command.isEmpty else { continue }
                options.command = try Self.words(assignment.value, place: place)
            case .resourceLimit(let name):
                let given = commandLine.resourceLimits.contains { $0.hasPrefix("\(name)=") || $0.hasPrefix("RLIMIT_\(name)=") }
                guard override || !given else { continue }
                options.resourceLimits.removeAll { $0.hasPrefix("\(name)=") || $0.hasPrefix("RLIMIT_\(name)=") }
                options.resourceLimits.append("\(name)=\(assignment.value)")
            }
        }
        return (options, warnings)
    }

    /// The configuration the command line and this file make, or the first line whose setting
    /// makes it fail (with the option's own message).
    func configuration(
        commandLine: CommandLineOptions, override: Bool, environment: (String) -> String?
    ) throws(UserError) -> (configuration: Configuration, warnings: [String]) {
        let (options, warnings) = try apply(to: commandLine, override: override)
        do {
            return (try Configuration(options: options, environment: environment), warnings)
        } catch {
            // Which line: the first whose setting, added to those before it, makes the configuration fail.
            for count in 1...max(1, assignments.count) {
                var prefix = self
                prefix.assignments = Array(assignments.prefix(count))
                guard let (partial, _) = try? prefix.apply(to: commandLine, override: override) else { continue }
                do {
                    _ = try Configuration(options: partial, environment: environment)
                } catch let failure {
                    let line = assignments.isEmpty ? 0 : assignments[count - 1].line
                    let text = failure is InformationRequest ? "'help' lists values on the command line only" : "\(failure)"
                    throw UserError("\(path):\(line): \(text)")
                }
            }
            throw UserError("\(path): \(error)")
        }
    }

    private static func option(_ name: String) -> OptionSpec {
        guard let spec = OptionTable.long(Substring(name)) else { preconditionFailure("settings key for unknown option --\(name)") }
        return spec
    }

    /// Whether the command line gave this option.
    private static func given(_ spec: OptionSpec, in options: CommandLineOptions) -> Bool {
        switch spec.store {
        case .flag(let path, let value): options[keyPath: path] == value
        case .value(let path), .optionalValue(let path, _): options[keyPath: path] != nil
        case .list(let path): !options[keyPath: path].isEmpty
        }
    }

    private static func store(_ spec: OptionSpec, _ value: String, into options: inout CommandLineOptions, place: String) throws(UserError) {
        switch spec.store {
        case .value(let path), .optionalValue(let path, _): options[keyPath: path] = value
        case .list(let path): options[keyPath: path].append(value)
        case .flag: throw UserError("\(place): internal error: a flag given a value")
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
