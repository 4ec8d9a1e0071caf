import Foundation
import Testing

/// The escape classes of peers-and-security.md §2, tried from inside a machine with the default
/// options by Fixtures/escape-probe.c on an interactive console; every one must be blocked.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct EscapeTests {
    static let abstractSocket = "swift-nspawn-test-\(getpid())"

    /// The probe's report, "NAME → (state, detail)", from one run shared by all the tests.
    static let report: Result<[String: (state: String, detail: String)], ProbeFailure> = {
        do {
            let machine = try TestMachine()
            try machine.installFixture("escape-probe")

            // A host abstract socket that the machine, with its own network namespace, must not reach.
            let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(listener) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let name = Array(abstractSocket.utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in name.enumerated() { raw[i + 1] = b } }
            let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.count)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
            listen(listener, 1)

            let script = Process()
            script.executableURL = URL(fileURLWithPath: "/usr/bin/script")
            script.arguments = ["-qfec", "\(TestEnvironment.binary) -q -D \(machine.path) /usr/bin/escape-probe \(abstractSocket)", "/dev/null"]
            let out = Pipe()
            script.standardOutput = out
            script.standardInput = FileHandle.nullDevice
            try script.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            script.waitUntilExit()
            var result: [String: (String, String)] = [:]
            for line in String(decoding: data, as: UTF8.self).components(separatedBy: .newlines) {
                let fields = line.drop { !$0.isLetter }.split(separator: " ", maxSplits: 2)
                if fields.count >= 2 { result[String(fields[0])] = (String(fields[1]), fields.count > 2 ? String(fields[2]) : "") }
            }
            return result.isEmpty ? .failure(ProbeFailure(reason: "the probe printed nothing")) : .success(result)
        } catch {
            return .failure(ProbeFailure(reason: "\(error)"))
        }
    }()

    struct ProbeFailure: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    @Test(arguments: [
        "processes-outside-visible", "pid1-root-and-cwd", "stray-fds-at-exec", "inheritable-ambient-caps",
        "core-pattern-write", "sysrq-trigger", "fresh-procfs-core-pattern", "read-kcore", "read-kallsyms",
        "read-keys", "read-timer-list", "mknod-host-disk", "remount-readonly-rw", "unmount-mask/kallsyms",
        "unmount-mask/keys", "unmount-mask/timer_list", "unmount-mask/kcore", "unmount-mask/sched_debug", "unmount-readonly-proc-sys", "open-by-handle-at",
        "add-key", "keyctl", "bpf", "perf-event-open", "userfaultfd", "init-module", "kexec-load", "swapon",
        "clock-settime", "acct", "tiocsti", "tiocsti-64bit", "tioclinux", "cgroup-v1-release-agent",
        "host-abstract-socket", "open/mem", "open/kmem", "open/port", "open/kmsg", "netlink-audit",
        "unknown-syscall-enosys",
    ])
    func escapeIsBlocked(attempt: String) throws {
        let report = try Self.report.get()
        let hostHasIt: Bool
        switch attempt {
        case "sysrq-trigger": hostHasIt = FileManager.default.fileExists(atPath: "/proc/sysrq-trigger")
        case "read-kcore", "unmount-mask/kcore": hostHasIt = FileManager.default.fileExists(atPath: "/proc/kcore")
        case "unmount-mask/sched_debug": hostHasIt = FileManager.default.fileExists(atPath: "/proc/sched_debug")
        default: hostHasIt = true
        }
        let entry = try #require(report[attempt], "the probe did not report \(attempt)")
        if hostHasIt {
            #expect(entry.state == "blocked", "\(attempt): \(entry.state) (\(entry.detail))")
        } else {
            #expect(entry.state != "OPEN", "\(attempt): \(entry.detail)")
        }
    }
}
