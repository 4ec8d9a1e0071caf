import Foundation
import Testing

/// The notify socket: what the machine's PID 1 says reaches our service manager; nobody else is heard.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct NotifyTests {
    /// A datagram socket standing in for our own service manager's $NOTIFY_SOCKET.
    final class ServiceManagerSocket {
        let path: String
        let fd: Int32

        init(in directory: URL) {
            path = directory.appendingPathComponent("notify.sock").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }

        deinit { close(fd) }

        var messages: [String] {
            var result: [String] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return result }
                result.append(String(decoding: buffer[0..<n], as: UTF8.self))
            }
        }
    }

    private func machineWithProbe() throws -> TestMachine {
        let machine = try TestMachine()
        try machine.installFixture("notify-probe")
        return machine
    }

    private func run(_ machine: TestMachine, options: [String], script: String, manager: ServiceManagerSocket) throws -> RunResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.binary)
        process.arguments = ["-D", machine.path, "-P", "-q"] + options + ["/bin/sh", "-c", script]
        process.environment = ["NOTIFY_SOCKET": manager.path, "PATH": "/usr/bin:/bin"]
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return RunResult(status: process.terminationStatus, stdout: "", stderr: "")
    }

    @Test func readyIsSentAtExecByDefault() throws {
        let machine = try machineWithProbe()
        let manager = ServiceManagerSocket(in: machine.directory)
        #expect(try run(machine, options: [], script: "true", manager: manager).status == 0)
        #expect(manager.messages.contains { $0.contains("READY=1") })
    }

    @Test func onlyPID1IsHeardAndFloodsDoNotHurt() throws {
        let machine = try machineWithProbe()
        let manager = ServiceManagerSocket(in: machine.directory)
        let script = """
            notify-probe READY=1; notify-probe STATUS=spoofed; notify-probe --flood 2000 STATUS=flood; \
            notify-probe --big 200000 x; exec notify-probe --sleep 300 'READY=1
            STATUS=from-pid1'
            """
        #expect(try run(machine, options: ["--notify-ready=yes"], script: script, manager: manager).status == 0)
        let messages = manager.messages
        #expect(messages.contains("STATUS=from-pid1"), "\(messages)")
        #expect(messages.contains("READY=1"), "\(messages)")
        #expect(!messages.contains { $0.contains("spoofed") || $0.contains("flood") || $0.hasPrefix("STATUS=xx") }, "\(messages)")
        #expect(messages.count == 2, "\(messages)")
    }
}
