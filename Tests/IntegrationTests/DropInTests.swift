import Foundation
import Testing

/// The same command lines run under swift-nspawn and under systemd-nspawn 252 (where it is
/// installed: CI installs it), each on a busybox tree of its own: what the machine sees must match.
/// systemd-nspawn runs as runSystemdNspawn runs it.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct DropInTests {
    /// Both results, ours first; nil for theirs where systemd-nspawn is not installed.
    private func sideBySide(_ options: [String], _ script: String, prefix: [String] = []) throws -> (ours: RunResult, theirs: RunResult?) {
        let ours = try TestMachine()
        let result = try runNspawn(["-D", ours.path, "-P", "-q"] + options + ["/bin/sh", "-c", script], prefix: prefix)
        guard TestEnvironment.systemdNspawn != nil else { return (result, nil) }
        let reference = try TestMachine()
        return (result, try runSystemdNspawn(["-D", reference.path, "-P", "-q"] + options + ["/bin/sh", "-c", script], prefix: prefix))
    }

    /// An os-release with every field bound over the host's in a mount namespace of the test's:
    /// systemd-nspawn 252 passes four of them.
    @Test func theHostsIdentityReachesThePayloadAsSystemdNspawnPassesIt() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sn-os-release-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("os-release")
        try "ID=testos\nVERSION_ID=7\nBUILD_ID=b1\nVARIANT_ID=v1\nIMAGE_ID=img\nIMAGE_VERSION=9\nNAME=\"Test OS\"\nPRETTY_NAME=\"Test\"\n"
            .write(to: file, atomically: false, encoding: .utf8)
        let withOSRelease = [
            "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "mount --bind \"$0\" /etc/os-release && exec \"$@\"", file.path,
        ]
        let (ours, theirs) = try sideBySide([], "env | grep ^container_host_ | sort; cat /run/host/os-release | head -1", prefix: withOSRelease)
        #expect(
            ours.lines == [
                "container_host_build_id=b1", "container_host_id=testos", "container_host_variant_id=v1", "container_host_version_id=7", "ID=testos",
            ],
            "\(ours.stderr)")
        if let theirs { #expect(theirs.lines == ours.lines, "\(theirs.stderr)") }
    }

    @Test func processSettingsOfPID1MatchSystemdNspawns() throws {
        let (ours, theirs) = try sideBySide(
            ["--rlimit=RLIMIT_NOFILE=123:456", "--oom-score-adjust=300", "--personality=x86", "--cpu-affinity=0"],
            "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; uname -m; grep Cpus_allowed_list /proc/self/status")
        #expect(ours.lines == ["123", "456", "300", "i686", "Cpus_allowed_list:\t0"], "\(ours.stderr)")
        if let theirs { #expect(theirs.lines == ours.lines, "\(theirs.stderr)") }
    }

    @Test func credentialsAreWhereAndAsSystemdNspawnPutsThem() throws {
        let (ours, theirs) = try sideBySide(
            ["--set-credential=greeting:hello", "--load-credential=name:/etc/hostname"],
            "echo $CREDENTIALS_DIRECTORY; cd $CREDENTIALS_DIRECTORY && ls -l | sed 1d | cut -c1-10; cat greeting; echo; echo x > new 2>/dev/null || echo read-only"
        )
        #expect(ours.lines == ["/run/host/credentials", "-r--------", "-r--------", "hello", "read-only"], "\(ours.stderr)")
        if let theirs { #expect(theirs.lines == ours.lines, "\(theirs.stderr)") }
    }

    @Test func theEnvironmentSwitchesActAsUnderSystemdNspawn() throws {
        let script = "grep -c ' /tmp ' /proc/self/mountinfo; true"
        let environment = ["SYSTEMD_NSPAWN_TMPFS_TMP": "0"]
        let ours = try TestMachine()
        let ourRun = try runNspawn(["-D", ours.path, "-P", "-q", "/bin/sh", "-c", script], environment: environment)
        #expect(ourRun.lines == ["0"], "\(ourRun.stderr)")
        let reference = try TestMachine()
        guard let theirs = try runSystemdNspawn(["-D", reference.path, "-P", "-q", "/bin/sh", "-c", script], environment: environment) else { return }
        #expect(theirs.lines == ourRun.lines, "\(theirs.stderr)")
    }

    /// The bind modes with a user namespace, on a directory owned by a host user the machine does
    /// not map. (owneridmap came after systemd-nspawn 252; MountOptionTests covers it.)
    @Test(arguments: [("", "65534 65534"), (":noidmap", "65534 65534"), (":rootidmap", "0 0"), (":idmap", "1234 1234")])
    func bindModesShowTheOwnersSystemdNspawnShows(_ mode: String, _ owners: String) throws {
        let source = FileManager.default.temporaryDirectory.appendingPathComponent("sn-bind-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: source) }
        #expect(chown(source.path, 1234, 1234) == 0)
        let (ours, theirs) = try sideBySide(["-U", "--bind=\(source.path):/mnt/s\(mode)"], "stat -c '%u %g' /mnt/s")
        #expect(ours.lines == [owners], "\(ours.stderr)")
        if let theirs { #expect(theirs.lines == ours.lines, "\(theirs.stderr)") }
    }

    /// --pivot-root=NEW alone (systemd-nspawn 252 fails to move the old root to OLD on this host:
    /// MS_MOVE, EINVAL; MountOptionTests covers OLD).
    @Test func pivotRootShowsTheSameRoot() throws {
        let ours = try TestMachine()
        let reference = try TestMachine()
        for machine in [ours, reference] {
            let inner = try TestMachine()
            try FileManager.default.createDirectory(atPath: machine.path + "/deploy", withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: inner.path, toPath: machine.path + "/deploy/a")
            try "inner\n".write(toFile: machine.path + "/deploy/a/marker", atomically: false, encoding: .utf8)
        }
        let script = ["/bin/sh", "-c", "cat /marker; ls /deploy 2>/dev/null || echo no-deploy"]
        let ourRun = try runNspawn(["-D", ours.path, "-P", "-q", "--pivot-root=/deploy/a"] + script)
        #expect(ourRun.lines == ["inner", "no-deploy"], "\(ourRun.stderr)")
        guard let theirs = try runSystemdNspawn(["-D", reference.path, "-P", "-q", "--pivot-root=/deploy/a"] + script) else { return }
        #expect(theirs.lines == ourRun.lines, "\(theirs.stderr)")
    }

    /// --bind-user, with a host user that exists only in a mount namespace of the test's (its
    /// passwd and group bound over the host's): the same records, home and ID map as systemd-nspawn.
    @Test func bindUserBringsTheHostUserInAsSystemdNspawnDoes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sn-bind-user-\(UUID().uuidString.prefix(8))")
        let home = directory.appendingPathComponent("home/tester")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(chown(home.path, 1500, 1501) == 0)
        let passwd = try String(contentsOfFile: "/etc/passwd", encoding: .utf8) + "tester:x:1500:1501:Test User:\(home.path):/bin/sh\n"
        let group = try String(contentsOfFile: "/etc/group", encoding: .utf8) + "tester:x:1501:\nothers:x:1600:\n"
        try passwd.write(to: directory.appendingPathComponent("passwd"), atomically: false, encoding: .utf8)
        try group.write(to: directory.appendingPathComponent("group"), atomically: false, encoding: .utf8)
        let withTester = [
            "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
            "mount --bind \"$0/passwd\" /etc/passwd && mount --bind \"$0/group\" /etc/group && exec \"$@\"", directory.path,
        ]
        let script = """
            cd /run/host/userdb && for f in *; do echo "$f $(readlink $f) $(cat $f)"; done
            stat -c '%n %u %g' /run/host/home/tester; sed -n 2p /proc/self/uid_map; sed -n 2p /proc/self/gid_map
            """
        let (ours, theirs) = try sideBySide(["-U", "--bind-user=tester"], script, prefix: withTester)
        let user = #"{"userName":"tester","uid":60514,"gid":60514,"homeDirectory":"/run/host/home/tester","service":"io.systemd.NSpawn"}"#
        let group60514 = #"{"groupName":"tester","gid":60514,"service":"io.systemd.NSpawn"}"#
        #expect(
            ours.lines.map { $0.split(separator: " ").joined(separator: " ") } == [
                "60514.group tester.group \(group60514)", "60514.user tester.user \(user)", "tester.group \(group60514)", "tester.user \(user)",
                "/run/host/home/tester 60514 60514", "60514 1500 1", "60514 1501 1",
            ], "\(ours.stderr)")
        if let theirs { #expect(theirs.lines == ours.lines, "\(theirs.stderr)") }
        let machine = try TestMachine()
        let before = treeFingerprint(machine.path)
        let unknown = try runNspawn(["-D", machine.path, "-P", "-q", "-U", "--bind-user=nosuchuser", "/bin/true"])
        #expect(unknown.status == 1 && unknown.stderr == "Failed to find user nosuchuser on the host.\n", "\(unknown.stderr)")
        let withoutUserNamespace = try runNspawn(["-D", machine.path, "-P", "-q", "--private-users=no", "--bind-user=tester", "/bin/true"])
        #expect(withoutUserNamespace.status == 1 && withoutUserNamespace.stderrLines.count == 1, "\(withoutUserNamespace.stderr)")
        // The user's host IDs inside the machine's own range (identity: 0…65535) could not be mapped.
        let identity = try runNspawn(["-D", machine.path, "-P", "-q", "--private-users=identity", "--bind-user=tester", "/bin/true"], prefix: withTester)
        #expect(identity.status == 1 && identity.stderr.contains("lies in the machine's range"), "\(identity.stderr)")
        // As systemd-nspawn 252: only users whose primary group is their own.
        let sharedGroup = passwd + "shared:x:1600:1600::\(home.path):/bin/sh\n"
        try sharedGroup.write(to: directory.appendingPathComponent("passwd"), atomically: false, encoding: .utf8)
        let shared = try runNspawn(["-D", machine.path, "-P", "-q", "-U", "--bind-user=shared", "/bin/true"], prefix: withTester)
        #expect(shared.status == 1 && shared.stderr.contains("not a group of its own"), "\(shared.stderr)")
        #expect(treeFingerprint(machine.path) == before, "a refused --bind-user changed the tree")
    }

    /// Bad values: one line and status 1 from both, nothing started.
    @Test(arguments: [
        ["--rlimit=NOPE=1"], ["--oom-score-adjust=5000"], ["--personality=sparc"], ["--timezone=utc"], ["--link-journal=maybe"],
        ["--pivot-root=rel"], ["--pivot-root=/nonexistent"], ["--set-credential=novalue"], ["--bind=/nonexistent-\(UUID().uuidString.prefix(6)):/x"],
    ])
    func badValuesFailInOneLineAsUnderSystemdNspawn(_ options: [String]) throws {
        let (ours, theirs) = try sideBySide(options, "echo started")
        #expect(ours.status == 1 && ours.stdout.isEmpty && ours.stderrLines.count == 1, "\(ours.stderr)")
        if let theirs { #expect(theirs.status == 1 && theirs.stdout.isEmpty, "\(theirs.stderr)") }
    }
}
