import Foundation
import Testing

/// .nspawn settings files: found beside the tree (untrusted) or in /etc/systemd/nspawn (trusted),
/// carried into the machine, and side by side with systemd-nspawn 252 where it runs here.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct SettingsTests {
    /// Writes NAME.nspawn beside the machine's tree.
    private func writeSettings(_ text: String, for machine: TestMachine) throws {
        try text.write(to: machine.directory.appendingPathComponent("\(machine.name).nspawn"), atomically: false, encoding: .utf8)
    }

    static let asksTooMuch = """
        [Exec]
        Hostname=fromfile
        Capability=CAP_SYS_MODULE
        Environment=FROM_FILE=yes
        [Files]
        Bind=/etc:/hostetc
        [Network]
        Port=8080
        [X-Other]
        Anything=1
        """

    static let script = "hostname; echo ${FROM_FILE:-none}; ls -d /hostetc 2>/dev/null || echo no-bind; grep CapBnd /proc/self/status"

    /// An untrusted file beside the tree sets what the tree alone may ask for; its binds, ports and
    /// capabilities are ignored, each with a warning naming the key. systemd-nspawn 252 does the same.
    @Test func untrustedFileBesideTheTree() throws {
        let machine = try TestMachine()
        try writeSettings(Self.asksTooMuch, for: machine)
        let host = HostState.capture()
        let result = try runNspawn(["-D", machine.path, "-P", "/bin/sh", "-c", Self.script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Array(result.lines.prefix(3)) == ["fromfile", "yes", "no-bind"], "\(result.stdout)")
        let bounding = UInt64(result.lines.last?.split(separator: "\t").last ?? "", radix: 16) ?? 0
        #expect(bounding & (1 << 16) == 0, "CAP_SYS_MODULE must not be granted: \(result.stdout)")
        for key in ["Capability", "Bind", "Port"] {
            #expect(result.stderrLines.filter { $0.contains("Ignoring \(key)= in an untrusted settings file") }.count == 1, "\(result.stderr)")
        }
        #expect(HostState.capture() == host)

        if let theirs = try runSystemdNspawn(["-D", machine.path, "-P", "/bin/sh", "-c", Self.script]) {
            #expect(Array(theirs.lines.prefix(3)) == ["fromfile", "yes", "no-bind"], "systemd-nspawn: \(theirs.stdout) \(theirs.stderr)")
        }
    }

    /// --settings=trusted believes the same file: the bind and the capability are there.
    @Test func trustedFileIsBelieved() throws {
        let machine = try TestMachine()
        try writeSettings(Self.asksTooMuch.replacingOccurrences(of: "Port=8080", with: ""), for: machine)
        let result = try runNspawn(["-D", machine.path, "-P", "--settings=trusted", "/bin/sh", "-c", Self.script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Array(result.lines.prefix(3)) == ["fromfile", "yes", "/hostetc"], "\(result.stdout) \(result.stderr)")
        let bounding = UInt64(result.lines.last?.split(separator: "\t").last ?? "", radix: 16) ?? 0
        #expect(bounding & (1 << 16) != 0, "\(result.stdout)")
    }

    /// A file in /etc/systemd/nspawn (here in a mount namespace of the test's own) is trusted and
    /// found before the one beside the tree.
    @Test func etcFileIsTrustedAndComesFirst() throws {
        let machine = try TestMachine()
        try writeSettings("[Exec]\nHostname=beside\n", for: machine)
        let etc = machine.directory.appendingPathComponent("etc-nspawn")
        try FileManager.default.createDirectory(at: etc, withIntermediateDirectories: true)
        try "[Exec]\nHostname=frometc\n[Files]\nBind=/etc:/hostetc\n".write(
            to: etc.appendingPathComponent("\(machine.name).nspawn"), atomically: false, encoding: .utf8)
        let script = "mount -t tmpfs tmpfs /etc/systemd && mkdir /etc/systemd/nspawn && mount --bind \"$0\" /etc/systemd/nspawn && exec \"$@\""
        let result = try runNspawn(
            ["-D", machine.path, "-P", "/bin/sh", "-c", "hostname; ls -d /hostetc"],
            prefix: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, etc.path])
        #expect(result.lines == ["frometc", "/hostetc"], "\(result.stdout) \(result.stderr)")
    }

    /// The command line wins; with --settings=override the file does; --settings=no reads nothing.
    @Test func whoWins() throws {
        let machine = try TestMachine()
        try writeSettings("[Exec]\nHostname=fromfile\n", for: machine)
        #expect(try machine.run(["--hostname=cmd"], ["hostname"]).lines == ["cmd"])
        #expect(try machine.run(["--hostname=cmd", "--settings=override"], ["hostname"]).lines == ["fromfile"])
        #expect(try machine.run(["--settings=no"], ["hostname"]).lines == [machine.name])
    }

    /// A disk image's file lies beside the image, named after the machine (the file's name less .raw).
    @Test func fileBesideDiskImage() throws {
        let machine = try TestMachine()
        let image = try TestDiskImage(table: "gpt", [.init(type: "root", content: .tree(machine.path))], name: "disk.raw")
        try "[Exec]\nHostname=imagefile\n".write(to: image.directory.appendingPathComponent("disk.nspawn"), atomically: false, encoding: .utf8)
        let result = try runNspawn(["-i", image.path, "-P", "-q", "hostname"])
        #expect(result.lines == ["imagefile"], "\(result.stderr)")
    }

    /// A bad line: one line naming the file and the line, status 1, nothing left on the host.
    @Test func badLineIsRefused() throws {
        let machine = try TestMachine()
        for (text, expected) in [
            ("[Exec]\nHostname=ok\nBoot=sometimes\n", ":3: Failed to parse Boot= value: sometimes"),
            ("[Files]\nVolatile=maybe\n", ":2: Failed to parse --volatile= argument: maybe"),
            ("Boot=yes\n", ":1: Assignment outside of section."),
            ("[Files]\nBnd=/etc:/x\n", ":2: Unknown key 'Bnd' in section [Files]."),
        ] {
            try writeSettings(text, for: machine)
            let host = HostState.capture()
            let result = try runNspawn(["-D", machine.path, "-P", "true"])
            #expect(result.status == 1 && result.stderrLines.count == 1, "\(result.stderr)")
            #expect(result.stderr.contains("\(machine.name).nspawn\(expected)"), "\(result.stderr)")
            #expect(HostState.capture() == host)
        }
    }
}
