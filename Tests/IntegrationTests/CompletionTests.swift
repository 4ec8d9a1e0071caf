import Foundation
import Testing

/// The bash and zsh completions tools/make-completions makes from the binary's --help: every
/// option is in both, and bash completes names, values and the command as a user would press Tab.
struct CompletionTests {
    private func make() throws -> URL {
        let directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("swift-nspawn-completions-\(UUID().uuidString.prefix(8))")
        let maker = Process()
        maker.executableURL = TestEnvironment.packageRoot.appendingPathComponent("tools/make-completions")
        maker.arguments = [TestEnvironment.binary, directory.path]
        maker.standardError = FileHandle.nullDevice
        try maker.run()
        maker.waitUntilExit()
        #expect(maker.terminationStatus == 0)
        return directory
    }

    private func run(_ command: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func everyOptionIsCompleted() throws {
        let directory = try make()
        defer { try? FileManager.default.removeItem(at: directory) }
        let help = try run([TestEnvironment.binary, "--help"]).output
        let longs = help.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: "--") else { return nil }
            return String(line[range.lowerBound...].prefix { !" =[".contains($0) })
        }
        #expect(longs.count > 60)
        let bash = try String(contentsOf: directory.appendingPathComponent("swift-nspawn.bash"), encoding: .utf8)
        let zsh = try String(contentsOf: directory.appendingPathComponent("_swift-nspawn"), encoding: .utf8)
        for option in longs {
            #expect(bash.contains(option) && zsh.contains(option), "\(option)")
        }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/zsh") {
            let check = try run(["/usr/bin/zsh", "-n", directory.appendingPathComponent("_swift-nspawn").path])
            #expect(check.status == 0, "\(check.output)")
        }
    }

    @Test func bashCompletesNamesValuesAndTheCommand() throws {
        let directory = try make()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = """
            source "$1"
            t() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _swift_nspawn; echo "${COMPREPLY[*]}"; }
            t swift-nspawn --direc
            t swift-nspawn --volatile=sta
            t swift-nspawn --settings ov
            t swift-nspawn --link-journal try-g
            t swift-nspawn -D /et
            t swift-nspawn -D /etc /usr/sbin/sfdis
            t swift-nspawn -b --notify-ready y
            """
        let result = try run(["/bin/bash", "-c", script, "bash", directory.appendingPathComponent("swift-nspawn.bash").path])
        #expect(
            result.output.split(separator: "\n").map(String.init) == ["--directory=", "state", "override", "try-guest", "/etc", "/usr/sbin/sfdisk", "yes"],
            "\(result.output)")
    }
}
