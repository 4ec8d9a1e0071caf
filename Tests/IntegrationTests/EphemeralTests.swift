import Foundation
import Testing

/// -x/--ephemeral: the machine runs on an overlay with a throw-away upper layer over its tree, with
/// the default user namespace; the tree is never written, and nothing is left on the host.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct EphemeralTests {
    @Test func writesGoNowhereAndTheTreeStaysAsItWas() throws {
        let machine = try TestMachine()
        let tree = treeFingerprint(machine.path)
        let host = HostState.capture()
        let script =
            "echo new > /etc/new; rm /etc/os-release; mkdir -p /var/lib/x; touch /usr/bin/busybox; chown 1000 /etc/passwd; "
            + "cat /etc/new; ls /etc/os-release 2>/dev/null || echo removed; stat -c %u /etc/passwd"
        let result = try machine.run(["-x"], ["sh", "-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines == ["new", "removed", "1000"], "\(result.stdout)")
        #expect(treeFingerprint(machine.path) == tree)
        // A second run sees the tree, not what the first one wrote.
        #expect(try machine.run(["-x"], ["cat", "/etc/os-release"]).stdout.contains("BusyBox"))
        #expect(HostState.capture() == host)
    }

    /// The machine's root owns its / as it owns the tree's, through the ID-mapped lower layer.
    @Test func ownersAreTheTreesAsTheMachineSeesThem() throws {
        let machine = try TestMachine()
        let result = try machine.run(["-x"], ["sh", "-c", "stat -c '%u %a' / /home/alice; touch /home/alice/x && echo root-writes"])
        #expect(result.lines == ["0 755", "1000 755", "root-writes"], "\(result.stdout) \(result.stderr)")
    }

    @Test func readOnlyEphemeralIsReadOnly() throws {
        let machine = try TestMachine()
        let result = try machine.run(["-x", "--read-only"], ["sh", "-c", "touch /x 2>/dev/null || echo read-only"])
        #expect(result.lines == ["read-only"], "\(result.stderr)")
    }

    /// Two ephemeral machines of one tree at once (both take the tree's lock shared), while a
    /// read-write run is refused.
    @Test func ephemeralMachinesShareTheTree() throws {
        let machine = try TestMachine()
        let first = try BackgroundRun(["-D", machine.path, "-P", "-q", "-x", "-M", "one", "/bin/sleep", "3"])
        #expect(first.waitUntil { !HostState.capture().cgroups.isEmpty })
        let second = try machine.run(["-x", "-M", "two"], ["true"])
        #expect(second.status == 0, "\(second.stderr)")
        let writer = try machine.run([], ["true"])
        #expect(writer.status == 1 && writer.stderr.contains("busy"), "\(writer.stderr)")
        #expect(first.finish().status == 0)
    }

    /// A killed run leaves no mount and no directory: the overlay and its layers live in the
    /// outer child's mount namespace only. (Its cgroup and ID range are taken over and removed by
    /// the next run, as for any killed run.)
    @Test func aKilledRunLeavesNoMount() throws {
        let machine = try TestMachine()
        let host = HostState.capture()
        let entries = try FileManager.default.contentsOfDirectory(atPath: machine.directory.path)
        let run = try BackgroundRun(["-D", machine.path, "-P", "-q", "-x", "/bin/sleep", "30"])
        #expect(run.waitUntil { !HostState.capture().cgroups.isEmpty })
        kill(run.pid, SIGKILL)
        _ = run.finish()
        #expect(run.waitUntil { HostState.capture().mounts == host.mounts })
        #expect(try FileManager.default.contentsOfDirectory(atPath: machine.directory.path) == entries)
        #expect(try machine.run(["-x"], ["true"]).status == 0)
        #expect(HostState.capture() == host)
    }

    /// --volatile's modes with the default user namespace (systemd-nspawn's fail with one): yes is
    /// a tmpfs root holding the tree's /usr, read-only; state the read-only tree with a tmpfs
    /// /var; overlay -x's root. The tree is as it was after each.
    @Test(arguments: [
        ("yes", ["root-writable", "var-writable", "usr-ro", "no-os-release"]),
        ("state", ["root-ro", "var-writable", "usr-ro", "os-release"]),
        ("overlay", ["root-writable", "var-writable", "usr-writable", "os-release"]),
        ("", ["root-writable", "var-writable", "usr-ro", "no-os-release"]),
    ])
    func volatileModes(mode: String, expected: [String]) throws {
        let machine = try TestMachine()
        let tree = treeFingerprint(machine.path)
        let script =
            "touch /x 2>/dev/null && echo root-writable || echo root-ro; mkdir -p /var/y && echo var-writable; "
            + "touch /usr/z 2>/dev/null && echo usr-writable || echo usr-ro; [ -e /etc/os-release ] && echo os-release || echo no-os-release"
        let result = try machine.run([mode.isEmpty ? "--volatile" : "--volatile=\(mode)"], ["sh", "-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines == expected, "\(result.stdout)")
        #expect(treeFingerprint(machine.path) == tree)
    }

    /// --volatile=yes on a Debian tree: its /etc is the machine's own, empty one (nothing of the
    /// host's time zone or resolv.conf is laid over it); a tree whose /bin is a directory is refused.
    @Test func volatileYesStartsFromUsrAlone() throws {
        let machine = try DebianMachine()
        let result = try runNspawn(["-D", machine.path, "-q", "-P", "--volatile=yes", "/usr/bin/ls", "-A", "/etc"], timeout: 60)
        #expect(result.status == 0 && result.stdout.isEmpty, "\(result.stdout) \(result.stderr)")
        let unmerged = try TestMachine { root in
            try FileManager.default.removeItem(at: root.appendingPathComponent("sbin"))
            try FileManager.default.createDirectory(at: root.appendingPathComponent("sbin"), withIntermediateDirectories: true)
        }
        let refused = try unmerged.run(["--volatile=yes"], ["true"])
        #expect(refused.status == 1 && refused.stderr.contains("needs a tree whose /usr is merged"), "\(refused.stderr)")
        let journal = try unmerged.run(["-x", "--link-journal=try-guest"], ["true"])
        #expect(journal.status == 1 && journal.stderrLines.count == 1 && journal.stderr.contains("may not be combined"), "\(journal.stderr)")
    }

    /// A booted Debian on -x, and on --volatile=state: it boots (its journal, its machine-id,
    /// everything it writes), and the tree is as it was.
    @Test func debianBootsEphemeralAndLeavesItsTreeAlone() throws {
        let machine = try DebianMachine()
        let tree = treeFingerprint(machine.path)
        for mode in ["-x", "--volatile=state"] {
            let result = try runNspawn(["-D", machine.path, mode, "--boot-test", "--boot-test-timeout=90"], timeout: 120)
            #expect(result.status == 0, "\(mode): \(result.stderr)")
            #expect(treeFingerprint(machine.path) == tree)
        }
    }
}
