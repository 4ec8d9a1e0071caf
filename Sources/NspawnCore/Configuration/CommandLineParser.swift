import ArgumentParser

/// What the command line asks for: a run, or a text to print and an exit status.
public enum CommandLineRequest: Equatable {
    case run(Configuration)
    case exit(text: String, status: Int32)
}

public enum CommandLineParser {
    /// Parses argv (without argv[0]). Errors become one line and status 1, as systemd-nspawn's do;
    /// help and version print and exit 0.
    public static func parse(_ arguments: [String], environment: (String) -> String? = Configuration.processEnvironment) -> CommandLineRequest {
        let options: CommandLineOptions
        do {
            options = try CommandLineOptions.parse(arguments)
        } catch {
            let status = CommandLineOptions.exitCode(for: error)
            let message = CommandLineOptions.fullMessage(for: error)
            if status == .success { return .exit(text: message, status: 0) }
            return .exit(text: firstLine(of: message), status: 1)
        }
        do {
            return .run(try Configuration(options: options, environment: environment))
        } catch let request as InformationRequest {
            return .exit(text: request.text, status: 0)
        } catch {
            return .exit(text: "\(error)", status: 1)
        }
    }

    private static func firstLine(of message: String) -> String {
        let line = message.split(separator: "\n").first.map(String.init) ?? message
        return line.hasPrefix("Error: ") ? String(line.dropFirst(7)) : line
    }
}
