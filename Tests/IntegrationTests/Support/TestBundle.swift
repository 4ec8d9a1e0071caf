import Foundation
import Testing

/// An OCI bundle for swift-nspawn-runc: a busybox tree and a config.json as containerd 1.6 writes
/// it (its default spec), with a --root and a cgroup parent of its own, and the runtime's name
/// linked to the binary under test (swift-nspawn-runc is the same executable).
final class TestBundle {
    let machine: TestMachine
    let path: String
    let stateRoot: String
    let runtime: String
    /// The cgroupsPath parent, below the cgroup2 root: removed with the bundle.
    let cgroupParent: String
    var cgroupParentPath: String { HostState.cgroupRoot + cgroupParent }

    /// `args`: process.args; `edit` changes the config before it is written.
    init(_ args: [String], id: String = "c", edit: (inout [String: Any]) -> Void = { _ in }) throws {
        machine = try TestMachine()
        path = machine.directory.appendingPathComponent("bundle").path
        stateRoot = machine.directory.appendingPathComponent("state").path
        runtime = machine.directory.appendingPathComponent("swift-nspawn-runc").path
        cgroupParent = "/swift-nspawn-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: runtime, withDestinationPath: TestEnvironment.binary)
        var config = try JSONSerialization.jsonObject(with: Data(Self.containerdSpec.utf8)) as! [String: Any]
        var process = config["process"] as! [String: Any]
        process["args"] = args
        config["process"] = process
        config["root"] = ["path": machine.path]
        var linux = config["linux"] as! [String: Any]
        linux["cgroupsPath"] = "\(cgroupParent)/\(id)"
        config["linux"] = linux
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path + "/config.json"))
    }

    deinit {
        // What a test left running, and the parent cgroups create made (as runc, delete leaves them).
        if let children = try? FileManager.default.contentsOfDirectory(atPath: cgroupParentPath) {
            for child in children where !child.hasPrefix("cgroup.") && !child.contains(".") {
                _ = try? "1".write(toFile: "\(cgroupParentPath)/\(child)/cgroup.kill", atomically: false, encoding: .utf8)
                _ = eventually(within: 2) { rmdir("\(cgroupParentPath)/\(child)") == 0 }
            }
        }
        rmdir(cgroupParentPath)
    }

    struct ScriptResult {
        var status: Int32
        var stdout: String
        var stderr: String
        /// The exit statuses of the processes orphaned to the subreaper (the containers' PID 1s), by PID.
        var reaped: [Int32: Int32]
        /// stdout without the subreaper's lines.
        var output: [String] { stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("reaped ") } }
    }

    /// Runs a shell script under tools/subreaper (which reaps the containers as containerd's shim
    /// would), in the bundle's directory, with $R the runtime with this bundle's --root.
    func script(_ body: String, timeout: TimeInterval = 30) throws -> ScriptResult {
        let script = "set -u\ncd '\(path)'\nR='\(runtime) --root \(stateRoot)'\n" + body
        let result = try runNspawn(
            ["-c", script], timeout: timeout,
            prefix: [TestEnvironment.packageRoot.appendingPathComponent("tools/subreaper").path, "--timeout", "\(Int(timeout))"], binary: "/bin/sh")
        var reaped: [Int32: Int32] = [:]
        for line in result.lines where line.hasPrefix("reaped ") {
            let fields = line.split(separator: " ")
            if fields.count == 3, let pid = Int32(fields[1]), let status = Int32(fields[2]) { reaped[pid] = status }
        }
        return ScriptResult(status: result.status, stdout: result.stdout, stderr: result.stderr, reaped: reaped)
    }

    /// containerd 1.6's default spec for `ctr run` (recorded from a real run; shared with the unit
    /// tests and bench/oci), with process.args, root and cgroupsPath filled in by init.
    static let containerdSpec: String = {
        let fixture = TestEnvironment.packageRoot.appendingPathComponent("Tests/IntegrationTests/Fixtures/containerd-spec.json")
        return (try? String(contentsOf: fixture, encoding: .utf8)) ?? "{}"
    }()
}
