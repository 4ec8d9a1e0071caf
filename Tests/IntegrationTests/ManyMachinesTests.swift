import Foundation
import Testing

/// Many machines at once: 200 busybox machines on one read-only tree, all alive together, and 10
/// Debian machines booted together with -x. All succeed, each has an ID range of its own, and the
/// host is as it was afterwards. (bench/many times the same against systemd-nspawn.)
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct ManyMachinesTests {
    /// Starts the commands together, each writing to a file of its own; returns status and output.
    private func together(_ commands: [[String]], timeout: TimeInterval) throws -> [(status: Int32, output: String)] {
        let directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("swift-nspawn-many-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var processes: [(Process, URL)] = []
        for (index, command) in commands.enumerated() {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestEnvironment.binary)
            process.arguments = command
            let output = directory.appendingPathComponent("\(index)")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
            processes.append((process, output))
        }
        let deadline = Date().addingTimeInterval(timeout)
        return processes.map { process, output in
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                Issue.record("a machine outlived \(timeout) s")
            }
            process.waitUntilExit()
            return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
        }
    }

    @Test func twoHundredBusyboxMachinesTogether() throws {
        let machine = try TestMachine()
        let host = HostState.capture()
        // Each stays until all have started (a file of the test's appears), so all 200 live at once.
        let flag = machine.directory.appendingPathComponent("go")
        let script = "cat /proc/self/uid_map | tr -s ' ' | cut -d' ' -f3; hostname; while [ ! -e /var/go ]; do sleep 0.05; done"
        let commands = (0..<200).map { index in
            ["-D", machine.path, "-M", "many\(index)", "--read-only", "-q", "-P", "--bind-ro=\(machine.directory.path):/var", "/bin/sh", "-c", script]
        }
        // The flag is made 3 s after the first start, when all have been started.
        let creator = Process()
        creator.executableURL = URL(fileURLWithPath: "/bin/sh")
        creator.arguments = ["-c", "sleep 3; touch \(flag.path)"]
        try creator.run()
        let results = try together(commands, timeout: 60)
        creator.waitUntilExit()
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.filter { $0.status != 0 }.prefix(3).map(\.output))")
        let ranges = results.compactMap { $0.output.split(separator: "\n").first.map(String.init) }
        #expect(Set(ranges).count == 200, "ID ranges shared: \(ranges.count - Set(ranges).count)")
        #expect(Set(results.compactMap { $0.output.split(separator: "\n").dropFirst().first }).count == 200)
        #expect(eventually(within: 3) { HostState.capture() == host })
    }

    @Test func tenDebianMachinesBootTogether() throws {
        guard case .success(let tree) = DebianMachine.cached else {
            Issue.record("no Debian tree")
            return
        }
        let host = HostState.capture()
        let commands = (0..<10).map { ["-D", tree, "-x", "-M", "deb\($0)", "--boot-test"] }
        let results = try together(commands, timeout: 180)
        for (index, result) in results.enumerated() {
            #expect(result.status == 0 && result.output.contains("Boot test of deb\(index): running"), "\(result.output.suffix(600))")
        }
        #expect(eventually(within: 3) { HostState.capture() == host })
    }
}
