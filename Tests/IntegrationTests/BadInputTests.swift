import Foundation
import Testing

/// Each bad input gives one line on stderr and status 1, and leaves nothing on the host.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct BadInputTests {
    private func expectRefused(
        _ arguments: [String], saying expected: String, asUser uid: UInt32? = nil, prefix: [String] = [], environment: [String: String] = [:]
    ) throws {
        let before = HostState.capture()
        let result = try runNspawn(arguments, asUser: uid, environment: environment, prefix: prefix)
        #expect(result.status == 1, "\(arguments): status \(result.status)")
        #expect(result.stderrLines.count == 1, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(HostState.capture() == before)
    }

    @Test func missingDirectory() throws {
        try expectRefused(["-D", "/nonexistent/tree", "true"], saying: "Failed to resolve path /nonexistent/tree: No such file or directory")
    }

    @Test func fileGivenAsDirectory() throws {
        let machine = try TestMachine()
        try expectRefused(["-D", machine.path + "/etc/passwd", "true"], saying: "is not a directory")
    }

    @Test func treeWithoutUsr() throws {
        let machine = try TestMachine { try FileManager.default.removeItem(at: $0.appendingPathComponent("usr")) }
        try expectRefused(["-D", machine.path, "true"], saying: "doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.")
    }

    @Test func treeWithSymlinkedProc() throws {
        let machine = try TestMachine {
            try FileManager.default.removeItem(at: $0.appendingPathComponent("proc"))
            try FileManager.default.createSymbolicLink(atPath: $0.appendingPathComponent("proc").path, withDestinationPath: "/proc")
        }
        try expectRefused(["-D", machine.path, "true"], saying: "/proc in \(machine.path) is not a directory")
    }

    @Test func rootDirectory() throws {
        try expectRefused(["-D", "/", "true"], saying: "root directory is not supported")
    }

    @Test func callerWhoIsNotRoot() throws {
        let machine = try TestMachine()
        try expectRefused(["-D", machine.path, "true"], saying: "Need to be root.", asUser: 65534)
    }

    @Test func rangeHeldByAnotherMachine() throws {
        let first = try TestMachine(), second = try TestMachine()
        let run = try BackgroundRun(["-D", first.path, "-P", "-q", "--private-users=1966080:65536", "/bin/sleep", "30"])
        #expect(run.waitUntil { FileManager.default.fileExists(atPath: "/run/swift-nspawn/uid-range/1966080") })
        let result = try second.run(["--private-users=1966080"], ["true"])
        #expect(result.status == 1)
        #expect(result.stderrLines == ["UID range 1966080:65536 is in use by another machine. Refusing."])
        kill(run.pid, SIGTERM)
        _ = run.finish()
    }

    /// A range of two slots whose second one another machine holds: refused, and the first slot's
    /// lock, taken on the way, is given back (no file left, the range free again).
    @Test func aRangeOfSeveralSlotsPartlyHeldIsRefusedAndReleased() throws {
        let first = try TestMachine(), second = try TestMachine()
        let run = try BackgroundRun(["-D", first.path, "-P", "-q", "--private-users=2031616:65536", "/bin/sleep", "30"])
        // Its range locked and its cgroup made (after the lock): the host as it stays while it runs.
        #expect(
            run.waitUntil { FileManager.default.fileExists(atPath: "/run/swift-nspawn/uid-range/2031616") && !HostState.capture().cgroups.isEmpty })
        let before = HostState.capture()
        let result = try second.run(["--private-users=1966080:131072"], ["true"])
        #expect(result.status == 1 && result.stderrLines == ["UID range 1966080:131072 is in use by another machine. Refusing."], "\(result.stderr)")
        #expect(HostState.capture() == before)
        #expect(!FileManager.default.fileExists(atPath: "/run/swift-nspawn/uid-range/1966080"))
        kill(run.pid, SIGTERM)
        _ = run.finish()
        #expect(try second.run(["--private-users=1966080:131072"], ["true"]).status == 0)
    }

    /// A host user in the range asked for: the host's /etc/passwd as swift-nspawn reads it gets one,
    /// in a mount namespace of the test's own (the real file is never touched).
    @Test func rangeOverlappingHostUsers() throws {
        let machine = try TestMachine()
        let passwd = machine.directory.appendingPathComponent("passwd")
        let host = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        try (host + "ranged:x:1966090:1966090::/nonexistent:/usr/sbin/nologin\n").write(to: passwd, atomically: false, encoding: .utf8)
        let withUser = [
            "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "mount --bind \"$0\" /etc/passwd && exec \"$@\"", passwd.path,
        ]
        try expectRefused(
            ["-D", machine.path, "--private-users=1966080", "true"],
            saying: "UID range 1966080:65536 overlaps users, groups or subordinate ID ranges of the host",
            prefix: withUser)
        // The same range is free with the host's own file.
        #expect(try machine.run(["--private-users=1966080"], ["true"]).status == 0)
    }

    @Test func bindSourceThatDoesNotExist() throws {
        let machine = try TestMachine()
        try expectRefused(["-D", machine.path, "--bind=/nonexistent/src:/mnt", "true"], saying: "Failed to resolve bind source /nonexistent/src")
    }

    @Test func anEnvironmentSwitchThatWouldBreakAGuaranteeIsRefused() throws {
        let machine = try TestMachine()
        try expectRefused(
            ["-D", machine.path, "true"], saying: "SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes is not supported",
            environment: ["SYSTEMD_NSPAWN_API_VFS_WRITABLE": "yes"])
    }
}
