import Foundation
import Testing

@testable import NspawnCore

/// config.json as JSON, and as the options it stands for.
struct OCIBundleTests {
    private func parse(_ text: String) throws(JSONValue.SyntaxError) -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    @Test func json() throws {
        let value = try parse(#" {"a": [1, -2.5e3, true, false, null, "x\"\\\/\t\u00e9\ud83d\ude00"], "b": {}, "c": 18446744073709551615} "#)
        #expect(value["a"]?.array?.count == 6)
        #expect(value["a"]?.array?[5].string == "x\"\\/\té😀")
        #expect(value["c"]?.uint64 == UInt64.max && value["a"]?.array?[0].int64 == 1)
        #expect(value["b"] == .object([:]))
        for bad in [
            "", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "1.", "-", "\"\\x\"", "\"\u{1}\"", "\"\\ud800\"", "[1] 2", "{\"a\":1,\"a\":2}", "tru",
            "\"\\u0000\"", "\"a\\nb\"",
            String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
        ] {
            #expect(throws: JSONValue.SyntaxError.self, "\(bad)") { try parse(bad) }
        }
        // Bytes that are not UTF-8 are refused, not repaired.
        #expect(throws: JSONValue.SyntaxError.self) { try JSONValue.parse([0x22, 0xff, 0x22]) }
    }

    /// What `runc spec` writes (its mounts, masks and read-only paths), less its terminal, with a
    /// bind, a tmpfs and limits.
    static let config = """
        {
          "ociVersion": "1.0.2",
          "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "echo hi there"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/tmp",
            "capabilities": {
              "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
              "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
              "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
              "ambient": ["CAP_KILL"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
            "noNewPrivileges": true
          },
          "root": {"path": "rootfs", "readonly": true},
          "hostname": "oci",
          "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro", "rprivate"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777"]}
          ],
          "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}], "memory": {"limit": 104857600}},
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
              "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
          }
        }
        """

    private func configuration(_ json: String, commandLine: [String] = [], runtime: Bool = false) throws -> Configuration {
        var options = CommandLineOptions()
        try CommandLineParser.read(["--oci-bundle=/b"] + commandLine, into: &options)
        let file = SettingsFile(
            path: "/b/config.json", trusted: true,
            assignments: try OCIBundle.assignments(try parse(json), bundle: "/b", path: "/b/config.json", runtime: runtime), warnings: [])
        return try file.configuration(commandLine: options, override: false, environment: { _ in nil }).configuration
    }

    @Test func runcSpecBecomesOptions() throws {
        let c = try configuration(Self.config)
        #expect(c.directory == "/b/rootfs" && c.readOnly && c.hostname == "oci" && c.console == .pipe)
        #expect(c.command == ["sh", "-c", "echo hi there"] && c.workingDirectory == "/tmp")
        #expect(c.environment == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"])
        #expect(c.capabilities.bounding == (try CapabilitySet.parse("CAP_AUDIT_WRITE,CAP_KILL,CAP_NET_BIND_SERVICE", option: "")))
        #expect(c.capabilities.ambient == (try CapabilitySet.parse("CAP_KILL", option: "")) && c.capabilities.noNewPrivileges)
        #expect(c.process.resourceLimits.map(\.soft) == [512] && c.process.resourceLimits.map(\.hard) == [1024])
        #expect(c.binds.map(\.destination) == ["/data"] && c.tmpfs.map(\.destination) == ["/scratch"])
        #expect(c.tmpfs.first?.options.contains("mode=1777") == true)
        #expect(c.network.privateNetwork && c.userNamespace == .no)
        #expect(c.inaccessible == ["/proc/acpi", "/proc/asound", "/proc/latency_stats", "/proc/timer_stats", "/sys/firmware", "/proc/scsi"])
        #expect(c.properties.count == 1 && c.cgroupReadOnly && c.procSysReadOnly)
        // The command line wins; the bundle's masks and limits stay with other mounts and limits given.
        let ours = try configuration(Self.config, commandLine: ["--hostname=mine", "--bind=/opt", "--property=CPUWeight=50", "/bin/true"])
        #expect(ours.hostname == "mine" && ours.command == ["/bin/true"])
        #expect(ours.inaccessible.count == 6 && ours.properties.count == 2 && ours.binds.count == 1)
        let memory = try configuration(Self.config, commandLine: ["--property=MemoryMax=1G"])
        #expect(memory.properties == [.memoryMax(1 << 30)])
    }

    /// process.user as numbers, never a name looked up in the machine's passwd; -u given wins.
    @Test func numericUser() throws {
        let numeric = Self.config.replacingOccurrences(
            of: #""user": {"uid": 0, "gid": 0}"#, with: #""user": {"uid": 1000, "gid": 100, "additionalGids": [10, 20]}"#)
        let c = try configuration(numeric)
        #expect(c.identity == NumericIdentity(parsing: "1000:100:10,20") && c.user == nil)
        let named = try configuration(numeric, commandLine: ["-u", "alice"])
        #expect(named.identity == nil && named.user == "alice")
    }

    @Test func namespacesAndMappings() throws {
        let shared = Self.config.replacingOccurrences(of: #", {"type": "network"}"#, with: "")
        #expect(!(try configuration(shared)).network.privateNetwork)
        let mapped = Self.config.replacingOccurrences(
            of: #"{"type": "network"}]"#,
            with:
                #"{"type": "network"}, {"type": "user"}], "uidMappings": [{"containerID": 0, "hostID": 1048576, "size": 65536}], "gidMappings": [{"containerID": 0, "hostID": 1048576, "size": 65536}]"#
        )
        #expect(try configuration(mapped).userNamespace == .fixed(UIDRange(base: 1_048_576, count: 65536)))
        // An idmap of an rbind would map only its top mount: swift-nspawn maps submounts too.
        let rbindIdmap = mapped.replacingOccurrences(of: #""rbind", "ro", "rprivate""#, with: #""rbind", "idmap""#)
        #expect(throws: UserError.self) { try configuration(rbindIdmap) }
        #expect(try configuration(mapped.replacingOccurrences(of: #""rbind", "ro", "rprivate""#, with: #""rbind", "ridmap""#)).binds.count == 1)
        // A pod's namespace to join, with a user namespace of the container's own: refused.
        let podWithUser = mapped.replacingOccurrences(of: #"{"type": "ipc"}"#, with: #"{"type": "ipc", "path": "/proc/7/ns/ipc"}"#)
        #expect(podWithUser != mapped)
        #expect(throws: UserError.self) { try configuration(podWithUser) }
        // A time namespace, with offsets.
        let time = Self.config.replacingOccurrences(
            of: #"{"type": "network"}]"#, with: #"{"type": "network"}, {"type": "time"}], "timeOffsets": {"boottime": {"secs": -3, "nanosecs": 7}}"#)
        #expect(try configuration(time).timeNamespace == TimeOffsets(boottime: (-3, 7)))
        #expect(try configuration(Self.config).timeNamespace == nil)
        let offsetsAlone = Self.config.replacingOccurrences(of: #"{"type": "network"}]"#, with: #"{"type": "network"}], "timeOffsets": {}"#)
        #expect(throws: UserError.self) { try configuration(offsetsAlone) }
        // linux.devices, and a rule allowing one of them.
        let devices = Self.config.replacingOccurrences(
            of: #""resources": {"devices": [{"allow": false, "access": "rwm"}]"#,
            with:
                #""devices": [{"type": "c", "path": "/dev/net/tun", "major": 10, "minor": 200, "fileMode": 384}, {"type": "c", "path": "/dev/null", "major": 1, "minor": 3}], "resources": {"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "r"}]"#
        )
        #expect(devices != Self.config)
        #expect(try configuration(devices).devices == [DeviceNode(name: "net/tun", major: 10, minor: 200, mode: 0o600)])
        // A pod's IPC and UTS namespaces, joined by path.
        let joined = Self.config.replacingOccurrences(
            of: #"{"type": "ipc"}, {"type": "uts"}"#, with: #"{"type": "ipc", "path": "/proc/7/ns/ipc"}, {"type": "uts", "path": "/proc/7/ns/uts"}"#)
        #expect(joined != Self.config)
        #expect(
            try configuration(joined).joinedNamespaces.map(\.text) == ["ipc:/proc/7/ns/ipc", "uts:/proc/7/ns/uts"])
    }

    /// What swift-nspawn cannot honour is refused, naming the field.
    @Test func unsupportedFieldsAreNamed() throws {
        let cases = [
            (#""hostname": "oci","#, #""hostname": "oci", "hooks": {"prestart": [{"path": "/bin/true"}]},"#, "/b/config.json: hooks: not supported"),
            (#""1.0.2""#, #""0.9""#, "ociVersion: a version 1.x"),
            (
                #""maskedPaths""#, #""sysctl": {"kernel.panic": "1"}, "maskedPaths""#,
                "linux.sysctl: kernel.panic is not a setting of the machine's own namespaces."
            ),
            (#""maskedPaths""#, #""sysctl": {"net.ipv4.ping_group_range": 0}, "maskedPaths""#, "linux.sysctl.net.ipv4.ping_group_range: expected a string."),
            (#"{"type": "pid"}, "#, "", "linux.namespaces: swift-nspawn always gives a machine a pid namespace of its own."),
            (
                #""type": "bind", "source": "/srv", "options": ["rbind", "ro", "rprivate"]"#, #""type": "nfs", "source": "/srv", "options": ["ro"]"#,
                "mounts[7]: a nfs mount on /data is not supported"
            ),
            (#""rbind", "ro""#, #""rbind", "sync""#, "mounts[7].options: sync not supported for binds."),
            (#""memory": {"limit": 104857600}"#, #""memory": {"limit": 104857600, "swap": 1}"#, "linux.resources.memory.swap: not supported"),
            (
                #""user": {"uid": 0, "gid": 0}"#, #""user": {"uid": 1000, "gid": 1000, "additionalGids": [10, "x"]}"#,
                "process.user.additionalGids[1]: expected an integer"
            ),
            (#""user": {"uid": 0, "gid": 0}"#, #""user": {"uid": 0, "gid": 0, "username": "root"}"#, "process.user.username: not supported"),
            (#""user": {"uid": 0, "gid": 0}"#, #""user": {"uid": "1000", "gid": 0}"#, "process.user.uid: expected an integer"),
            (#""user": {"uid": 0, "gid": 0}"#, #""user": {"uid": 1e3, "gid": 0}"#, "process.user.uid: expected an integer"),
            (#""readonly": true"#, #""readonly": "true""#, "root.readonly: expected true or false."),
            (#""noNewPrivileges": true"#, #""noNewPrivileges": true, "bogus": 1"#, "process.bogus: not supported by swift-nspawn."),
            (#"{"type": "network"}]"#, #"{"type": "network"}, {"type": "pid"}]"#, "the pid namespace is listed twice."),
            (#"{"type": "network"}]"#, #"{"type": "network"}, {"type": "user", "path": "/proc/1/ns/user"}]"#, "joining a user namespace is not supported"),
            (
                #""maskedPaths""#, #""uidMappings": [{"containerID": 0, "hostID": 65536, "size": 65536}], "maskedPaths""#,
                "linux.uidMappings: given without a user namespace."
            ),
            (#""mode=1777"]}"#, #""mode=1777", "noexec"]}"#, "mounts[8].options: noexec not supported for tmpfs mounts."),
            (#""rbind", "ro", "rprivate""#, #""rbind", "ro", "idmap""#, "mounts[7].options: idmap needs a user namespace."),
            (#""size=65536k"]}"#, #""size=1g"]}"#, "mounts[1].options: size=1g on /dev: swift-nspawn mounts it its own way."),
            (#""args": ["sh", "-c", "echo hi there"]"#, #""args": []"#, "process.args: missing or empty."),
            (
                #""maskedPaths""#, #""devices": [{"type": "p", "path": "/dev/f", "major": 0, "minor": 0}], "maskedPaths""#,
                "linux.devices[0].type: expected c, u or b"
            ),
            (
                #""maskedPaths""#, #""devices": [{"type": "c", "path": "/tmp/f", "major": 1, "minor": 1}], "maskedPaths""#,
                "linux.devices[0].path: expected a path below /dev"
            ),
            (#""maskedPaths""#, #""devices": [{"type": "c", "path": "/dev/../f", "major": 1, "minor": 1}], "maskedPaths""#, "linux.devices[0].path: expected"),
            (
                #""maskedPaths""#, #""devices": [{"type": "c", "path": "/dev/null", "major": 1, "minor": 1}], "maskedPaths""#,
                "/dev/null is swift-nspawn's own 1:3."
            ),
            (
                // (Refused as JSON already: swift-nspawn takes no control character in a string.)
                #""maskedPaths""#, #""devices": [{"type": "c", "path": "/dev/a\nc 8:0 666 0:0 ../x", "major": 1, "minor": 1}], "maskedPaths""#,
                "control character in a string"
            ),
            (
                #"{"allow": false, "access": "rwm"}]"#,
                #"{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}]"#,
                "linux.resources.devices[1]: swift-nspawn allows the devices it makes, and no others."
            ),
        ]
        for (old, new, expected) in cases {
            #expect(Self.config.contains(old), "\(old)")
            do {
                _ = try configuration(Self.config.replacingOccurrences(of: old, with: new))
                Issue.record("accepted: \(expected)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }

    /// What containerd 1.6's ctr run gives swift-nspawn-runc (its default spec, as recorded; shared
    /// with the integration tests and bench/oci).
    static let containerdConfig: String = {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("IntegrationTests/Fixtures/containerd-spec.json")
        return (try? String(contentsOf: fixture, encoding: .utf8)) ?? ""
    }()

    /// swift-nspawn-runc takes what engines send: their device rules (the devices every swift-nspawn
    /// machine has), the default CPU weight, and cgroupsPath, which places the machine's cgroup.
    @Test func containerdSpecForTheRuntime() throws {
        let c = try configuration(Self.containerdConfig, runtime: true)
        #expect(c.cgroupPath == "/default/t1" && c.command == ["/bin/sh", "-c", "exit 42"] && c.network.privateNetwork)
        // Read as --oci-bundle, cgroupsPath is not swift-nspawn's to follow.
        #expect(throws: UserError.self) { try configuration(Self.containerdConfig) }
        let cases = [
            (
                #"{"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"}, "#, "",
                "linux.resources.devices: denies the device 1:7, which every swift-nspawn machine has."
            ),
            (#""major": 5, "minor": 2,"#, #""major": 195, "minor": 2,"#, "linux.resources.devices[9]: swift-nspawn allows the devices it makes"),
            (#""major": 5, "minor": 2, "access": "rwm""#, #""major": 5, "minor": 2, "access": "rwx""#, "linux.resources.devices[9]: swift-nspawn allows"),
            (#""allow": false, "access": "rwm""#, #""allow": false, "type": "c", "major": 1, "access": "rwm""#, "a denial of some only is not supported"),
            (#""shares": 1024"#, #""shares": 512"#, "linux.resources.cpu.shares: not supported"),
            (#""major": 1, "minor": 3, "access": "rwm""#, #""major": 1, "minor": 3, "access": "r""#, "linux.resources.devices[1]: swift-nspawn allows"),
            (#""nosuid", "strictatime", "mode=755", "size=65536k"]}]"#, #""nosuid", "ro", "mode=755"]}]"#, "mounts[6].options: ro on /run"),
            (#""/default/t1""#, #""/default/../t1""#, "linux.cgroupsPath: may not contain . or .. components."),
            (#"{"type": "network"}]"#, #"{"type": "network"}, {"type": "user"}]"#, "swift-nspawn-runc needs the user namespace's mappings"),
        ]
        for (old, new, expected) in cases {
            #expect(Self.containerdConfig.contains(old), "\(old)")
            do {
                _ = try configuration(Self.containerdConfig.replacingOccurrences(of: old, with: new), runtime: true)
                Issue.record("accepted: \(expected)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }
}
