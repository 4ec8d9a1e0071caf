import Foundation
import Testing

/// What the payload sees from inside a machine made with the default options.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct MachineInsideTests {
    @Test func payloadIsPID1AndPID2UnderTheStub() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("echo $$").stdout == "1\n")
        #expect(try machine.shell("echo $$", options: ["-a"]).stdout == "2\n")
    }

    /// Descriptors swift-nspawn was started with (7 and 9 of a shell here, not close-on-exec) stay
    /// out of the machine: its payload has the standard streams only. (`; true`: the shell lists
    /// its own descriptors, not an exec'd ls with the directory it reads.)
    @Test func onlyTheStandardStreamsReachThePayload() throws {
        let machine = try TestMachine()
        let result = try runNspawn(
            ["-D", machine.path, "-P", "-q", "/bin/sh", "-c", "ls /proc/$$/fd; true"],
            prefix: ["/bin/sh", "-c", "exec 7</dev/null 9</dev/null; exec \"$@\"", "sh"])
        #expect(result.lines == ["0", "1", "2"], "\(result.stdout) \(result.stderr)")
    }

    @Test func hostnameIsTheMachineNameUnlessGiven() throws {
        let machine = try TestMachine()
        #expect(try machine.run([], ["hostname"]).stdout == "\(machine.name)\n")
        #expect(try machine.run(["-M", "other"], ["hostname"]).stdout == "other\n")
        #expect(try machine.run(["-M", "other", "--hostname=third"], ["hostname"]).stdout == "third\n")
    }

    @Test(arguments: ["mnt", "pid", "net", "ipc", "uts", "user", "cgroup"])
    func everyNamespaceIsTheMachinesOwn(kind: String) throws {
        let machine = try TestMachine()
        let inside = try machine.run([], ["readlink", "/proc/self/ns/\(kind)"])
        #expect(inside.status == 0)
        #expect(!inside.stdout.isEmpty)
        #expect(inside.stdout != namespaceLink(kind) + "\n")
    }

    @Test func sharedNetworkKeepsTheHostsNetworkNamespace() throws {
        let machine = try TestMachine()
        #expect(try machine.run(["--no-private-network"], ["readlink", "/proc/self/ns/net"]).stdout == namespaceLink("net") + "\n")
    }

    @Test func idsArePickedAlignedAndTheTreeReadsAsRootOwned() throws {
        let machine = try TestMachine()
        let result = try machine.shell("cat /proc/self/uid_map; cat /proc/self/gid_map; stat -c '%u:%g' / /etc/passwd; id -u")
        let lines = result.lines
        let map = try #require(lines.first).split(separator: " ").compactMap { UInt32($0) }
        #expect(map.count == 3)
        #expect(map[0] == 0 && map[2] == 65536)
        #expect(map[1] >= 0x80000 && map[1] % 65536 == 0, "base \(map[1]) must be 64K-aligned and above the host's users")
        #expect(lines[1] == lines[0])
        #expect(Array(lines[2...4]) == ["0:0", "0:0", "0"])
    }

    @Test func fixedRangeIsUsedAsGiven() throws {
        let machine = try TestMachine()
        let map = try machine.run(["--private-users=1310720:65536"], ["cat", "/proc/self/uid_map"]).stdout
        #expect(map.split(separator: " ").map(String.init) == ["0", "1310720", "65536\n"])
    }

    @Test func noUserNamespaceMeansTheHostsIDs() throws {
        let machine = try TestMachine()
        let map = try machine.run(["--private-users=no"], ["cat", "/proc/self/uid_map"]).stdout
        #expect(map.split(separator: " ").map(String.init) == ["0", "0", "4294967295\n"])
    }

    @Test func apiFileSystemsAreMountedAsNspawnMountsThem() throws {
        let machine = try TestMachine()
        let mountinfo = try machine.run([], ["cat", "/proc/self/mountinfo"]).lines
        func options(at point: String) -> (options: [Substring], type: Substring)? {
            guard let line = mountinfo.first(where: { $0.split(separator: " ")[4] == point }) else { return nil }
            let fields = line.split(separator: " ")
            let dash = fields.firstIndex(of: "-")
            return (fields[5].split(separator: ","), dash.map { fields[$0 + 1] } ?? "")
        }
        let root = try #require(options(at: "/"))
        #expect(root.options.contains("idmapped"))
        for (point, type, readOnly) in [
            ("/proc", "proc", false), ("/proc/sys", "proc", true), ("/proc/sys/net", "proc", false),
            ("/sys", "sysfs", true), ("/sys/fs/cgroup", "cgroup2", false), ("/dev", "tmpfs", false),
            ("/dev/pts", "devpts", false), ("/dev/shm", "tmpfs", false), ("/dev/mqueue", "mqueue", false),
            ("/run", "tmpfs", false), ("/tmp", "tmpfs", false), ("/run/host", "tmpfs", true),
            ("/run/host/os-release", "", true),
        ] {
            let mount = try #require(options(at: point), "\(point) is not mounted")
            if !type.isEmpty { #expect(mount.type == Substring(type), "\(point)") }
            #expect(mount.options.contains("ro") == readOnly, "\(point): \(mount.options)")
            if point != "/" { #expect(mount.options.contains("nosuid"), "\(point)") }
        }
        #expect(!mountinfo.contains { $0.contains(" - cgroup ") }, "a cgroup v1 hierarchy reached the machine")
    }

    @Test func kernelKnobsAreReadOnlyButTheMachinesNetworkIsWritable() throws {
        let machine = try TestMachine()
        let result = try machine.shell("echo x > /proc/sys/kernel/hostname; echo rc=$?; echo 0 > /proc/sys/net/ipv4/ip_forward; echo rc=$?")
        #expect(result.lines == ["rc=1", "rc=0"])
        #expect(result.stderr.contains("Read-only file system"))
        let shared = try machine.shell("echo 0 > /proc/sys/net/ipv4/ip_forward; echo rc=$?", options: ["--no-private-network"])
        #expect(shared.lines == ["rc=1"])
    }

    @Test func maskedProcEntriesCannotBeReadOrUnmasked() throws {
        let machine = try TestMachine()
        let present = ["/proc/kallsyms", "/proc/keys", "/proc/timer_list", "/proc/kcore", "/proc/sysrq-trigger", "/proc/sched_debug"]
            .filter { FileManager.default.fileExists(atPath: $0) }
        #expect(!present.isEmpty)
        for entry in present {
            let read = try machine.shell("cat \(entry) | wc -c; umount \(entry) && echo unmounted")
            #expect(read.lines == ["0"], "\(entry) leaks: \(read.stdout)")
        }
    }

    @Test func onlyTheMachinesNetworkDevicesAreVisible() throws {
        let machine = try TestMachine()
        #expect(try machine.run([], ["ls", "/sys/class/net"]).stdout == "lo\n")
        #expect(try machine.shell("cat /sys/class/net/lo/operstate; cat /sys/class/net/lo/flags").lines.last == "0x9")
    }

    @Test func devHoldsOnlyTheMinimalSet() throws {
        let machine = try TestMachine()
        let listing = try machine.run([], ["ls", "-1", "/dev"]).lines
        #expect(listing == ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"])
        let modes = try machine.shell("stat -c '%a %U' /tmp /dev/shm /dev/null").lines
        #expect(modes == ["1777 root", "1777 root", "666 root"])
    }

    @Test func theMachinesCgroupIsItsRoot() throws {
        let machine = try TestMachine()
        let result = try machine.shell("grep '^0::' /proc/self/cgroup; mkdir /sys/fs/cgroup/child && echo made")
        #expect(result.lines == ["0::/", "made"])
    }

    @Test func environmentIsNspawnsThenTheGivenOnes() throws {
        let machine = try TestMachine()
        let uuid = "0b0c7d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"
        let env = try machine.run(["--uuid=\(uuid)", "-E", "FOO=bar", "-E", "HOME=/elsewhere"], ["env"]).lines
        #expect(env.contains("container=swift-nspawn"))
        let host = OSReleaseFields.host
        #expect(env.contains("container_host_id=\(host["ID"] ?? "")") && env.contains("container_host_version_id=\(host["VERSION_ID"] ?? "")"), "\(env)")
        #expect(env.contains("container_uuid=\(uuid)"))
        #expect(env.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
        #expect(env.contains("USER=root") && env.contains("LOGNAME=root"))
        #expect(env.contains("FOO=bar"))
        #expect(env.contains("HOME=/elsewhere") && !env.contains("HOME=/root"))
        #expect(try machine.run([], ["cat", "/run/host/container-manager"]).stdout == "swift-nspawn\n")
        #expect(try machine.run([], ["cat", "/run/host/os-release"]).stdout == (try String(contentsOfFile: "/etc/os-release", encoding: .utf8)))
    }

    @Test func pid1GetsTheOOMScoreLimitsAffinityAndPersonalityAsked() throws {
        let machine = try TestMachine()
        let result = try machine.shell(
            "cat /proc/self/oom_score_adj; ulimit -n; ulimit -Hn; grep Cpus_allowed_list /proc/self/status; uname -m",
            options: ["--oom-score-adjust=500", "--rlimit=NOFILE=512:1024", "--cpu-affinity=0", "--personality=x86"])
        #expect(result.lines == ["500", "512", "1024", "Cpus_allowed_list:\t0", "i686"], "\(result.stderr)")
        // The supervisor went back to its own score while the machine kept its.
        let run = try BackgroundRun(["-D", machine.path, "-P", "-q", "--oom-score-adjust=700", "/bin/sleep", "30"])
        // Up once the machine's PID 1 is the sleep (it is born, and the supervisor has its score back).
        let procs = "\(HostState.cgroupRoot)/machine-\(machine.name)/cgroup.procs"
        #expect(
            run.waitUntil {
                guard let pid = ((try? String(contentsOfFile: procs, encoding: .utf8)) ?? "").split(separator: "\n").first else { return false }
                return (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) == "sleep\n"
            })
        let own = try String(contentsOfFile: "/proc/\(run.pid)/oom_score_adj", encoding: .utf8)
        #expect(own == (try String(contentsOfFile: "/proc/self/oom_score_adj", encoding: .utf8)), "\(own)")
        kill(run.pid, SIGTERM)
        _ = run.finish()
    }

    /// Credentials as systemd-nspawn passes them: $CREDENTIALS_DIRECTORY, a read-only ramfs, files of
    /// mode 0400 that are the machine root's; from --set-credential and from a host file.
    @Test func credentialsReachThePayloadReadOnly() throws {
        let machine = try TestMachine()
        let secret = machine.directory.appendingPathComponent("secret")
        try "from a file".write(to: secret, atomically: false, encoding: .utf8)
        let result = try machine.shell(
            """
            echo $CREDENTIALS_DIRECTORY; stat -c '%a %u %n' $CREDENTIALS_DIRECTORY $CREDENTIALS_DIRECTORY/*
            cat $CREDENTIALS_DIRECTORY/password; echo; cat $CREDENTIALS_DIRECTORY/key; echo
            touch $CREDENTIALS_DIRECTORY/x 2>/dev/null || echo read-only; grep -c ' /run/host/credentials .* - ramfs ' /proc/self/mountinfo
            """, options: ["--set-credential=password:two\\nlines", "--load-credential=key:\(secret.path)"])
        #expect(
            result.lines == [
                "/run/host/credentials", "500 0 /run/host/credentials", "400 0 /run/host/credentials/key", "400 0 /run/host/credentials/password", "two",
                "lines", "from a file", "read-only", "1",
            ], "\(result.stderr)")
        #expect(!(try machine.run([], ["env"])).lines.contains { $0.hasPrefix("CREDENTIALS_DIRECTORY=") })
        let missing = try machine.run(["--load-credential=key:/nonexistent"], ["true"])
        #expect(missing.status == 1 && missing.stderrLines == ["Failed to read credential 'key' from /nonexistent: No such file or directory"])
    }

    /// --link-journal, with the host's /var/log/journal a tmpfs in a mount namespace of the test's
    /// own: host binds the host's directory into the machine (what its root writes is the host
    /// root's), try-guest makes the tree's directory and links the host's name to it.
    @Test func linkJournalBindsOrLinksAsSystemdNspawnDoes() throws {
        let id = "0123456789abcdef0123456789abcdef"
        let machine = try TestMachine {
            try "\(id)\n".write(to: $0.appendingPathComponent("etc/machine-id"), atomically: false, encoding: .utf8)
            try FileManager.default.createDirectory(at: $0.appendingPathComponent("var/log/journal"), withIntermediateDirectories: true)
        }
        func inPrivateJournal(_ after: String) -> [String] {
            ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "mount -t tmpfs tmpfs /var/log/journal && \"$@\"; \(after)", "sh"]
        }
        let guest = try runNspawn(
            ["-D", machine.path, "-P", "--link-journal=try-guest", "/bin/true"], prefix: inPrivateJournal("readlink /var/log/journal/\(id)"))
        #expect(guest.lines == ["\(machine.path)/var/log/journal/\(id)"], "\(guest.stderr)")
        #expect(guest.stderr.contains("Making /var/log/journal/\(id) in the tree"))
        #expect(FileManager.default.fileExists(atPath: "\(machine.path)/var/log/journal/\(id)"))
        let host = try runNspawn(
            ["-D", machine.path, "-P", "-q", "--link-journal=host", "/bin/sh", "-c", "touch /var/log/journal/\(id)/system.journal && echo wrote"],
            prefix: inPrivateJournal("stat -c '%u %n' /var/log/journal/\(id)/system.journal"))
        #expect(host.lines == ["wrote", "0 /var/log/journal/\(id)/system.journal"], "\(host.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(machine.path)/var/log/journal/\(id)/system.journal"), "written into the tree, not the host")
        #expect(!FileManager.default.fileExists(atPath: "/var/log/journal/\(id)"), "the real host's journal directory was touched")

        // systemd-nspawn 252 links the same way.
        let reference = try TestMachine {
            try "\(id)\n".write(to: $0.appendingPathComponent("etc/machine-id"), atomically: false, encoding: .utf8)
            try FileManager.default.createDirectory(at: $0.appendingPathComponent("var/log/journal"), withIntermediateDirectories: true)
        }
        let theirs = try runSystemdNspawn(
            ["-D", reference.path, "-P", "-q", "--link-journal=try-guest", "/bin/true"], prefix: inPrivateJournal("readlink /var/log/journal/\(id)"))
        if let theirs { #expect(theirs.lines == ["\(reference.path)/var/log/journal/\(id)"], "\(theirs.stderr)") }
    }

    /// The host's time zone as a symlink names it (Etc/UTC on the build machine).
    static let hostZone: String? = {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/etc/localtime") else { return nil }
        return target.range(of: "zoneinfo/").map { String(target[$0.upperBound...]) }
    }()

    /// --timezone, side by side with systemd-nspawn 252: the guest sees the host's zone either way;
    /// auto and bind leave the tree as it was, while systemd-nspawn's auto writes into it.
    @Test(.enabled(if: hostZone != nil, "the host's /etc/localtime is no symlink into /usr/share/zoneinfo"))
    func timezoneFollowsTheHostWithoutWritingIntoTheTree() throws {
        let zone = try #require(Self.hostZone)
        func makeTree(_ root: URL) throws {
            let zoneinfo = root.appendingPathComponent("usr/share/zoneinfo")
            try FileManager.default.createDirectory(at: zoneinfo.appendingPathComponent(zone).deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: zoneinfo.appendingPathComponent("Test"), withIntermediateDirectories: true)
            try "tree's \(zone)\n".write(to: zoneinfo.appendingPathComponent(zone), atomically: false, encoding: .utf8)
            try "tree's own zone\n".write(to: zoneinfo.appendingPathComponent("Test/Own"), atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(
                atPath: root.appendingPathComponent("etc/localtime").path, withDestinationPath: "../usr/share/zoneinfo/Test/Own")
        }
        let look = "readlink /etc/localtime; cat /etc/localtime /usr/share/zoneinfo/Test/Own"
        let hostZoneFile = try String(contentsOfFile: "/etc/localtime", encoding: .isoLatin1)

        let machine = try TestMachine(extraSetup: makeTree)
        let before = treeFingerprint(machine.path)
        let auto = try machine.shell(look)
        #expect(auto.lines == ["../usr/share/zoneinfo/\(zone)", "tree's \(zone)", "tree's own zone"], "\(auto.stderr)")
        let bind = try machine.shell("cat /etc/localtime", options: ["--timezone=bind"])
        #expect(bind.stdout == hostZoneFile, "\(bind.stderr)")
        let off = try machine.shell("readlink /etc/localtime", options: ["--timezone=off"])
        #expect(off.lines == ["../usr/share/zoneinfo/Test/Own"])
        let denied = try machine.shell("ln -sf /x /etc/localtime 2>/dev/null || echo kept")
        #expect(denied.lines == ["kept"], "the machine's root cannot replace the mounted link")
        #expect(treeFingerprint(machine.path) == before, "auto and bind wrote into the tree")

        // The modes that write, and say so.
        let symlink = try runNspawn(["-D", machine.path, "-P", "--timezone=symlink", "/bin/true"])
        #expect(symlink.stderr.contains("Linking /etc/localtime in the tree"), "\(symlink.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(machine.path)/etc/localtime") == "../usr/share/zoneinfo/\(zone)")
        _ = try machine.run(["--timezone=copy"], ["/bin/true"])
        #expect(try String(contentsOfFile: "\(machine.path)/etc/localtime", encoding: .isoLatin1) == hostZoneFile)
        _ = try machine.run(["--timezone=delete"], ["/bin/true"])
        #expect(!FileManager.default.fileExists(atPath: "\(machine.path)/etc/localtime"))
        #expect(!FileManager.default.fileExists(atPath: "\(machine.path)/etc/.#localtime.swift-nspawn"))

        // bind makes its mount point, as the host's root would, in an /etc the machine's root does not own.
        let made = try machine.shell("cat /etc/localtime", options: ["-U", "--private-users-ownership=off", "--timezone=bind"])
        #expect(made.stdout == hostZoneFile, "\(made.stderr)")
        #expect(FileManager.default.fileExists(atPath: "\(machine.path)/etc/localtime"))

        let reference = try TestMachine(extraSetup: makeTree)
        guard let theirs = try runSystemdNspawn(["-q", "-P", "-D", reference.path, "/bin/sh", "-c", look]) else { return }
        #expect(theirs.lines == auto.lines, "systemd-nspawn 252 shows the machine the same: \(theirs.stderr)")
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: "\(reference.path)/etc/localtime") == "../usr/share/zoneinfo/\(zone)",
            "systemd-nspawn's auto writes the link into the tree")
        let theirBind = try runSystemdNspawn(["-q", "-P", "-D", reference.path, "--timezone=bind", "/bin/cat", "/etc/localtime"])
        #expect(theirBind?.stdout == bind.stdout, "\(theirBind?.stderr ?? "")")
    }

    @Test func machineIDOfTheTreeWinsOverUUID() throws {
        let id = "00112233445566778899aabbccddeeff"
        let machine = try TestMachine { try "\(id)\n".write(to: $0.appendingPathComponent("etc/machine-id"), atomically: false, encoding: .utf8) }
        let env = try machine.run(["--uuid=0b0c7d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"], ["env"]).lines
        #expect(env.contains("container_uuid=00112233-4455-6677-8899-aabbccddeeff"))
    }

    @Test func chdirAndUserApply() throws {
        let machine = try TestMachine()
        #expect(try machine.run(["--chdir=/tmp"], ["pwd"]).stdout == "/tmp\n")
        let alice = try machine.shell("id -u; id -g; id -G; echo $USER $HOME", options: ["-u", "alice"])
        #expect(alice.lines == ["1000", "1000", "1000 10", "alice /home/alice"])
        let unknown = try machine.run(["-u", "mallory"], ["true"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("mallory"))
    }
}

/// The host's os-release fields, read the plain way for the checks above.
enum OSReleaseFields {
    static let host: [String: String] = {
        let text = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return fields
    }()
}
