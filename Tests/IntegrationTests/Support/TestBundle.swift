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

    /// containerd 1.6's default spec for `ctr run` (recorded from a real run), with process.args,
    /// root and cgroupsPath filled in by init.
    static let containerdSpec = """
        {"ociVersion": "1.0.2-dev",
         "process": {"user": {"uid": 0, "gid": 0}, "args": [], "cwd": "/", "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
           "capabilities": {
             "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
               "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
             "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
               "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
             "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
               "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]},
           "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true},
         "root": {"path": "rootfs"},
         "mounts": [
           {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
           {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
           {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
           {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
           {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
           {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
           {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}],
         "linux": {
           "resources": {"devices": [{"allow": false, "access": "rwm"},
             {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
             {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"}, {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
             {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
             {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"}, {"allow": true, "type": "c", "major": 136, "access": "rwm"},
             {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"}],
             "cpu": {"shares": 1024}},
           "cgroupsPath": "",
           "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
           "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
             "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
           "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]}}
        """
}
