import Foundation
import Testing

/// --bind, --bind-ro, --tmpfs and --read-only, seen from inside and from the host.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct MountOptionTests {
    /// As with systemd-nspawn, a bind shows its raw owners unless asked: the host's root is nobody
    /// to the machine, and the machine's root is nobody special on the host's files.
    @Test func aBindOfARootOwnedDirectoryIsNotTheMachineRootsUnlessAsked() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let result = try machine.shell(
            "stat -c %u /mnt/shared; touch /mnt/shared/file 2>/dev/null || echo refused", options: ["--bind=\(source.path):/mnt/shared"])
        #expect(result.lines == ["65534", "refused"], "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: source.appendingPathComponent("file").path))
    }

    @Test func idmapMakesARootOwnedDirectoryTheMachineRootsAndWritesShowOnTheHost() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let result = try machine.shell("stat -c %u /mnt/shared; echo hi > /mnt/shared/file && echo wrote", options: ["--bind=\(source.path):/mnt/shared:idmap"])
        #expect(result.lines == ["0", "wrote"])
        #expect(try String(contentsOf: source.appendingPathComponent("file"), encoding: .utf8) == "hi\n")
        var st = stat()
        stat(source.appendingPathComponent("file").path, &st)
        #expect(st.st_uid == 0, "the machine's root writes as the host's root through the idmapped bind")
    }

    /// rootidmap: the source's owner (a host user) is the machine's root there, and what that root
    /// makes belongs to the host user; the host's root shows as nobody.
    @Test func rootidmapMakesTheSourcesOwnerTheMachinesRoot() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        #expect(chown(source.path, 1000, 1000) == 0)
        try "root's\n".write(to: source.appendingPathComponent("owned-by-root"), atomically: false, encoding: .utf8)
        let result = try machine.shell(
            "stat -c %u /home/u /home/u/owned-by-root; touch /home/u/made && echo made", options: ["--bind=\(source.path):/home/u:rootidmap"])
        #expect(result.lines == ["0", "65534", "made"], "\(result.stderr)")
        var st = stat()
        stat(source.appendingPathComponent("made").path, &st)
        #expect(st.st_uid == 1000 && st.st_gid == 1000)
    }

    /// A bind's mount point in a directory of mode 0555 (the tree's root often is), with the tree's
    /// owners mapped, raw, or without a user namespace: made with the host's privileges, the machine
    /// root's; one inside /tmp (here through a symlink) is made in the machine's /tmp, not in the tree.
    @Test func mountPointsAreMadeWhateverTheDirectorysModeAndNeverBelowAGuestMount() throws {
        for mode in ["--private-users=pick", "--private-users-ownership=off", "--private-users=no"] {
            let machine = try TestMachine {
                try FileManager.default.createSymbolicLink(atPath: $0.appendingPathComponent("scratch").path, withDestinationPath: "/tmp")
            }
            let source = machine.directory.appendingPathComponent("src")
            try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
            #expect(chmod(machine.path, 0o555) == 0)
            defer { chmod(machine.path, 0o755) }
            let result = try machine.shell(
                "test -d /output && test -d /tmp/y && echo ok", options: [mode, "--bind=\(source.path):/output", "--bind=\(source.path):/scratch/y"])
            #expect(result.stdout == "ok\n", "\(mode): \(result.stderr)")
            #expect(FileManager.default.fileExists(atPath: machine.path + "/output"), "\(mode)")
            #expect(!FileManager.default.fileExists(atPath: machine.path + "/tmp/y"), "\(mode): written into the tree below /tmp")
        }
    }

    /// An overlayfs source (a live system, a container host) binds as it is; asked to idmap it, which
    /// overlayfs cannot, the start is refused in one line naming it.
    @Test func anOverlayfsSourceBindsAndRefusingToIDMapItSaysWhy() throws {
        let machine = try TestMachine()
        let layers = machine.directory.appendingPathComponent("layers")
        for name in ["lower", "upper", "work", "merged"] {
            try FileManager.default.createDirectory(at: layers.appendingPathComponent(name), withIntermediateDirectories: true)
        }
        try "from below\n".write(to: layers.appendingPathComponent("lower/file"), atomically: false, encoding: .utf8)
        let options = "lowerdir=\(layers.path)/lower,upperdir=\(layers.path)/upper,workdir=\(layers.path)/work"
        // A mount of the test's own, removed again before the test ends.
        #expect(mount("overlay", layers.appendingPathComponent("merged").path, "overlay", 0, options) == 0)
        defer { unmountTestMount(layers.appendingPathComponent("merged").path) }
        let merged = layers.appendingPathComponent("merged").path
        #expect(try machine.shell("cat /o/file", options: ["--bind-ro=\(merged):/o"]).stdout == "from below\n")
        let refused = try machine.run(["--bind-ro=\(merged):/o:idmap"], ["true"])
        #expect(refused.status == 1 && refused.stderrLines.count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("ID mapped mounts are apparently not available for \(merged) on overlayfs"), "\(refused.stderr)")
    }

    @Test func noidmapShowsTheRawOwners() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        #expect(try machine.run(["--bind=\(source.path):/raw:noidmap"], ["stat", "-c", "%u", "/raw"]).stdout == "65534\n")
    }

    @Test func readOnlyBindRefusesWrites() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("ro")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let result = try machine.shell("touch /ro/x; echo rc=$?; mount -o remount,rw /ro; touch /ro/x; echo rc=$?", options: ["--bind-ro=\(source.path):/ro"])
        #expect(result.lines == ["rc=1", "rc=1"])
        #expect(result.stderr.contains("Read-only file system"))
        #expect(!FileManager.default.fileExists(atPath: source.appendingPathComponent("x").path))
    }

    @Test func norbindLeavesSubmountsOut() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("src")
        let sub = source.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        // A mount of the test's own below the source, removed again before the test ends.
        #expect(mount("tmpfs", sub.path, "tmpfs", 0, nil) == 0)
        defer { unmountTestMount(sub.path) }
        try "below\n".write(to: sub.appendingPathComponent("f"), atomically: false, encoding: .utf8)
        #expect(try machine.shell("cat /b/sub/f", options: ["--bind=\(source.path):/b"]).stdout == "below\n")
        #expect(try machine.shell("ls /b/sub | wc -l", options: ["--bind=\(source.path):/b:norbind"]).stdout == "0\n")
    }

    @Test func tmpfsLeavesNoTrace() throws {
        let machine = try TestMachine()
        let tree = treeFingerprint(machine.path)
        let result = try machine.shell("touch /var/x && stat -c '%a %u' /var && grep ' /var ' /proc/self/mountinfo | grep -c tmpfs", options: ["--tmpfs=/var"])
        #expect(result.lines == ["755 0", "1"])
        #expect(treeFingerprint(machine.path) == tree)
    }

    @Test func readOnlyRootRefusesWritesButKeepsTmpfsWritable() throws {
        let machine = try TestMachine()
        let result = try machine.shell("touch /x; echo rc=$?; touch /tmp/x; echo rc=$?", options: ["--read-only"])
        #expect(result.lines == ["rc=1", "rc=0"])
    }

    /// SYSTEMD_NSPAWN_TMPFS_TMP=0 and SYSTEMD_NSPAWN_LOCK=0, as systemd-nspawn reads them.
    @Test func theTmpfsAndLockSwitchesAreHonoured() throws {
        let machine = try TestMachine()
        let own = try runNspawn(
            ["-D", machine.path, "-P", "-q", "/bin/sh", "-c", "grep -c ' /tmp ' /proc/self/mountinfo"], environment: ["SYSTEMD_NSPAWN_TMPFS_TMP": "0"])
        #expect(own.stdout == "0\n", "\(own.stderr)")
        let first = try BackgroundRun(["-D", machine.path, "-P", "-q", "/bin/sleep", "30"])
        #expect(first.waitUntil { !HostState.capture().cgroups.isEmpty })
        #expect(try machine.run(["-M", "second"], ["true"]).status == 1, "the tree is locked")
        let unlocked = try runNspawn(["-D", machine.path, "-M", "third", "-P", "-q", "/bin/true"], environment: ["SYSTEMD_NSPAWN_LOCK": "0"])
        #expect(unlocked.status == 0, "\(unlocked.stderr)")
        kill(first.pid, SIGTERM)
        _ = first.finish()
    }

    @Test func readOnlyRunsShareTheTree() throws {
        let machine = try TestMachine()
        let first = try BackgroundRun(["-D", machine.path, "-P", "-q", "--read-only", "/bin/sleep", "30"])
        #expect(first.waitUntil { !HostState.capture().cgroups.isEmpty })
        #expect(try machine.run(["--read-only", "-M", "second"], ["true"]).status == 0)
        kill(first.pid, SIGTERM)
        _ = first.finish()
    }
}

/// Which mounts the guest owns: its init unmounts /tmp and the user's binds and tmpfs mounts at
/// shutdown, while the host's protections stay locked (mount_namespaces(7)).
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct GuestMountTests {
    @Test func theGuestMayUnmountTmpBindsAndTmpfsButNeverAHostProtection() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let script = """
            for m in /tmp /srv/rw /srv/ro /var/t; do umount $m 2>/dev/null && echo "$m unmounted" || echo "$m kept"; done
            for m in /proc/sys /proc/sys/net /proc/timer_list /proc/keys /proc/bus /sys /run/host /dev; do umount $m 2>/dev/null && echo "$m unmounted" || echo "$m kept"; done
            """
        let result = try machine.shell(
            script, options: ["--bind=\(source.path):/srv/rw", "--bind-ro=\(source.path):/srv/ro", "--tmpfs=/var/t"])
        #expect(
            result.lines == [
                "/tmp unmounted", "/srv/rw unmounted", "/srv/ro unmounted", "/var/t unmounted", "/proc/sys kept", "/proc/sys/net kept",
                "/proc/timer_list kept", "/proc/keys kept", "/proc/bus kept", "/sys kept", "/run/host kept", "/dev kept",
            ], "\(result.stderr)")
    }

    /// --inaccessible: a file of the tree and a directory inside a bind, covered so that the machine's
    /// root can neither open them nor uncover them.
    @Test func inaccessiblePathsStayCovered() throws {
        let machine = try TestMachine { try "hidden\n".write(to: $0.appendingPathComponent("etc/hidden"), atomically: false, encoding: .utf8) }
        let source = machine.directory.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: source.appendingPathComponent("secrets"), withIntermediateDirectories: true)
        let result = try machine.shell(
            """
            cat /etc/hidden 2>/dev/null || echo no-file; ls /srv/secrets 2>/dev/null || echo no-dir
            umount /etc/hidden 2>/dev/null || echo kept; umount /srv/secrets 2>/dev/null || echo kept
            """, options: ["--bind=\(source.path):/srv", "--inaccessible=/etc/hidden", "--inaccessible=/srv/secrets"])
        #expect(result.lines == ["no-file", "no-dir", "kept", "kept"], "\(result.stderr)")
        let missing = try machine.run(["--inaccessible=/nonexistent"], ["true"])
        #expect(missing.status == 1 && missing.stderrLines == ["Failed to make /nonexistent inaccessible: No such file or directory"])
    }

    /// A bind onto a file the tree has (/etc/motd, /etc/resolv.conf …), and an idmap bind where the
    /// tree itself shows raw owners.
    @Test func aBindOntoAnExistingFileAndAnIdmapBindWithRawOwnersForTheTree() throws {
        let machine = try TestMachine { try "tree's\n".write(to: $0.appendingPathComponent("etc/motd"), atomically: false, encoding: .utf8) }
        let file = machine.directory.appendingPathComponent("motd")
        try "host's\n".write(to: file, atomically: false, encoding: .utf8)
        let source = machine.directory.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let result = try machine.shell(
            "cat /etc/motd; stat -c %u /x", options: ["--bind-ro=\(file.path):/etc/motd", "--private-users-ownership=off", "--bind=\(source.path):/x:idmap"])
        #expect(result.lines == ["host's", "0"], "\(result.stderr)")
    }

    /// An --inaccessible path that a symlink of the image leads into a --bind's place is refused:
    /// covering the tree's file there would leave the bind's file open.
    @Test func anInaccessiblePathLedIntoABindThroughASymlinkIsRefused() throws {
        let machine = try TestMachine {
            try FileManager.default.createDirectory(at: $0.appendingPathComponent("srv"), withIntermediateDirectories: true)
            try "placeholder\n".write(to: $0.appendingPathComponent("srv/secret"), atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: $0.appendingPathComponent("data").path, withDestinationPath: "/srv")
        }
        let source = machine.directory.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try "host secret\n".write(to: source.appendingPathComponent("secret"), atomically: false, encoding: .utf8)
        let result = try machine.run(["--bind=\(source.path):/srv", "--inaccessible=/data/secret"], ["cat", "/data/secret"])
        #expect(result.status == 1 && result.stderrLines.count == 1 && result.stderr.contains("leads, through a symlink in the tree"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func aReadOnlyBindStaysReadOnlyThoughTheGuestMayUnmountIt() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("ro")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let result = try machine.shell(
            "mount -o remount,rw,bind /ro 2>/dev/null; echo remount=$?; touch /ro/x 2>/dev/null; echo touch=$?", options: ["--bind-ro=\(source.path):/ro"])
        #expect(result.lines == ["remount=1", "touch=1"])
        #expect(!FileManager.default.fileExists(atPath: source.appendingPathComponent("x").path))
    }

    @Test func aSubmountOfABindStaysLockedOverWhatItHides() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("src")
        let sub = source.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        try "hidden\n".write(to: sub.appendingPathComponent("below"), atomically: false, encoding: .utf8)
        // A mount of the test's own over the source's secret, removed again before the test ends.
        #expect(mount("tmpfs", sub.path, "tmpfs", 0, nil) == 0)
        defer { unmountTestMount(sub.path) }
        let result = try machine.shell(
            "umount /b/sub 2>/dev/null; echo umount=$?; cat /b/sub/below 2>/dev/null || echo hidden-stays-hidden", options: ["--bind=\(source.path):/b"])
        #expect(result.lines == ["umount=1", "hidden-stays-hidden"])
    }

    /// The tree below a directory the machine's root may not search (a 0750 home of someone else's),
    /// started from a working directory only root may enter (sudo -i in /root): nothing is looked
    /// up by name once the outer child acts inside the machine's user namespace.
    @Test func aTreeBelowAShutDirectoryStartsFromAShutWorkingDirectory() throws {
        let machine = try TestMachine()
        #expect(chown(machine.directory.path, 1000, 1000) == 0 && chmod(machine.directory.path, 0o750) == 0)
        let shut = machine.directory.deletingLastPathComponent().appendingPathComponent("shut-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: shut, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: shut) }
        let source = machine.directory.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let fromShut = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", shut.path]
        let result = try runNspawn(
            ["-D", machine.path, "-P", "-q", "--bind=\(source.path):/srv", "/bin/sh", "-c", "umount /tmp /srv && echo ok"], prefix: fromShut)
        #expect(result.status == 0 && result.stdout == "ok\n", "\(result.stderr)")
    }

    @Test func aBindDestinationFollowsTheTreesSymlinksInsideTheTree() throws {
        let machine = try TestMachine {
            try FileManager.default.createSymbolicLink(atPath: $0.appendingPathComponent("escape").path, withDestinationPath: "/etc")
            try FileManager.default.createSymbolicLink(atPath: $0.appendingPathComponent("up").path, withDestinationPath: "../../../..")
        }
        let source = machine.directory.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try "bound\n".write(to: source.appendingPathComponent("f"), atomically: false, encoding: .utf8)
        let result = try machine.shell("cat /etc/x/f /run/y/f", options: ["--bind=\(source.path):/escape/x", "--bind=\(source.path):/up/run/y"])
        #expect(result.lines == ["bound", "bound"], "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/x") && !FileManager.default.fileExists(atPath: "/run/y"))
    }
}

/// Regressions found in review: flags of submounts, mounts below API file systems, PATH.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct MountFlagTests {
    @Test func submountsOfABindKeepTheirNosuidAndNodev() throws {
        let machine = try TestMachine()
        let source = machine.directory.appendingPathComponent("src")
        let sub = source.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        #expect(mount("tmpfs", sub.path, "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_RDONLY), nil) == 0)
        defer { unmountTestMount(sub.path) }
        let line = try machine.shell("grep ' /b/sub ' /proc/self/mountinfo", options: ["--bind=\(source.path):/b"]).stdout
        let options = line.split(separator: " ")[5].split(separator: ",")
        #expect(options.contains("nosuid") && options.contains("nodev") && options.contains("ro"), "\(line)")
    }

    @Test func customMountsBelowProcLandOnTheMachinesProc() throws {
        let machine = try TestMachine()
        let result = try machine.shell("grep ' /proc/tty ' /proc/self/mountinfo | grep -c tmpfs", options: ["--tmpfs=/proc/tty"])
        #expect(result.stdout == "1\n", "\(result.stderr)")
    }

    @Test func commandsAreLookedUpInTheMachinesPath() throws {
        let machine = try TestMachine {
            let tool = $0.appendingPathComponent("opt/tools/hello")
            try FileManager.default.createDirectory(at: tool.deletingLastPathComponent(), withIntermediateDirectories: true)
            try "#!/bin/sh\necho hello from opt\n".write(to: tool, atomically: false, encoding: .utf8)
            chmod(tool.path, 0o755)
        }
        #expect(try machine.run(["-E", "PATH=/opt/tools:/bin"], ["hello"]).stdout == "hello from opt\n")
        #expect(try machine.run([], ["hello"]).stderrLines == ["execv(hello) failed: No such file or directory"])
    }
    /// --pivot-root: a directory of the tree becomes the root, found in the tree (a symlink of the
    /// image's never leads out of it), and the whole tree shows at OLD as the root is shown.
    @Test func pivotRootMakesADirectoryOfTheTreeTheRoot() throws {
        let outer = try TestMachine {
            try FileManager.default.createDirectory(at: $0.appendingPathComponent("deploy"), withIntermediateDirectories: true)
            try "outer\n".write(to: $0.appendingPathComponent("marker"), atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: $0.appendingPathComponent("deploy/escape").path, withDestinationPath: "/etc")
        }
        let inner = try TestMachine()
        try FileManager.default.moveItem(atPath: inner.path, toPath: outer.path + "/deploy/a")
        let shown = try outer.shell("cat /sysroot/marker; test -e /marker || echo only-new; hostname", options: ["--pivot-root=/deploy/a:/sysroot"])
        #expect(shown.lines == ["outer", "only-new", outer.name], "\(shown.stderr)")
        let mapped = try outer.shell(
            "stat -c %u /sysroot/marker; touch /sysroot/x 2>/dev/null || echo read-only", options: ["-U", "--read-only", "--pivot-root=/deploy/a:/sysroot"])
        #expect(mapped.lines == ["0", "read-only"], "\(mapped.stderr)")
        let escape = try outer.run(["--pivot-root=/deploy/escape"], ["/bin/true"])
        #expect(escape.status == 1 && escape.stderrLines.count == 1, "\(escape.stderr)")
        // The link to /etc leads to the tree's /etc, which is no OS tree; never to the host's.
        #expect(escape.stderr.contains("Directory \(outer.path)/etc doesn't look like it has an OS tree"), "\(escape.stderr)")
    }
}
