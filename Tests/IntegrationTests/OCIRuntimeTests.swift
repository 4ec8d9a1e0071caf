import Foundation
import Testing

/// swift-nspawn-runc against the OCI runtime specification (runtime.md: state, lifecycle,
/// operations; config.md: the fields engines send) and runc's command-line contract, as a black box
/// on real bundles: one test per requirement. Each runs under tools/subreaper, which reaps the
/// containers as containerd's shim does.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct OCIRuntimeTests {
    /// state JSON as a dictionary.
    private func state(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    /// runtime.md "create": the process waits, created; the pid file (written whole) names its host
    /// PID; it is not the child of create, which has ended ("state" reports it, start runs it).
    @Test func createLeavesTheProcessWaitingAndStartRunsIt() throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "echo ran; exit 42"])
        let result = try bundle.script(
            """
            $R create --bundle . --pid-file pid c || exit 1
            $R state c; echo
            pid=$(cat pid); echo "pidfile $pid"
            [ "$(awk '{print $4}' /proc/$pid/stat)" = "$PPID" ] && echo "parent is the subreaper"
            $R start c || exit 2
            i=0; while ! $R state c | grep -q '"stopped"'; do i=$((i+1)); [ $i -gt 200 ] && break; sleep 0.05; done
            $R state c; echo
            $R delete c && echo deleted
            """)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.output
        let created = state(lines.first ?? "")
        let pid = Int32(lines.first { $0.hasPrefix("pidfile ") }?.dropFirst(8) ?? "") ?? -1
        #expect(created["status"] as? String == "created" && (created["pid"] as? Int).map(Int32.init) == pid, "\(lines)")
        #expect(created["id"] as? String == "c" && created["bundle"] as? String == bundle.path && created["ociVersion"] != nil)
        // Orphaned at once: create ended, the subreaper is its parent.
        #expect(lines.contains("parent is the subreaper"))
        #expect(lines.contains("ran") && lines.contains("deleted"))
        let stopped = state(lines.first { $0.contains("\"stopped\"") } ?? "")
        #expect(stopped["pid"] as? Int == 0)
        #expect(result.reaped[pid] == 42, "\(result.reaped)")
        #expect(!FileManager.default.fileExists(atPath: "\(bundle.stateRoot)/c"))
    }

    /// "start": only a created container starts; one that runs, or ran, cannot again.
    @Test func startOnlyFromCreated() throws {
        let bundle = try TestBundle(["/bin/sleep", "3"])
        let result = try bundle.script(
            """
            $R start c; echo "unknown $?"
            $R create --bundle . c && $R start c || exit 1
            $R state c | grep -q '"running"' && echo running
            $R start c; echo "again $?"
            $R kill c KILL
            while ! $R state c | grep -q '"stopped"'; do sleep 0.05; done
            $R start c; echo "stopped $?"
            $R delete c
            """)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.output == ["unknown 1", "running", "again 1", "stopped 1"], "\(result.stdout)")
        #expect(result.stderr.contains("container does not exist: c"))
        #expect(result.stderr.contains("cannot start an already running container"))
        #expect(result.stderr.contains("cannot start a container that has stopped"))
    }

    /// "create" with an ID in use fails and changes nothing of the first.
    @Test func idsAreUnique() throws {
        let bundle = try TestBundle(["/bin/true"])
        let result = try bundle.script(
            """
            $R create --bundle . c || exit 1
            $R create --bundle . c; echo "second $?"
            $R state c | grep -q '"created"' && echo "first created"
            $R delete c
            """)
        #expect(result.output == ["second 1", "first created"], "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("container with id exists: c"))
    }

    /// "kill": the signal, by number or name, reaches the process; a stopped one cannot be signalled.
    /// (A PID 1 gets only the signals it handles, and SIGKILL: the kernel's rule for every init.)
    @Test(arguments: [("TERM", 71), ("SIGUSR1", 70), ("usr1", 70), ("9", 137)])
    func killSendsTheSignal(signal: String, status: Int32) throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "trap 'exit 70' USR1; trap 'exit 71' TERM; sleep 30 & wait"])
        let result = try bundle.script(
            """
            $R create --bundle . --pid-file pid c && $R start c || exit 1
            # The traps are set once the sleep runs beside the shell (a signal before is ignored).
            i=0; while [ "$($R ps --format json c | tr -cd , | wc -c)" -lt 1 ]; do i=$((i+1)); [ $i -gt 200 ] && exit 3; sleep 0.02; done
            $R kill c \(signal) || exit 2
            while ! $R state c | grep -q '"stopped"'; do sleep 0.05; done
            echo "pid $(cat pid)"
            $R kill c KILL; echo "stopped $?"
            $R delete c
            """)
        #expect(result.status == 0, "\(result.stderr)")
        let pid = Int32(result.output.first { $0.hasPrefix("pid ") }?.dropFirst(4) ?? "") ?? -1
        #expect(result.reaped[pid] == status, "\(result.reaped)")
        #expect(result.output.contains("stopped 1") && result.stderr.contains("container not running"))
    }

    /// "kill --all" reaches every process of the container, not only its PID 1: the sleeps end on
    /// SIGUSR1, so PID 1 (to which, as an init without a handler, it means nothing) gets past its
    /// wait and ends its own way.
    @Test func killAllReachesEveryProcess() throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "sleep 30 & sleep 30 & wait; echo after-wait; exit 5"])
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            # Both sleeps run beside the shell.
            i=0; while [ "$($R ps --format json c | tr -cd , | wc -c)" -lt 2 ]; do i=$((i+1)); [ $i -gt 200 ] && exit 4; sleep 0.02; done
            $R kill --all c USR1 || exit 2
            i=0; while ! $R state c | grep -q '"stopped"'; do i=$((i+1)); [ $i -gt 100 ] && exit 3; sleep 0.05; done
            $R delete c
            """)
        #expect(result.status == 0 && result.output == ["after-wait"], "\(result.stdout) \(result.stderr)")
        #expect(Array(result.reaped.values) == [5], "\(result.reaped)")
    }

    /// "delete": a running container only with --force, which kills it; its cgroup and state go.
    @Test func deleteNeedsForceWhileRunning() throws {
        let bundle = try TestBundle(["/bin/sleep", "30"])
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            $R delete c; echo "running $?"
            $R delete --force c; echo "forced $?"
            $R state c; echo "state $?"
            """)
        #expect(result.output == ["running 1", "forced 0", "state 1"], "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("cannot delete container c that is not stopped: running"))
        #expect(!FileManager.default.fileExists(atPath: "\(bundle.cgroupParentPath)/c"))
        #expect(result.reaped.values.allSatisfy { $0 == 137 } && result.reaped.count == 1)
    }

    /// A created container is deleted without --force (runc allows it; callers expect it): its
    /// process ends without having run.
    @Test func deleteOfCreated() throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "echo must-not-run"])
        let result = try bundle.script("$R create --bundle . c && $R delete c && echo deleted")
        #expect(result.output == ["deleted"], "\(result.stdout) \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(bundle.stateRoot)/c"))
    }

    /// config.md "process": args, env, cwd and the hostname reach the process; the rootfs is its root.
    @Test func processFieldsAreHonoured() throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "echo \"$GREETING $(pwd) $(hostname) $(cat /etc/hostname-marker)\""]) { config in
            var process = config["process"] as! [String: Any]
            process["env"] = ["PATH=/bin", "GREETING=hello"]
            process["cwd"] = "/tmp"
            config["process"] = process
            config["hostname"] = "oci-host"
        }
        try "in-the-tree\n".write(toFile: bundle.machine.path + "/etc/hostname-marker", atomically: false, encoding: .utf8)
        let result = try bundle.script("$R create --bundle . c && $R start c && sleep 0.5 && $R delete c")
        #expect(result.output == ["hello /tmp oci-host in-the-tree"], "\(result.stdout) \(result.stderr)")
    }

    /// --log-format json: one JSON object per line, with level, msg and time (containerd reports
    /// the last error's msg).
    @Test func errorsAreLoggedAsJSON() throws {
        let bundle = try TestBundle(["/bin/true"])
        let log = bundle.machine.directory.appendingPathComponent("log.json").path
        let result = try bundle.script("$R --log \(log) --log-format json delete nosuch; echo \"status $?\"")
        #expect(result.output == ["status 1"])
        let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
        let entry = state(String(lines.last ?? ""))
        #expect(lines.count == 1 && entry["level"] as? String == "error" && entry["msg"] as? String == "container does not exist: nosuch")
        #expect((entry["time"] as? String)?.hasSuffix("Z") == true)
    }

    /// A config swift-nspawn cannot honour is refused naming the field; nothing is left behind.
    @Test func refusedConfigLeavesNothing() throws {
        let bundle = try TestBundle(["/bin/true"]) { config in
            var linux = config["linux"] as! [String: Any]
            linux["sysctl"] = ["kernel.panic": "1"]
            config["linux"] = linux
        }
        let before = HostState.capture()
        let result = try bundle.script("$R create --bundle . c; echo \"status $?\"; ls \(bundle.stateRoot)")
        #expect(result.output == ["status 1"], "\(result.stdout)")
        #expect(result.stderr.contains("linux.sysctl: kernel.panic is not a setting of the machine's own namespaces."), "\(result.stderr)")
        #expect(HostState.capture() == before)
        #expect(!FileManager.default.fileExists(atPath: "\(bundle.cgroupParentPath)/c"))
    }

    /// config.md linux.sysctl, as Podman sends it: set in the container's own network namespace (the
    /// host's stays as it was); binds with nosuid and noexec, as Podman's /dev/shm.
    @Test func sysctlsAndBindFlags() throws {
        let hostValues = try ["net/ipv4/ping_group_range", "kernel/msgmax"].map { try String(contentsOfFile: "/proc/sys/\($0)", encoding: .utf8) }
        let bundle = try TestBundle(["/bin/sh", "-c", "cat /proc/sys/net/ipv4/ping_group_range; cat /proc/sys/kernel/msgmax; /data/run-me; echo \"run $?\""]) {
            config in
            var linux = config["linux"] as! [String: Any]
            linux["sysctl"] = ["net.ipv4.ping_group_range": "0 0", "kernel.msgmax": "4242"]
            config["linux"] = linux
            var mounts = config["mounts"] as! [[String: Any]]
            mounts.append(["destination": "/data", "type": "bind", "source": "/tmp/DATA", "options": ["bind", "rprivate", "nosuid", "noexec", "nodev"]])
            config["mounts"] = mounts
        }
        let data = bundle.machine.directory.appendingPathComponent("data").path
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try "#!/bin/sh\necho ran\n".write(toFile: data + "/run-me", atomically: false, encoding: .utf8)
        chmod(data + "/run-me", 0o755)
        // JSONSerialization writes / as \/.
        let config = try String(contentsOfFile: bundle.path + "/config.json", encoding: .utf8).replacingOccurrences(of: #"\/tmp\/DATA"#, with: data)
        try config.write(toFile: bundle.path + "/config.json", atomically: false, encoding: .utf8)
        let result = try bundle.script("$R create --bundle . c && $R start c || exit 1; sleep 0.5; $R delete c")
        #expect(result.output == ["0\t0", "4242", "run 126"], "\(result.stdout) \(result.stderr)")
        #expect(try ["net/ipv4/ping_group_range", "kernel/msgmax"].map { try String(contentsOfFile: "/proc/sys/\($0)", encoding: .utf8) } == hostValues)
    }

    /// A console socket's receiver, as go-runc's: one message, its text the pty's name, one fd; then
    /// it prints what comes from the pty. Run as python3 FILE SOCKET; SOCKET.ready says it listens.
    static let consoleReceiver = """
        import array, socket, sys, os
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)
        open(sys.argv[1] + ".ready", "w").close()
        c, _ = s.accept()
        fds = array.array("i")
        msg, anc, flags, addr = c.recvmsg(4096, socket.CMSG_LEN(fds.itemsize))
        fds.frombytes(anc[0][2])
        print("name", msg.decode(), "fds", len(fds), flush=True)
        out = b""
        while True:
            try: chunk = os.read(fds[0], 4096)
            except OSError: break
            if not chunk: break
            out += chunk
        print(out.decode().replace("\\r", ""), flush=True)
        """

    /// A create that fails once PID 1 waits (here: its console socket is not there) undoes all of it:
    /// PID 1, the cgroup, the state; and the reason reaches the log.
    @Test func createFailingHalfWayLeavesNothing() throws {
        let bundle = try TestBundle(["/bin/true"]) { config in
            var process = config["process"] as! [String: Any]
            process["terminal"] = true
            config["process"] = process
        }
        let before = HostState.capture()
        let log = bundle.machine.directory.appendingPathComponent("log.json").path
        let result = try bundle.script(
            "$R --log \(log) --log-format json create --bundle . --console-socket \(bundle.path)/missing.sock c; echo \"status $?\"; ls \(bundle.stateRoot)")
        #expect(result.output == ["status 1"], "\(result.stdout) \(result.stderr)")
        #expect(result.reaped.isEmpty && HostState.capture() == before)
        #expect(!FileManager.default.fileExists(atPath: "\(bundle.cgroupParentPath)/c"))
        let entry = state(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").last.map(String.init) ?? "")
        #expect((entry["msg"] as? String)?.contains("connect(\"\(bundle.path)/missing.sock\")") == true, "\(entry)")
    }

    /// A program that is not there fails create, as with runc, not the container after start; the
    /// reason (said by PID 1, whose standard error is the caller's) reaches the log too.
    @Test func missingProgramFailsCreate() throws {
        let bundle = try TestBundle(["no-such-program"])
        let log = bundle.machine.directory.appendingPathComponent("log.json").path
        let result = try bundle.script("$R --log \(log) --log-format json create --bundle . c; echo \"status $?\"; ls \(bundle.stateRoot)")
        #expect(result.output == ["status 1"], "\(result.stdout) \(result.stderr)")
        let entry = state(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").last.map(String.init) ?? "")
        #expect(entry["msg"] as? String == "exec: \"no-such-program\": executable file not found in $PATH", "\(entry)")
        #expect(!FileManager.default.fileExists(atPath: "\(bundle.cgroupParentPath)/c"))
    }

    /// process.terminal: the pty's master reaches --console-socket in one message with its name; the
    /// pty has process.consoleSize.
    @Test func terminalGoesToTheConsoleSocket() throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "echo on-the-pty; tty; stty size"]) { config in
            var process = config["process"] as! [String: Any]
            process["terminal"] = true
            process["consoleSize"] = ["height": 30, "width": 100]
            config["process"] = process
        }
        let socket = bundle.machine.directory.appendingPathComponent("console.sock").path
        try Self.consoleReceiver.write(toFile: socket + ".py", atomically: false, encoding: .utf8)
        let result = try bundle.script(
            """
            python3 \(socket).py \(socket) & receiver=$!
            while [ ! -e \(socket).ready ]; do sleep 0.02; done
            $R create --bundle . --console-socket \(socket) c && $R start c || exit 1
            while ! $R state c | grep -q '"stopped"'; do sleep 0.05; done
            $R delete c
            wait $receiver
            """)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.output.first == "name /dev/pts/0 fds 1", "\(result.stdout)")
        #expect(result.output.contains("on-the-pty") && result.output.contains("/dev/pts/0") && result.output.contains("30 100"), "\(result.stdout)")
    }
}

extension OCIRuntimeTests {
    /// pause freezes every process (cgroup2's freezer), state says paused, resume thaws; ps lists the
    /// processes as JSON.
    @Test func pauseResumeAndPs() throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "sleep 30 & while :; do date +%s%N > /tmp/tick; sleep 0.05; done"])
        let result = try bundle.script(
            """
            $R create --bundle . --pid-file pid c && $R start c || exit 1
            sleep 0.3
            $R ps --format json c
            $R pause c || exit 2
            $R state c | grep -o '"status":"[a-z]*"'
            $R start c; $R resume c; echo "resume $?"; $R pause c; $R pause c; echo "again $?"
            $R delete c; echo "delete $?"
            $R resume c && $R state c | grep -o '"status":"[a-z]*"'
            $R resume c; echo "resumed $?"
            $R delete --force c
            """)
        let lines = result.output
        let pids = (try? JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8))) as? [Int] ?? []
        // sh, sleep 30, and perhaps the loop's sleep 0.05.
        #expect(pids.count >= 2, "\(result.stdout) \(result.stderr)")
        #expect(
            Array(lines.dropFirst()) == [#""status":"paused""#, "resume 0", "again 1", "delete 1", #""status":"running""#, "resumed 1"],
            "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("cannot start a paused container") && result.stderr.contains("container not paused"))
        #expect(result.stderr.contains("cannot delete container c that is not stopped: paused"))
    }

    /// features: JSON naming what is taken, and nothing refused as supported.
    @Test func features() throws {
        let bundle = try TestBundle(["/bin/true"])
        let result = try bundle.script("$R features")
        let features = state(result.output.first ?? "")
        #expect(features["ociVersionMin"] as? String == "1.0.0" && features["ociVersionMax"] as? String == "1.2.0")
        let linux = features["linux"] as? [String: Any] ?? [:]
        #expect((linux["namespaces"] as? [String])?.contains("user") == true)
        #expect(((linux["mountExtensions"] as? [String: Any])?["idmap"] as? [String: Any])?["enabled"] as? Bool == true)
        #expect((linux["cgroup"] as? [String: Any])?["systemd"] as? Bool == true)
        #expect((linux["capabilities"] as? [String])?.contains("CAP_SYS_ADMIN") == true)
        #expect(features["hooks"] as? [String] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])
        let seccomp = linux["seccomp"] as? [String: Any] ?? [:]
        #expect(seccomp["enabled"] as? Bool == true && (seccomp["actions"] as? [String])?.contains("SCMP_ACT_NOTIFY") == true)
        #expect((seccomp["archs"] as? [String])?.contains("SCMP_ARCH_X86_64") == true)
    }
}

extension OCIRuntimeTests {
    /// exec: a process in the container's namespaces (its PID namespace: a small PID; its hostname),
    /// its cgroup, held as its PID 1 is (the container's bounding set, no_new_privs, the system call
    /// filter); its status without --detach; with --detach, exec ends, the pid file names it and the
    /// caller reaps it; --cap within the bounding set is kept across -u; a missing program, a
    /// capability beyond the container's, and a working directory that is one of exec's own
    /// descriptors (runc's CVE-2024-21626) fail exec.
    @Test func execRunsAProcessInTheContainer() throws {
        let bundle = try TestBundle(["/bin/sleep", "30"]) { config in config["hostname"] = "oci-host" }
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            $R exec c /bin/sh -c 'echo "$(hostname) $$ $(grep ^0:: /proc/self/cgroup)"; grep -E "^(CapBnd|NoNewPrivs|Seccomp):" /proc/self/status'
            echo "exec $?"
            $R exec c /bin/sh -c 'exit 3'; echo "status $?"
            $R exec -u 1000:1000 --cwd /tmp -e GREETING=hi --cap CAP_KILL c /bin/sh -c 'echo "$(id -u):$(id -g) $(pwd) $GREETING $(grep CapAmb /proc/self/status)"'
            $R exec --detach --pid-file exec.pid c /bin/sh -c 'exit 4'; echo "detached $? $(cat exec.pid)"
            $R exec c no-such-program; echo "missing $?"
            $R exec --cap CAP_SYS_ADMIN c /bin/true; echo "cap $?"
            for fd in 3 4 5 6 7 8; do $R exec --cwd /proc/self/fd/$fd c /bin/pwd; done; echo "fd-cwd $?"
            $R delete --force c
            """)
        let lines = result.output
        let first = lines.first?.split(separator: " ") ?? []
        #expect(first.count == 3 && first[0] == "oci-host" && (Int(first[1]) ?? 99) < 10 && first[2] == "0::/", "\(lines)")
        // The container's bounding set (containerd's default), its no_new_privs, the filter.
        #expect(Array(lines.dropFirst().prefix(3)) == ["CapBnd:\t00000000a80425fb", "NoNewPrivs:\t1", "Seccomp:\t2"], "\(lines)")
        let detached = lines.first { $0.hasPrefix("detached ") }?.split(separator: " ") ?? []
        #expect(detached.count == 3 && detached[1] == "0" && result.reaped[Int32(detached[2]) ?? -1] == 4, "\(lines) \(result.reaped)")
        #expect(
            Array(lines.dropFirst(4)).filter { !$0.hasPrefix("detached ") }
                == ["exec 0", "status 3", "1000:1000 /tmp hi CapAmb:\t0000000000000020", "missing 1", "cap 1", "fd-cwd 1"],
            "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains(#"exec: "no-such-program": executable file not found in $PATH"#))
        #expect(result.stderr.contains("exec: --cap CAP_SYS_ADMIN: not in the container's bounding set"))
        #expect(result.stderr.contains(#"chdir("/proc/self/fd/"#), "\(result.stderr)")
    }

    /// linux.namespaces with a path for pid, ipc and uts: a second container is born in the first's
    /// (as a Kubernetes pod's containers share its sandbox's, with shareProcessNamespace), with a
    /// mount namespace of its own; the hostname is the first's, not set again, and the first's PID 1
    /// is its PID 1.
    @Test func pidIPCAndUTSNamespacesByPath() throws {
        let show = "hostname; for n in ipc uts pid mnt; do readlink /proc/self/ns/$n; done; xargs -0 < /proc/1/cmdline"
        let pod = try TestBundle(["/bin/sleep", "30"], id: "pod") { config in config["hostname"] = "pod-host" }
        let member = try TestBundle(["/bin/sh", "-c", show], id: "m") { config in
            var linux = config["linux"] as! [String: Any]
            linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]).map { namespace in
                guard let type = namespace["type"] as? String, ["pid", "ipc", "uts"].contains(type) else { return namespace }
                return ["type": type, "path": "/proc/PODPID/ns/\(type)"]
            }
            config["linux"] = linux
        }
        let result = try pod.script(
            """
            $R create --bundle . --pid-file pid pod && $R start pod || exit 1
            sed -i "s/PODPID/$(cat pid)/g" \(member.path)/config.json
            i=0; while [ "$(cat /proc/$(cat pid)/comm)" != sleep ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
            $R exec pod /bin/sh -c '\(show)'
            $R create --bundle \(member.path) m && $R start m || exit 2
            i=0; while ! $R state m | grep -q '"stopped"'; do i=$((i+1)); [ $i -gt 100 ] && exit 3; sleep 0.05; done
            $R delete m && $R delete --force pod
            """)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.output
        #expect(lines.count == 12, "\(lines) \(result.stderr)")
        guard lines.count == 12 else { return }
        let (inPod, inMember) = (Array(lines[0..<6]), Array(lines[6..<12]))
        #expect(inPod[0] == "pod-host" && inMember[0] == "pod-host", "\(lines)")
        #expect(inPod[1...3] == inMember[1...3] && inPod[4] != inMember[4], "\(lines)")
        #expect(inPod[5] == "/bin/sleep 30" && inMember[5] == "/bin/sleep 30", "\(lines)")
    }

    /// linux.devices: the nodes are made in the container's /dev (a subdirectory too) with their mode
    /// and owner, and its device filter lets them be opened, as resources.devices allows them;
    /// another device can be neither made nor opened.
    @Test func devicesAreMadeAndAllowed() throws {
        let bundle = try TestBundle(
            [
                "/bin/sh", "-c",
                "stat -c '%n %t:%T %a %u:%g' /dev/net/tun /dev/fuse; exec 3<>/dev/net/tun && echo tun-open; "
                    + "{ mknod /dev/other b 7 0 && exec 4</dev/other; } 2>/dev/null && echo other-open || echo other-refused",
            ]
        ) { config in
            var linux = config["linux"] as! [String: Any]
            linux["devices"] = [
                ["type": "c", "path": "/dev/net/tun", "major": 10, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 0],
                ["type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0],
            ]
            var resources = linux["resources"] as! [String: Any]
            resources["devices"] =
                (resources["devices"] as! [[String: Any]]) + [
                    ["allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"],
                    ["allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"],
                ]
            linux["resources"] = resources
            config["linux"] = linux
        }
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            i=0; while ! $R state c | grep -q '"stopped"'; do i=$((i+1)); [ $i -gt 100 ] && exit 3; sleep 0.05; done
            $R delete c
            """)
        #expect(result.output == ["/dev/net/tun a:c8 600 0:0", "/dev/fuse a:e5 666 0:0", "tun-open", "other-refused"], "\(result.stdout) \(result.stderr)")
        // Through a link of the machine's /dev (fd -> /proc/self/fd): refused, nothing made or left.
        let through = try TestBundle(["/bin/true"]) { config in
            var linux = config["linux"] as! [String: Any]
            linux["devices"] = [["type": "c", "path": "/dev/fd/tun", "major": 10, "minor": 200]]
            config["linux"] = linux
        }
        let refused = try through.script("$R create --bundle . c; echo \"create $?\"")
        #expect(refused.output == ["create 1"] && refused.stderr.contains("/dev/fd"), "\(refused.stdout) \(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(through.cgroupParentPath)/c"))
    }

    /// A time namespace with linux.timeOffsets: the container's boot time clock (its uptime) runs
    /// ahead by the offset, and so does exec's process, which joins the namespace.
    @Test func timeNamespaceWithOffsets() throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "cut -d. -f1 /proc/uptime; exec sleep 30"]) { config in
            var linux = config["linux"] as! [String: Any]
            linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]) + [["type": "time"]]
            linux["timeOffsets"] = ["boottime": ["secs": 10_000_000, "nanosecs": 0], "monotonic": ["secs": 5, "nanosecs": 1]]
            config["linux"] = linux
        }
        let result = try bundle.script(
            """
            $R create --bundle . --pid-file pid c && $R start c || exit 1
            i=0; while [ "$(cat /proc/$(cat pid)/comm)" != sleep ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
            $R exec c /bin/sh -c 'cut -d. -f1 /proc/uptime'
            cut -d. -f1 /proc/uptime
            $R delete --force c
            """)
        let numbers = result.output.compactMap { Int($0) }
        #expect(numbers.count == 3, "\(result.stdout) \(result.stderr)")
        guard numbers.count == 3 else { return }
        #expect(numbers[0] >= 10_000_000 && numbers[1] >= 10_000_000 && numbers[2] < 10_000_000 && numbers[0] - numbers[2] >= 9_999_990, "\(numbers)")
    }

    /// A user namespace with its mappings; a bind with the ridmap option shows its owners as that
    /// namespace maps them (the host's root as the container's), one without shows them unmapped.
    @Test func idmappedBind() throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("sn-idmap-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: data) }
        let mapping = [["containerID": 0, "hostID": 0x7000_0000, "size": 65536]]
        let bundle = try TestBundle(["/bin/sh", "-c", "stat -c '%n %u' /mapped /raw; touch /mapped/f && stat -c '%n %u' /mapped/f"]) { config in
            var linux = config["linux"] as! [String: Any]
            linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]) + [["type": "user"]]
            (linux["uidMappings"], linux["gidMappings"]) = (mapping, mapping)
            config["linux"] = linux
            config["mounts"] =
                (config["mounts"] as! [[String: Any]]) + [
                    ["destination": "/mapped", "type": "bind", "source": data, "options": ["rbind", "ridmap"]],
                    ["destination": "/raw", "type": "bind", "source": data, "options": ["rbind", "ro"]],
                ]
        }
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            i=0; while ! $R state c | grep -q '"stopped"'; do i=$((i+1)); [ $i -gt 100 ] && exit 3; sleep 0.05; done
            $R delete c
            stat -c '%u' \(data)/f
            """)
        #expect(result.output == ["/mapped 0", "/raw 65534", "/mapped/f 0", "0"], "\(result.stdout) \(result.stderr)")
    }

    /// --preserve-fds: descriptors 3, 4, … of create (socket activation, as Podman passes them) are
    /// the container's process's, and of exec the new process's; without it, none is; one that is
    /// not open is refused.
    @Test func preservedDescriptors() throws {
        let bundle = try TestBundle(["/bin/sh", "-c", "echo three >&3; echo four >&4; exec sleep 30"])
        let result = try bundle.script(
            """
            $R create --bundle . --pid-file pid --preserve-fds 2 c 3>fd3 4>fd4 5>fd5 && $R start c || exit 1
            i=0; while [ "$(cat /proc/$(cat pid)/comm)" != sleep ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
            # PID 1 (sleep now) has 0-2 and the two it was given, and nothing of ours or of the caller's 5.
            echo "pid 1 has $(ls /proc/$(cat pid)/fd | sort -n | tr '\\n' ' ')"
            $R exec --preserve-fds 1 c /bin/sh -c 'echo exec >&3' 3>fd6
            $R exec c /bin/sh -c '[ -e /proc/self/fd/3 ] && echo has-3 || echo no-3' 3>fd7
            $R delete --force c
            # Descriptor 4 closed: refused, before swift-nspawn-runc opens one of its own there.
            $R create --bundle . --preserve-fds 2 d 3>/dev/null 4<&-; echo "not open $?"
            cat fd3 fd4 fd5 fd6 fd7
            """)
        #expect(result.output == ["pid 1 has 0 1 2 3 4 ", "no-3", "not open 1", "three", "four", "exec"], "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("--preserve-fds=2: descriptor 4 is not open."), "\(result.stderr)")
    }

    /// exec without --detach stands for its process: a signal sent to exec reaches the process (its
    /// trap answers), and exec ends with the process's status.
    @Test func execPassesOnSignals() throws {
        let bundle = try TestBundle(["/bin/sleep", "30"])
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            $R exec c /bin/sh -c 'trap "echo got-term; exit 9" TERM; trap "echo got-usr1" USR1; echo ready; sleep 30 & wait; sleep 30 & wait' > out &
            e=$!
            i=0; until grep -q ready out; do i=$((i+1)); [ $i -gt 100 ] && exit 2; sleep 0.05; done
            kill -USR1 $e; sleep 0.3; kill -TERM $e
            wait $e; echo "exec $?"
            cat out
            $R delete --force c
            """)
        #expect(result.output == ["exec 9", "ready", "got-usr1", "got-term"], "\(result.stdout) \(result.stderr)")
    }

    /// exec --process: the OCI process object containerd writes, with a terminal on the console socket.
    @Test func execProcessFileAndTerminal() throws {
        let bundle = try TestBundle(["/bin/sleep", "30"])
        let process = #"{"args": ["/bin/sh", "-c", "echo $MARK; exit 6"], "env": ["MARK=from-process-json"], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#
        try process.write(toFile: bundle.path + "/process.json", atomically: false, encoding: .utf8)
        let wider = #"{"args": ["/bin/true"], "capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}"#
        try wider.write(toFile: bundle.path + "/wider.json", atomically: false, encoding: .utf8)
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            $R exec --process process.json c; echo "status $?"
            $R exec --process wider.json c; echo "wider $?"
            $R delete --force c
            """)
        #expect(result.output == ["from-process-json", "status 6", "wider 1"], "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("capabilities.bounding: CAP_SYS_ADMIN not in the container's bounding set."))
    }

    /// exec --process with a terminal: a pty of the container's devpts, its master to the console
    /// socket, sized as process.consoleSize says.
    @Test func execWithATerminal() throws {
        let bundle = try TestBundle(["/bin/sleep", "30"])
        let process = #"{"args": ["/bin/sh", "-c", "tty; stty size"], "terminal": true, "consoleSize": {"height": 40, "width": 120}}"#
        try process.write(toFile: bundle.path + "/process.json", atomically: false, encoding: .utf8)
        let socket = bundle.machine.directory.appendingPathComponent("console.sock").path
        try Self.consoleReceiver.write(toFile: socket + ".py", atomically: false, encoding: .utf8)
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            python3 \(socket).py \(socket) & receiver=$!
            while [ ! -e \(socket).ready ]; do sleep 0.02; done
            $R exec --process process.json --console-socket \(socket) c; echo "exec $?"
            wait $receiver
            $R delete --force c
            """)
        // The receiver's lines and exec's end come in either order.
        #expect(result.output.filter { $0 != "exec 0" } == ["name /dev/pts/0 fds 1", "/dev/pts/0", "40 120"], "\(result.stdout) \(result.stderr)")
        #expect(result.output.contains("exec 0"), "\(result.stdout) \(result.stderr)")
    }
}

extension OCIRuntimeTests {
    /// update --resources: limits written to the container's cgroup where its controllers are there
    /// (the VM lab's systemd host); where they are not (this hybrid host's cgroup2 has none), the limit
    /// is refused, never said and not in force. An empty object changes nothing; a stopped container
    /// cannot be updated.
    @Test func updateResources() throws {
        let bundle = try TestBundle(["/bin/sleep", "30"])
        let result = try bundle.script(
            """
            $R create --bundle . c && $R start c || exit 1
            echo '{}' | $R update --resources - c; echo "empty $?"
            echo '{"pids": {"limit": 100}}' | $R update --resources - c; echo "pids $?"
            cat \(bundle.cgroupParentPath)/c/pids.max 2>/dev/null
            echo '{"pids": {"limit": "x"}}' | $R update -r - c; echo "bad $?"
            $R kill c KILL; while ! $R state c | grep -q '"stopped"'; do sleep 0.05; done
            echo '{}' | $R update --resources - c; echo "stopped $?"
            $R delete c
            """)
        if TestEnvironment.hostDelegatesMemoryAndPids {
            #expect(result.output == ["empty 0", "pids 0", "100", "bad 1", "stopped 1"], "\(result.stdout) \(result.stderr)")
        } else {
            #expect(result.output == ["empty 0", "pids 1", "bad 1", "stopped 1"], "\(result.stdout) \(result.stderr)")
            #expect(
                result.stderr.contains("The cgroup controller pids is not enabled for \(bundle.cgroupParentPath)/c: the limit TasksMax= cannot be applied."))
        }
        #expect(result.stderr.contains("resources: linux.resources.pids.limit: expected an integer"), "\(result.stderr)")
        #expect(result.stderr.contains("container not running"))
    }
}
