import Foundation
import Testing

/// The console under a real pty, made by script(1): what a person at a terminal gets.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct ConsoleTests {
    /// Runs `shell` under script(1), feeding `input` as timed keystrokes; returns the transcript.
    private func underPTY(_ shell: String, input: [(delay: Double, text: String)], timeout: TimeInterval = 15) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qfec", shell, "/dev/null"]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        for (delay, text) in input {
            usleep(UInt32(delay * 1_000_000))
            stdin.fileHandleForWriting.write(Data(text.utf8))
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            Issue.record("console session did not end within \(timeout) s")
        }
        process.waitUntilExit()
        try? stdin.fileHandleForWriting.close()
        return String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test func interactiveConsoleCarriesInputOutputAndWindowSize() throws {
        let machine = try TestMachine()
        let transcript = try underPTY(
            "stty cols 97 rows 31; \(TestEnvironment.binary) -D \(machine.path) /bin/sh; echo status=$?",
            input: [(1.0, "stty size; tty; echo $((6*7))\r"), (0.5, "exit 3\r")])
        #expect(transcript.contains("Press ^] three times within 1s to kill container."))
        #expect(transcript.contains("31 97"))
        #expect(transcript.contains("/dev/pts/0") || transcript.contains("/dev/console"))
        #expect(transcript.contains("42"))
        #expect(transcript.contains("status=3"))
    }

    @Test func threeEscapesKillTheMachineAndTheTerminalIsRestored() throws {
        let machine = try TestMachine()
        let transcript = try underPTY(
            "stty -g > \(machine.directory.path)/before; \(TestEnvironment.binary) -D \(machine.path) /bin/sleep 60; echo status=$?; stty -g > \(machine.directory.path)/after",
            input: [(1.0, "\u{1d}\u{1d}\u{1d}")])
        #expect(transcript.contains("status=1"))
        #expect(transcript.contains("terminated by signal KILL"))
        let before = try String(contentsOfFile: machine.directory.path + "/before", encoding: .utf8)
        let after = try String(contentsOfFile: machine.directory.path + "/after", encoding: .utf8)
        #expect(before == after)
    }

    @Test func escapeThenPPowersTheMachineOff() throws {
        let machine = try TestMachine()
        let transcript = try underPTY(
            "\(TestEnvironment.binary) -D \(machine.path) -a /bin/sleep 60; echo status=$?",
            input: [(1.0, "\u{1d}\u{1d}p")])
        #expect(transcript.contains("status=0"), "\(transcript)")
        #expect(transcript.contains("has been shut down"))
    }

    @Test func readOnlyConsoleIsTheDefaultWithoutATerminal() throws {
        let machine = try TestMachine()
        let result = try runNspawn(["-D", machine.path, "-q", "/bin/sh", "-c", "readlink -f /proc/self/fd/0; echo out"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("out\r\n"), "read-only consoles pass output through the pty: \(result.stdout.debugDescription)")
    }
}
