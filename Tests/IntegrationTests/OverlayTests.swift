import Foundation
import Testing

/// --overlay= and --overlay-ro=: layers of the host (and of the tree, with "+") stacked at a place in
/// the machine; a host upper layer takes the writes, an empty one throws them away.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct OverlayTests {
    private func layers(in machine: TestMachine) throws -> (lower: URL, middle: URL, upper: URL) {
        let lower = machine.directory.appendingPathComponent("lower")
        let middle = machine.directory.appendingPathComponent("middle")
        let upper = machine.directory.appendingPathComponent("upper")
        for directory in [lower, middle, upper] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        try "lower\n".write(to: lower.appendingPathComponent("a"), atomically: false, encoding: .utf8)
        try "from lower\n".write(to: lower.appendingPathComponent("shared"), atomically: false, encoding: .utf8)
        try "from middle\n".write(to: middle.appendingPathComponent("shared"), atomically: false, encoding: .utf8)
        return (lower, middle, upper)
    }

    /// Read-only: the higher layer wins, the owners are the machine's (ID-mapped as the tree is),
    /// nothing can be written.
    @Test func readOnlyOverlayStacksTheLayers() throws {
        let machine = try TestMachine()
        let (lower, middle, _) = try layers(in: machine)
        let result = try machine.run(
            ["--overlay-ro=\(lower.path):\(middle.path):/mnt"],
            ["sh", "-c", "cat /mnt/a /mnt/shared; stat -c %u /mnt/a; touch /mnt/x 2>/dev/null || echo read-only"])
        #expect(result.lines == ["lower", "from middle", "0", "read-only"], "\(result.stdout) \(result.stderr)")
    }

    /// Writable: writes and copies-up go to the upper layer on the host, the lower ones stay as they
    /// were, and the work directory beside the upper layer is gone afterwards.
    @Test func writableOverlayWritesToTheUpperLayer() throws {
        let machine = try TestMachine()
        let (lower, middle, upper) = try layers(in: machine)
        let result = try machine.run(
            ["--private-users=no", "--overlay=\(lower.path):\(middle.path):\(upper.path):/mnt"],
            ["sh", "-c", "echo new > /mnt/new; echo more >> /mnt/a; rm /mnt/shared; ls /mnt"])
        #expect(result.status == 0 && result.lines == ["a", "new"], "\(result.stdout) \(result.stderr)")
        #expect(try String(contentsOf: upper.appendingPathComponent("new"), encoding: .utf8) == "new\n")
        #expect(try String(contentsOf: lower.appendingPathComponent("a"), encoding: .utf8) == "lower\n")
        #expect(try String(contentsOf: middle.appendingPathComponent("shared"), encoding: .utf8) == "from middle\n")
        let entries = try FileManager.default.contentsOfDirectory(atPath: machine.directory.path)
        #expect(!entries.contains { $0.hasSuffix("swift-nspawn-work") }, "\(entries)")
    }

    /// "+/etc::/etc": the tree's /etc with a throw-away layer on it, with the default user namespace.
    @Test func aThrowAwayLayerOverTheTree() throws {
        let machine = try TestMachine()
        let tree = treeFingerprint(machine.path)
        let result = try machine.run(["--overlay=+/etc::/etc"], ["sh", "-c", "echo x > /etc/added && rm /etc/os-release && ls /etc"])
        #expect(result.status == 0 && result.lines == ["added", "group", "passwd"], "\(result.stdout) \(result.stderr)")
        #expect(treeFingerprint(machine.path) == tree)
    }

    @Test(arguments: [
        ("--overlay=/only", "needs at least two colon-separated paths"),
        ("--overlay=relative:/mnt", "layers must be absolute paths"),
        ("--overlay=:/x:/mnt", "may leave only the highest layer of a writable overlay empty"),
        ("--overlay=/a:+/b:/mnt", "not in the tree"),
        ("--overlay-ro=/a::/mnt", "may leave only the highest layer of a writable overlay empty"),
        ("--overlay=/a:/b:relative", "mount point must be an absolute path"),
    ])
    func badOverlaysAreOneLine(option: String, expected: String) throws {
        let machine = try TestMachine()
        let result = try machine.run([option], ["true"])
        #expect(result.status == 1 && result.stderrLines.count == 1 && result.stderr.contains(expected), "\(result.stderr)")
    }
}
