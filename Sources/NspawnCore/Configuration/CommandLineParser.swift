/// What the command line asks for: a run, or a text to print and an exit status.
public enum CommandLineRequest: Equatable {
    case run(Configuration)
    case exit(text: String, status: Int32)
}

/// getopt_long as systemd-nspawn uses it ("+": parsing stops at the first argument that is not an
/// option): `--name=value`, `--name value`, `-D value`, `-Dvalue`, grouped flags `-qP`, and `--`.
/// Written out rather than taken from swift-argument-parser: its reflection-driven parse cost 2.5 ms
/// and 5.6 MB of resident memory on every start (measured in the commit that replaced it), a quarter
/// of the start-up budget and more than the whole memory budget of the supervisor.
public enum CommandLineParser {
    /// Parses argv (without argv[0]). Errors become one line and status 1, as systemd-nspawn's do;
    /// help, version and "help" values print and exit 0.
    public static func parse(_ arguments: [String], environment: (String) -> String? = Configuration.processEnvironment) -> CommandLineRequest {
        var options = CommandLineOptions()
        do {
            try read(arguments, into: &options)
        } catch {
            return .exit(text: error.description, status: 1)
        }
        if options.help { return .exit(text: helpText, status: 0) }
        if options.showVersion { return .exit(text: Version.string, status: 0) }
        do {
            return .run(try Configuration(options: options, environment: environment))
        } catch let request as InformationRequest {
            return .exit(text: request.text, status: 0)
        } catch {
            return .exit(text: "\(error)", status: 1)
        }
    }

    static func read(_ arguments: [String], into options: inout CommandLineOptions) throws(UserError) {
        var index = 0
        func nextValue(for name: String) throws(UserError) -> String {
            index += 1
            guard index < arguments.count else { throw UserError("Option \(name) needs a value.") }
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                options.command = Array(arguments[(index + 1)...])
                return
            }
            if argument.hasPrefix("--") {
                let body = argument.dropFirst(2)
                let name = body.prefix { $0 != "=" }
                let inline = name.endIndex < body.endIndex ? String(body[body.index(after: name.endIndex)...]) : nil
                guard let spec = OptionTable.long(name) else {
                    if let unavailable = UnavailableOptions.long(name) { throw UnavailableOptions.refusal(unavailable) }
                    throw UserError("Unknown option --\(name).")
                }
                if case .optionalValue(_, let absent) = spec.store {
                    try store(spec, inline ?? absent, into: &options)
                } else if spec.takesValue {
                    let value: String
                    if let inline { value = inline } else { value = try nextValue(for: "--\(name)") }
                    try store(spec, value, into: &options)
                } else {
                    guard inline == nil else { throw UserError("Option --\(name) takes no value.") }
                    try store(spec, nil, into: &options)
                }
            } else if argument.hasPrefix("-") && argument.count > 1 {
                var letters = argument.dropFirst()
                while let letter = letters.first {
                    letters = letters.dropFirst()
                    guard let spec = OptionTable.short(letter) else {
                        if let unavailable = UnavailableOptions.short(letter) { throw UnavailableOptions.refusal(unavailable) }
                        throw UserError("Unknown option -\(letter).")
                    }
                    if spec.takesValue {
                        let value = letters.isEmpty ? try nextValue(for: "-\(letter)") : String(letters)
                        try store(spec, value, into: &options)
                        break
                    }
                    try store(spec, nil, into: &options)
                }
            } else {
                options.command = Array(arguments[index...])
                return
            }
            index += 1
        }
    }

    private static func store(_ spec: OptionSpec, _ value: String?, into options: inout CommandLineOptions) throws(UserError) {
        switch spec.store {
        case .flag(let path, let set): options[keyPath: path] = set
        case .value(let path), .optionalValue(let path, _): options[keyPath: path] = value
        case .list(let path): options[keyPath: path].append(value ?? "")
        }
    }

    /// --help, laid out as systemd-nspawn's.
    public static var helpText: String {
        var lines = [
            "swift-nspawn [OPTIONS...] [PATH] [ARGUMENTS...]", "",
            "Spawn a command or OS in a lightweight machine.", "",
        ]
        for (group, options) in OptionTable.options {
            if !group.isEmpty { lines += ["", "\(group):"] }
            for spec in options {
                var names = spec.short.map { "-\($0)" } ?? "  "
                if let long = spec.long { names += (spec.short == nil ? " " : " ") + "--\(long)" }
                if let value = spec.valueName {
                    if case .optionalValue = spec.store { names += value } else { names += spec.long == nil ? " \(value)" : "=\(value)" }
                }
                let padding = String(repeating: " ", count: max(1, 34 - names.count))
                lines.append("  \(names)\(padding)\(spec.help)")
            }
        }
        lines += ["", "See the swift-nspawn(1) man page for details."]
        return lines.joined(separator: "\n")
    }
}

public enum Version {
    public static let number = "0.1.0"
    public static let string = "swift-nspawn \(number)"
}
