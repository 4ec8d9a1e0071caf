import Foundation
import Testing

/// Integration tests drive the built binary as a black box, as root, on trees they build.
enum TestEnvironment {
    static let isRoot = getuid() == 0
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let rootReason: Comment = "needs root: run the suite with sudo (CI does)"

    /// systemd-nspawn 252 (package systemd-container), the reference the drop-in tests run side by
    /// side where it is installed; it runs here with --register=no --keep-unit.
    static let systemdNspawn: String? = FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-nspawn") ? "/usr/bin/systemd-nspawn" : nil

    /// The host's cgroup2 root offers the memory and pids controllers, so a machine's MemoryMax= and
    /// TasksMax= can bite (not on a hybrid host like the build machine, whose cgroup2 has none).
    static let hostDelegatesMemoryAndPids: Bool = {
        let root = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup"
        let text = (try? String(contentsOfFile: root + "/cgroup.controllers", encoding: .utf8)) ?? ""
        let controllers = Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }))
        return controllers.contains("memory") && controllers.contains("pids")
    }()
    static let noControllersReason: Comment =
        "this host's cgroup2 has no memory and pids controllers to delegate (hybrid layout); the VM lab (make vm-check) proves the limits"

    /// The swift-nspawn binary next to the test bundle, or $SWIFT_NSPAWN.
    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["SWIFT_NSPAWN"] { return path }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("swift-nspawn").path
    }()
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// A busybox machine in a temporary directory, made by tools/make-busybox-machine, with one more
/// user (alice, 1000) for --user. Removed when the value goes away.
final class TestMachine {
    let directory: URL
    let root: URL
    var path: String { root.path }
    var name: String { root.lastPathComponent }

    init(extraSetup: (URL) throws -> Void = { _ in }) throws {
        let fm = FileManager.default
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("swift-nspawn-test-\(UUID().uuidString.prefix(8))")
        root = directory.appendingPathComponent("m\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let maker = Process()
        maker.executableURL = TestEnvironment.packageRoot.appendingPathComponent("tools/make-busybox-machine")
        maker.arguments = [root.path]
        try maker.run()
        maker.waitUntilExit()
        guard maker.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        try fm.createDirectory(at: root.appendingPathComponent("home/alice"), withIntermediateDirectories: true)
        try "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
            .write(to: root.appendingPathComponent("etc/passwd"), atomically: false, encoding: .utf8)
        try "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\n"
            .write(to: root.appendingPathComponent("etc/group"), atomically: false, encoding: .utf8)
        _ = chown(root.appendingPathComponent("home/alice").path, 1000, 1000)
        try extraSetup(root)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Runs swift-nspawn on this tree, quiet and in pipe mode, with extra options before the command.
    func run(_ options: [String] = [], _ command: [String], timeout: TimeInterval = 20) throws -> RunResult {
        try runNspawn(["-D", path, "-P", "-q"] + options + command, timeout: timeout)
    }

    /// Compiles Fixtures/NAME.c statically into the machine's /usr/bin/NAME.
    func installFixture(_ name: String) throws {
        try compileFixture(name, to: root.appendingPathComponent("usr/bin/\(name)"))
    }

    /// Compiles Fixtures/NAME.c statically beside the tree, for the host to run; returns its path.
    func hostFixture(_ name: String) throws -> String {
        let output = directory.appendingPathComponent(name)
        try compileFixture(name, to: output)
        return output.path
    }

    /// `sh -c SCRIPT` inside the machine.
    func shell(_ script: String, options: [String] = []) throws -> RunResult {
        try run(options, ["/bin/sh", "-c", script])
    }
}

/// Compiles Fixtures/NAME.c statically to `output`.
func compileFixture(_ name: String, to output: URL) throws {
    let cc = Process()
    cc.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
    cc.arguments = ["-static", "-O1", "-o", output.path, TestEnvironment.packageRoot.appendingPathComponent("Tests/IntegrationTests/Fixtures/\(name).c").path]
    try cc.run()
    cc.waitUntilExit()
    guard cc.terminationStatus == 0 else {
        throw CocoaError(.executableLoad, userInfo: ["reason": "cc -static \(name).c failed (is libc6-dev installed?)"])
    }
}

/// A swift-nspawn process running in the background, for tests that act on it while it runs.
final class BackgroundRun {
    let process = Process()
    private let errorPipe = Pipe()

    /// `prefix`: a command that runs swift-nspawn in its place (nsenter: the same process).
    init(_ arguments: [String], prefix: [String] = []) throws {
        let command = prefix + [TestEnvironment.binary] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errorPipe
        try process.run()
    }

    var pid: pid_t { process.processIdentifier }

    /// Waits (bounded) until the predicate holds.
    func waitUntil(timeout: TimeInterval = 10, _ predicate: () -> Bool) -> Bool { eventually(within: timeout, predicate) }

    /// Waits (bounded) for the end; SIGKILLs the process if it does not come.
    func finish(timeout: TimeInterval = 15) -> (status: Int32, stderr: String) {
        if !waitUntil(timeout: timeout, { !process.isRunning }) {
            kill(pid, SIGKILL)
            Issue.record("swift-nspawn did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        let data = errorPipe.fileHandleForReading.readDataToEndOfFile()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Whether the predicate holds within `timeout` seconds, asked every 10 ms: for what the kernel
/// finishes in the background (a killed machine's namespaces and loop devices going away).
func eventually(within timeout: TimeInterval = 10, _ predicate: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if predicate() { return true }
        usleep(10_000)
    }
    return predicate()
}

/// Runs the binary with a bounded wait; a run that outlives it is killed and fails the test.
/// `prefix`: a command that runs swift-nspawn (its path and arguments follow), such as one that
/// gives it a private mount namespace with other host files.
/// `binary`: systemd-nspawn's, for the same run side by side.
func runNspawn(
    _ arguments: [String], timeout: TimeInterval = 20, asUser uid: UInt32? = nil, environment: [String: String] = [:], prefix: [String] = [],
    binary: String = TestEnvironment.binary
) throws -> RunResult {
    let process = Process()
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    var command = [binary] + arguments
    if let uid { command = ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups"] + command }
    command = prefix + command
    process.executableURL = URL(fileURLWithPath: command[0])
    process.arguments = Array(command.dropFirst())
    let directory = FileManager.default.temporaryDirectory
    let outURL = directory.appendingPathComponent("sn-out-\(UUID().uuidString)")
    let errURL = directory.appendingPathComponent("sn-err-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(2000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        Issue.record("swift-nspawn \(arguments) did not finish within \(timeout) s")
    }
    process.waitUntilExit()
    return RunResult(
        status: process.terminationStatus,
        stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

/// Runs systemd-nspawn 252 (nil where it is not installed) with --register=no --keep-unit, as it
/// runs here, under tools/with-nspawn-cleanup, which removes the cgroups it leaks on this host.
func runSystemdNspawn(_ arguments: [String], environment: [String: String] = [:], prefix: [String] = []) throws -> RunResult? {
    guard let binary = TestEnvironment.systemdNspawn else { return nil }
    return try runNspawn(
        ["--register=no", "--keep-unit"] + arguments, environment: environment,
        prefix: prefix + [TestEnvironment.packageRoot.appendingPathComponent("tools/with-nspawn-cleanup").path], binary: binary)
}

/// What a run may leave on the host: mounts, machine cgroups, runtime directories.
struct HostState: Equatable {
    var mounts: [String]
    var cgroups: [String]
    var runtime: [String]

    /// Where the cgroup2 hierarchy is: /sys/fs/cgroup/unified on a hybrid host like the build machine.
    static let cgroupRoot = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup"

    static func capture() -> HostState {
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let mounts = mountinfo.split(separator: "\n").map { String($0.split(separator: " ")[4]) }.sorted()
        let cgroups = ((try? FileManager.default.subpathsOfDirectory(atPath: cgroupRoot)) ?? []).filter { $0.contains("machine-") }.sorted()
        let runtime = ((try? FileManager.default.subpathsOfDirectory(atPath: "/run/swift-nspawn")) ?? []).filter { !keptDirectories.contains($0) }.sorted()
        return HostState(mounts: mounts, cgroups: cgroups, runtime: runtime)
    }

    /// Made once and kept (RuntimeDirectory): everything in them must go.
    static let keptDirectories: Set<String> = ["machine", "uid-range", "image", "network"]
}

/// A recursive listing of a tree with owners, modes, sizes and times: equal before and after a
/// run means the run wrote nothing into it.
func treeFingerprint(_ root: String) -> [String] {
    var result: [String] = []
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let relative = enumerator?.nextObject() as? String {
        result.append(fingerprint(root + "/" + relative, name: relative))
    }
    result.append(fingerprint(root, name: "."))
    return result.sorted()
}

private func fingerprint(_ path: String, name: String) -> String {
    var st = stat()
    lstat(path, &st)
    return "\(name) \(st.st_uid):\(st.st_gid) \(st.st_mode) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
}

/// The inode behind a namespace link such as /proc/self/ns/net: "net:[4026531840]".
func namespaceLink(_ kind: String, pid: String = "self") -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")) ?? ""
}

/// Unmounts a mount a test made. A machine that just ended may still hold a copy of it for a moment
/// (the kernel frees a detached mount tree after the last reference, in the background), which makes
/// umount2 EBUSY: retry for a bounded while, then detach it lazily, so no test leaves a mount behind.
func unmountTestMount(_ path: String) {
    let deadline = Date().addingTimeInterval(2)
    while umount2(path, 0) != 0 {
        guard errno == EBUSY, Date() < deadline else {
            if errno == EBUSY { umount2(path, Int32(MNT_DETACH)) }
            return
        }
        usleep(20_000)
    }
}
