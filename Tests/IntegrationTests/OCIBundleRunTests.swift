import Foundation
import Testing

@testable import NspawnCore

/// --oci-bundle: a busybox bundle whose config.json (as `runc spec` writes one: its mounts, masks
/// and read-only paths, with a bind, a tmpfs, a read-only root and limits) is run as the machine.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct OCIBundleRunTests {
    private func bundle(_ extra: String = "", user: String = #"{"uid": 0, "gid": 0}"#, domainname: String = "") throws -> (TestMachine, URL) {
        let machine = try TestMachine {
            for directory in ["data", "scratch"] {
                try FileManager.default.createDirectory(at: $0.appendingPathComponent(directory), withIntermediateDirectories: true)
            }
        }
        let data = machine.directory.appendingPathComponent("hostdata")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try "from the host\n".write(to: data.appendingPathComponent("f"), atomically: false, encoding: .utf8)
        let script =
            "hostname; pwd; echo $GREETING; cat /data/f; touch /x 2>/dev/null || echo ro-root; touch /data/g 2>/dev/null || echo ro-data; "
            + "touch /scratch/y && echo scratch-w; ulimit -n; grep NoNewPrivs /proc/self/status | tr -d '\\t'; "
            + "mkdir /sys/fs/cgroup/x 2>/dev/null || echo ro-cgroup; echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo ro-sysctl; "
            + "cat /proc/asound/cards 2>/dev/null | wc -c"
        let config = """
            {
              "ociVersion": "1.0.2",
              "process": {
                "terminal": false,
                "user": \(user),
                "args": ["sh", "-c", "\(script)"],
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello oci"],
                "cwd": "/tmp",
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
                "noNewPrivileges": true
              },
              "root": {"path": "\(machine.root.lastPathComponent)", "readonly": true},
              "hostname": "ocimachine",
              "domainname": "\(domainname)",
              "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=620", "gid=5"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
                {"destination": "/data", "type": "bind", "source": "\(data.path)", "options": ["rbind", "ro"]},
                {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777"]}
              ],
              "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
                "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                  "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]\(extra)
              }
            }
            """
        try config.write(to: machine.directory.appendingPathComponent("config.json"), atomically: false, encoding: .utf8)
        return (machine, machine.directory)
    }

    @Test func runsTheBundle() throws {
        let (machine, directory) = try bundle()
        defer { withExtendedLifetime(machine) {} }
        let host = HostState.capture()
        let result = try runNspawn(["--oci-bundle=\(directory.path)", "-q"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.lines == [
                "ocimachine", "/tmp", "hello oci", "from the host", "ro-root", "ro-data", "scratch-w", "512", "NoNewPrivs:1", "ro-cgroup", "ro-sysctl", "0",
            ],
            "\(result.stdout) \(result.stderr)")
        #expect(HostState.capture() == host)
        // The command line wins over the bundle.
        let ours = try runNspawn(["--oci-bundle=\(directory.path)", "-q", "--hostname=mine", "hostname"])
        #expect(ours.lines == ["mine"], "\(ours.stderr)")
    }

    /// process.user by number, with its supplementary groups as given (alice is in no group 5 of the
    /// machine's /etc/group); within the machine's range of IDs.
    @Test func numericUser() throws {
        let (machine, directory) = try bundle(user: #"{"uid": 1000, "gid": 1000, "additionalGids": [5]}"#)
        defer { withExtendedLifetime(machine) {} }
        let result = try runNspawn(["--oci-bundle=\(directory.path)", "-q", "/bin/sh", "-c", "id -u; id -g; id -G; echo $HOME"])
        #expect(result.lines == ["1000", "1000", "1000 5", "/home/alice"], "\(result.stdout) \(result.stderr)")
        let (outside, far) = try bundle(user: #"{"uid": 70000, "gid": 70000}"#)
        defer { withExtendedLifetime(outside) {} }
        let refused = try runNspawn(["--oci-bundle=\(far.path)", "-U", "true"])
        #expect(refused.status == 1 && refused.stderr.contains("lies outside the machine's 65536 IDs"), "\(refused.stderr)")
    }

    /// linux.seccomp holds the machine's processes, on top of swift-nspawn's own filter.
    @Test func seccompProfile() throws {
        let (machine, directory) = try bundle(
            #", "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]}"#)
        defer { withExtendedLifetime(machine) {} }
        let result = try runNspawn(["--oci-bundle=\(directory.path)", "-q", "/bin/sh", "-c", "mkdir /tmp/q; echo $?"])
        #expect(result.lines == ["1"], "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("can't create directory '/tmp/q': Invalid cross-device link"), "\(result.stderr)")
    }

    /// domainname is the machine's UTS namespace's. A machine's mounts are private as they are (none
    /// is a slave of the host's): rootfsPropagation private changes nothing, unbindable makes them
    /// unbindable, shared and slave are refused.
    @Test func domainnameAndRootPropagation() throws {
        let script = "cat /proc/sys/kernel/domainname; grep -c master: /proc/self/mountinfo; grep -c unbindable /proc/self/mountinfo"
        var counts: [String: [String]] = [:]
        for propagation in ["", "rprivate", "unbindable"] {
            let (machine, directory) = try bundle(#", "rootfsPropagation": "\#(propagation)""#, domainname: "example.org")
            defer { withExtendedLifetime(machine) {} }
            let result = try runNspawn(["--oci-bundle=\(directory.path)", "-q", "/bin/sh", "-c", script])
            #expect(result.lines.first == "example.org", "\(result.stdout) \(result.stderr)")
            counts[propagation] = Array(result.lines.dropFirst())
        }
        #expect(counts[""] == ["0", "0"] && counts["rprivate"] == ["0", "0"], "\(counts)")
        #expect(counts["unbindable"]?.first == "0" && counts["unbindable"]?.last != "0", "\(counts)")
        for refused in ["rshared", "slave"] {
            let (machine, directory) = try bundle(#", "rootfsPropagation": "\#(refused)""#)
            defer { withExtendedLifetime(machine) {} }
            let result = try runNspawn(["--oci-bundle=\(directory.path)", "-q", "/bin/true"])
            #expect(result.status == 1 && result.stderr.contains("linux.rootfsPropagation: \(refused) is not supported by swift-nspawn"), "\(result.stderr)")
        }
    }

    /// A field swift-nspawn cannot honour: one line naming it, status 1, nothing left.
    @Test func unsupportedFieldIsRefused() throws {
        let (machine, directory) = try bundle(#", "intelRdt": {"closID": "guaranteed_group"}"#)
        defer { withExtendedLifetime(machine) {} }
        let host = HostState.capture()
        let result = try runNspawn(["--oci-bundle=\(directory.path)"])
        let real = try FileSystem.canonicalPath(directory.path)
        #expect(result.status == 1 && result.stderrLines == ["\(real)/config.json: linux.intelRdt: not supported by swift-nspawn."], "\(result.stderr)")
        #expect(HostState.capture() == host)
        let both = try runNspawn(["--oci-bundle=\(directory.path)", "-D", directory.path])
        #expect(both.status == 1 && both.stderr.contains("--oci-bundle= may not be combined with --directory="), "\(both.stderr)")
    }
}
