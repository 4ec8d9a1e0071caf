import Foundation
import Testing

enum Engines {
    static let containerd = FileManager.default.isExecutableFile(atPath: "/usr/bin/containerd") && FileManager.default.isExecutableFile(atPath: "/usr/bin/ctr")
    static let podman = FileManager.default.isExecutableFile(atPath: "/usr/bin/podman")
}

/// swift-nspawn-runc driven by a real engine: Debian 12's containerd 1.6 with ctr, started by the
/// test on a socket and state directories of its own, in a mount namespace of its own whose /run
/// is a tmpfs (containerd keeps its shims' sockets and runc's --root in /run/containerd).
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason), .enabled(if: Engines.containerd, "needs containerd (make deps)"))
struct OCIEngineTests {
    /// Runs `body` (shell) with containerd up: $CTR is ctr on its socket, $RUNTIME swift-nspawn-runc,
    /// $ROOTFS a busybox tree. Returns the run; containerd is stopped and its cgroups are removed.
    private func withContainerd(_ body: String, timeout: TimeInterval = 120) throws -> RunResult {
        let bundle = try TestBundle(["/bin/true"])
        let work = bundle.machine.directory.path
        let config = """
            version = 2
            root = "\(work)/containerd-root"
            state = "\(work)/containerd-state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(work)/containerd.sock"
            """
        try config.write(toFile: "\(work)/containerd.toml", atomically: false, encoding: .utf8)
        let hadDefault = FileManager.default.fileExists(atPath: HostState.cgroupRoot + "/default")
        defer {
            // ctr's cgroupsPath is /default/ID: the namespace's parent stays after delete, as with runc.
            if !hadDefault { rmdir(HostState.cgroupRoot + "/default") }
        }
        let script = """
            set -u
            mount -t tmpfs -o mode=0755 tmpfs /run || exit 99
            containerd --config \(work)/containerd.toml > \(work)/containerd.log 2>&1 & containerd=$!
            i=0; while [ ! -S \(work)/containerd.sock ]; do i=$((i+1)); [ $i -gt 100 ] && exit 98; sleep 0.05; done
            CTR="ctr --address \(work)/containerd.sock"; RUNTIME=\(bundle.runtime); ROOTFS=\(bundle.machine.path)
            (
            \(body)
            ); status=$?
            kill $containerd; wait $containerd
            exit $status
            """
        // Under a subreaper: the shims containerd starts leave their parent, and must be reaped.
        return try runNspawn(
            ["-m", "--propagation", "private", "/bin/sh", "-c", script], timeout: timeout,
            prefix: [TestEnvironment.packageRoot.appendingPathComponent("tools/subreaper").path, "--timeout", "\(Int(timeout))"],
            binary: "/usr/bin/unshare")
    }

    /// The script's lines, without the subreaper's.
    /// The script's lines, without a pty's carriage returns and the subreaper's lines.
    private func output(_ result: RunResult) -> [String] {
        let text = String(String.UnicodeScalarView(result.stdout.unicodeScalars.filter { $0 != "\r" }))
        return text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("reaped ") }
    }

    /// Exit statuses reach ctr, as with runc: 0 and 42; the process's output too.
    @Test func exitStatuses() throws {
        let result = try withContainerd(
            """
            $CTR run --rm --runc-binary $RUNTIME --rootfs $ROOTFS zero /bin/sh -c 'echo hello from $(hostname)'; echo "zero $?"
            $CTR run --rm --runc-binary $RUNTIME --rootfs $ROOTFS answer /bin/sh -c 'exit 42'; echo "answer $?"
            """)
        #expect(output(result) == ["hello from zero", "zero 0", "answer 42"], "\(result.stdout) \(result.stderr)")
    }

    /// ctr run -t: the console socket, the process on a pty, its output through ctr.
    @Test func terminal() throws {
        let result = try withContainerd(
            """
            script -qfec "$CTR run --rm -t --runc-binary $RUNTIME --rootfs $ROOTFS tty /bin/sh -c 'tty; exit 3'" /dev/null < /dev/null; echo "tty $?"
            """)
        // ctr's first input to the pty is a NUL, which its echo shows as ^@.
        let lines = output(result).map { $0.hasPrefix("^@") ? String($0.dropFirst(2)) : $0 }
        #expect(lines == ["/dev/pts/0", "tty 3"], "\(result.stdout) \(result.stderr)")
    }

    /// A task killed through ctr (SIGTERM, which it handles: its status comes back to ctr run),
    /// one detached and deleted with --force while it runs; nothing listed after.
    @Test func killAndDelete() throws {
        let result = try withContainerd(
            """
            $CTR run --rm --runc-binary $RUNTIME --rootfs $ROOTFS k /bin/sh -c "trap 'exit 9' TERM; sleep 30 & wait" & run=$!
            i=0; while ! $CTR task ls | grep -q '^k .* RUNNING'; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.05; done
            $CTR task kill k; echo "kill $?"
            wait $run; echo "run $?"
            $CTR run -d --runc-binary $RUNTIME --rootfs $ROOTFS f /bin/sleep 30 > /dev/null || exit 2
            $CTR task delete --force f > /dev/null; echo "forced $?"
            $CTR container delete f; $CTR task ls -q; $CTR container ls -q
            """)
        #expect(output(result) == ["kill 0", "run 9", "forced 0"], "\(result.stdout) \(result.stderr)")
    }

    /// ctr task pause and resume (cgroup2's freezer), ctr task ps (ps --format json).
    @Test func pauseResumeAndPs() throws {
        let result = try withContainerd(
            """
            $CTR run -d --runc-binary $RUNTIME --rootfs $ROOTFS p /bin/sh -c 'sleep 30 & wait' > /dev/null || exit 1
            $CTR task pause p; $CTR task ls | awk '/^p / {print $3}'
            $CTR task resume p; $CTR task ls | awk '/^p / {print $3}'
            $CTR task ps p | tail -n +2 | wc -l
            $CTR task delete --force p > /dev/null; $CTR container delete p
            """)
        #expect(output(result) == ["PAUSED", "RUNNING", "2"], "\(result.stdout) \(result.stderr)")
    }

    /// ctr task exec: its output and status come back through containerd; -t through the console socket.
    @Test func exec() throws {
        let result = try withContainerd(
            """
            $CTR run -d --runc-binary $RUNTIME --rootfs $ROOTFS e /bin/sleep 30 > /dev/null || exit 1
            $CTR task exec --exec-id one e /bin/sh -c 'echo "in $(hostname)"; exit 7'; echo "exec $?"
            script -qfec "$CTR task exec -t --exec-id two e /bin/sh -c 'tty; exit 2'" /dev/null < /dev/null; echo "tty $?"
            $CTR task delete --force e > /dev/null; $CTR container delete e
            """)
        // ctr asks to resize the pty of a process that may have ended already, and says so.
        let lines = output(result).map { $0.hasPrefix("^@") ? String($0.dropFirst(2)) : $0 }.filter { !$0.contains("resize pty") }
        #expect(lines == ["in e", "exec 7", "/dev/pts/0", "tty 2"], "\(result.stdout) \(result.stderr)")
    }

    /// 50 rounds of ctr run --rm, each succeeding, leave nothing: no state under --root, no cgroup,
    /// no mount, no process.
    @Test func fiftyRoundsLeaveNothing() throws {
        let before = HostState.capture()
        let result = try withContainerd(
            """
            for i in $(seq 50); do
                $CTR run --rm --runc-binary $RUNTIME --rootfs $ROOTFS r$i /bin/true || { echo "round $i failed"; exit 1; }
            done
            echo rounds done
            ls -A /run/containerd/runc/default
            find /run/swift-nspawn -mindepth 1 2>/dev/null | grep -vxE '/run/swift-nspawn/(\(HostState.keptDirectories.sorted().joined(separator: "|")))'
            find /sys/fs/cgroup/unified/default /sys/fs/cgroup/default -mindepth 1 -type d 2>/dev/null
            ps -eo comm | grep -c '^swift-nspawn-ru$' 
            """, timeout: 300)
        #expect(output(result) == ["rounds done", "0"], "\(result.stdout) \(result.stderr)")
        #expect(HostState.capture() == before)
    }
}

/// swift-nspawn-runc driven by Debian 12's Podman 4.3 (through conmon), with storage of the test's
/// own and a /run of its own (a tmpfs in a mount namespace of the test), cgroupfs.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason), .enabled(if: Engines.podman, "needs podman (make deps)"))
struct PodmanTests {
    /// Runs `body` with $PODMAN set up; the cgroup parent Podman's cgroupsPath names is removed after.
    private func withPodman(_ body: String) throws -> (RunResult, TestBundle) {
        let bundle = try TestBundle(["/bin/true"])
        let work = bundle.machine.directory.path
        let hadParent = FileManager.default.fileExists(atPath: HostState.cgroupRoot + "/libpod_parent")
        defer { if !hadParent { rmdir(HostState.cgroupRoot + "/libpod_parent") } }
        let script = """
            mount -t tmpfs -o mode=0755 tmpfs /run || exit 99
            PODMAN="podman --root \(work)/storage --runroot /run/podman-run --tmpdir /run/podman-tmp --cgroup-manager cgroupfs \\
                --events-backend file --runtime \(bundle.runtime)"
            ROOTFS=\(bundle.machine.path)
            \(body)
            """
        let result = try runNspawn(
            ["-m", "--propagation", "private", "/bin/sh", "-c", script], timeout: 120,
            prefix: [TestEnvironment.packageRoot.appendingPathComponent("tools/subreaper").path, "--timeout", "120"], binary: "/usr/bin/unshare")
        return (result, bundle)
    }

    /// podman run --rm, with Podman's own seccomp profile: the output and the status come back.
    /// (This host's cgroup2 has no pids controller and root here cannot raise RLIMIT_NOFILE past
    /// its own: no pids limit, limits within ours.)
    @Test func run() throws {
        let (result, _) = try withPodman(
            """
            $PODMAN run --rm --network none \(Self.limits) --rootfs $ROOTFS /bin/sh -c 'echo "hello from $(hostname)"; exit 3'
            echo "run $?"
            """)
        // Podman names the machine's host after the container's short ID.
        #expect(
            result.lines.filter { !$0.hasPrefix("reaped ") }.map { $0.count } == ["hello from ".count + 12, "run 3".count], "\(result.stdout) \(result.stderr)")
        #expect(result.lines.contains("run 3"), "\(result.stdout) \(result.stderr)")
    }

    static let limits = "--pids-limit -1 --ulimit nofile=1024:1024 --ulimit nproc=4096:4096"

    /// A container kept running: exec with and without a terminal, run -it, stop and rm; the
    /// profile Podman sends holds exec's process too (it refuses unshare(2) with EPERM: no
    /// CAP_SYS_ADMIN in Podman's bounding set).
    @Test func execItStopRm() throws {
        let (result, _) = try withPodman(
            """
            $PODMAN run -d --name s --network none \(Self.limits) --rootfs $ROOTFS /bin/sleep 60 >/dev/null || exit 1
            $PODMAN exec s /bin/sh -c 'echo "exec in $(hostname)"'; echo "exec $?"
            script -qec "$PODMAN exec -it s /bin/sh -c 'tty; exit 4'" /dev/null >/run/tty; echo "exec -it $?"; tr -d '\\r' </run/tty
            script -qec "$PODMAN run -it --rm --network none \(Self.limits) --rootfs $ROOTFS /bin/sh -c 'sleep 0.3; tty; exit 5'" /dev/null >/run/tty
            echo "run -it $?"; tr -d '\\r' </run/tty
            $PODMAN exec s /bin/unshare -n /bin/true; echo "unshare $?"
            $PODMAN stop -t 2 s >/dev/null; echo "stop $?"
            $PODMAN ps -a --format '{{.Names}} {{.Status}}' | sed 's/ (.*//; s/ [0-9].*//'
            $PODMAN rm s >/dev/null; echo "rm $?"
            $PODMAN ps -a --format '{{.Names}}' | wc -l
            """)
        let lines = result.lines.filter { !$0.hasPrefix("reaped ") }
        #expect(lines.count == 11, "\(result.stdout) \(result.stderr)")
        guard lines.count == 11 else { return }
        #expect(lines[0].hasPrefix("exec in ") && lines[1] == "exec 0", "\(lines)")
        // (script(1) echoes the end of its empty input as ^@ first. The run's process waits a moment
        // before it writes: Podman's attach can miss what a process writes as it starts, with runc as
        // well: 15 `run -it` of `tty; exit 5` lost the output 4 times with runc 1.1.5, 2 with ours.)
        #expect(lines[2] == "exec -it 4" && lines[3].hasSuffix("/dev/pts/0"), "\(lines)")
        #expect(lines[4] == "run -it 5" && lines[5].hasSuffix("/dev/pts/0"), "\(lines)")
        #expect(lines[6] == "unshare 1" && lines[7] == "stop 0" && lines[8] == "s Exited" && lines[9] == "rm 0" && lines[10] == "0", "\(lines)")
        #expect(result.stderr.contains("unshare: unshare(0x40000000): Operation not permitted"), "\(result.stderr)")
    }

    /// --device: the node is in the container, and may be opened.
    @Test func device() throws {
        let (result, _) = try withPodman(
            """
            $PODMAN run --rm --network none \(Self.limits) --device /dev/net/tun --rootfs $ROOTFS \\
                /bin/sh -c 'stat -c "%n %t:%T" /dev/net/tun; exec 3<>/dev/net/tun && echo opened'
            """)
        #expect(result.lines.filter { !$0.hasPrefix("reaped ") } == ["/dev/net/tun a:c8", "opened"], "\(result.stdout) \(result.stderr)")
    }

    /// A runtime error reaches Podman's message word for word: here a CPU weight, which this
    /// host's cgroup2 could not apply (it has no cpu controller) and which swift-nspawn-runc refuses
    /// naming the field.
    @Test func runtimeErrorReachesPodman() throws {
        let (result, bundle) = try withPodman(
            "$PODMAN run --rm --network none \(Self.limits) --cpu-shares 512 --rootfs $ROOTFS /bin/true; echo \"run $?\"")
        #expect(result.lines.contains("run 126"), "\(result.stdout) \(result.stderr)")
        let line = result.stderrLines.last ?? ""
        #expect(line.hasPrefix("Error: OCI runtime error: \(bundle.runtime): \(bundle.machine.directory.path)/storage/overlay-containers/"), "\(line)")
        #expect(line.hasSuffix("/userdata/config.json: linux.resources.cpu.shares: not supported by swift-nspawn."), "\(line)")
    }
}
