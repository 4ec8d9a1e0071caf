import Foundation
import Testing

/// A Debian bookworm minbase tree with systemd, built once by tools/make-debian-machine into a cache
/// keyed by the script's contents (its recipe), then copied per test so every boot starts pristine.
final class DebianMachine {
    static let cacheDirectory = "/var/cache/swift-nspawn/test-trees"

    /// The cached tree, built on first use; nil (with the reason) when it cannot be built here.
    static let cached: Result<String, TreeUnavailable> = {
        let script = TestEnvironment.packageRoot.appendingPathComponent("tools/make-debian-machine")
        guard let recipe = try? Data(contentsOf: script) else { return .failure(TreeUnavailable(reason: "tools/make-debian-machine is missing")) }
        let path = "\(cacheDirectory)/debian-\(fnv1a(recipe))"
        if FileManager.default.fileExists(atPath: path + "/usr/lib/systemd/systemd") { return .success(path) }
        try? FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let maker = Process()
        maker.executableURL = script
        maker.arguments = [path]
        maker.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        maker.standardError = errors
        do { try maker.run() } catch { return .failure(TreeUnavailable(reason: "\(error)")) }
        let deadline = Date().addingTimeInterval(900)
        while maker.isRunning && Date() < deadline { usleep(100_000) }
        if maker.isRunning { maker.terminate() }
        maker.waitUntilExit()
        guard maker.terminationStatus == 0 else {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            return .failure(TreeUnavailable(reason: "make-debian-machine failed: \(text.suffix(500))"))
        }
        return .success(path)
    }()

    struct TreeUnavailable: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    let directory: URL
    let root: URL
    var path: String { root.path }
    var name: String { root.lastPathComponent }

    /// A fresh copy of the cached tree; `customize` may change the copy before it boots.
    init(customize: (URL) throws -> Void = { _ in }) throws {
        let source = try Self.cached.get()
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("swift-nspawn-debian-\(UUID().uuidString.prefix(8))")
        root = directory.appendingPathComponent("deb\(UInt16.random(in: 0...UInt16.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let copy = Process()
        copy.executableURL = URL(fileURLWithPath: "/bin/cp")
        copy.arguments = ["-a", "--reflink=auto", source, root.path]
        try copy.run()
        copy.waitUntilExit()
        guard copy.terminationStatus == 0 else { throw TreeUnavailable(reason: "cp -a of the cached tree failed") }
        try customize(root)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Adds a service to the machine, wanted by multi-user.target.
    func addService(_ name: String, _ body: String) throws {
        let unit = root.appendingPathComponent("etc/systemd/system/\(name)")
        try "[Unit]\nDescription=\(name)\n\n\(body)\n\n[Install]\nWantedBy=multi-user.target\n".write(to: unit, atomically: false, encoding: .utf8)
        let wants = root.appendingPathComponent("etc/systemd/system/multi-user.target.wants")
        try FileManager.default.createDirectory(at: wants, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: wants.appendingPathComponent(name).path, withDestinationPath: "/etc/systemd/system/\(name)")
    }

    private static func fnv1a(_ data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return String(hash, radix: 16)
    }
}

/// A swift-nspawn run whose console transcript goes to a file the test can watch.
final class BootRun {
    let process = Process()
    let transcriptURL: URL
    private let errorURL: URL

    /// `prefix`: a command that runs swift-nspawn, such as nsenter into a test's network namespace.
    init(_ arguments: [String], in directory: URL, environment: [String: String] = [:], prefix: [String] = []) throws {
        transcriptURL = directory.appendingPathComponent("transcript")
        errorURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: transcriptURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        let command = prefix + [TestEnvironment.binary] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: transcriptURL)
        process.standardError = try FileHandle(forWritingTo: errorURL)
        try process.run()
    }

    var pid: pid_t { process.processIdentifier }
    var transcript: String { (try? String(contentsOf: transcriptURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: errorURL, encoding: .utf8)) ?? "" }

    /// Waits (bounded) until the transcript contains the text `count` times.
    func waitFor(_ text: String, count: Int = 1, timeout: TimeInterval = 90) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if transcript.components(separatedBy: text).count - 1 >= count { return true }
            if !process.isRunning { return false }
            usleep(50_000)
        }
        return false
    }

    /// The machine's PID 1 as the host sees it: swift-nspawn's child running systemd.
    var machinePID1: pid_t? {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(pid_t.init).first { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return fields.count > 1 && pid_t(fields[1]) == self.pid && cmdline.hasPrefix("/usr/lib/systemd/systemd")
        }
    }

    /// Waits (bounded) for the end; SIGKILLs swift-nspawn if it does not come.
    func finish(timeout: TimeInterval = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            Issue.record("swift-nspawn did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}
