import Foundation
import Testing

/// Each bad input gives one line on stderr and status 1, and leaves nothing on the host.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct BadInputTests {
    private func expectRefused(_ arguments: [String], saying expected: String, asUser uid: UInt32? = nil) throws {
        let before = HostState.capture()
        let result = try runNspawn(arguments, asUser: uid)
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

    @Test func invalidMachineName() throws {
        try expectRefused(["-M", "a/b", "true"], saying: "Invalid machine name: a/b")
    }

    @Test func callerWhoIsNotRoot() throws {
        let machine = try TestMachine()
        try expectRefused(["-D", machine.path, "true"], saying: "Need to be root.", asUser: 65534)
    }

    @Test func misalignedRange() throws {
        let machine = try TestMachine()
        try expectRefused(["-D", machine.path, "--private-users=100000:65536", "true"], saying: "not a multiple of 65536")
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

    @Test func rangeOverlappingHostUsers() throws {
        let machine = try TestMachine()
        // nobody (65534) lives in the range 0…65535 of "identity"-like fixed ranges; 65536 is the
        // first aligned base, so take the host's own highest-numbered user's slot.
        let passwd = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        let ids = passwd.split(separator: "\n").compactMap { UInt32($0.split(separator: ":", omittingEmptySubsequences: false)[2]) }
        guard let slot = ids.map({ $0 & 0xffff_0000 }).first(where: { $0 > 0 }) else {
            try expectRefused(["-D", machine.path, "--private-users=0:65536", "true"], saying: "overlaps the host's root")
            return
        }
        try expectRefused(["-D", machine.path, "--private-users=\(slot)", "true"], saying: "overlaps users, groups or subordinate ID ranges of the host")
    }

    @Test func bindSourceThatDoesNotExist() throws {
        let machine = try TestMachine()
        try expectRefused(["-D", machine.path, "--bind=/nonexistent/src:/mnt", "true"], saying: "Failed to resolve bind source /nonexistent/src")
    }

    @Test func unknownOption() throws {
        try expectRefused(["--no-such-option", "true"], saying: "--no-such-option")
    }
}
