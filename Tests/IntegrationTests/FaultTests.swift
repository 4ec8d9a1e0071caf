import Foundation
import Testing

@testable import NspawnCore

/// Faults: the supervisor SIGKILLed at random moments of start-up, run and shutdown, each followed
/// by a normal run that must work and leave the host as it was (mounts, cgroups, /run/swift-nspawn,
/// the tree's files; with -n also links, addresses, routes and nftables tables; with -i the loop
/// devices and the image's bytes); a full /run, a refused network namespace and too few
/// descriptors end in one line and a clean host.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct FaultTests {
    /// The kill moments, from a seed the test prints (FAULT_SEED replays a run).
    static let seed = UInt64(ProcessInfo.processInfo.environment["FAULT_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)

    /// Runs `command` in the background, SIGKILLs swift-nspawn after `delay` microseconds, and
    /// waits for it, and until its children (which die with it) have let go of `image`: the run
    /// after would find the tree busy, truthfully, for the few moments they take to end.
    private func killedRun(_ arguments: [String], image: String, prefix: [String] = [], delay: UInt32) throws {
        let run = try BackgroundRun(arguments, prefix: prefix)
        usleep(delay)
        kill(run.pid, SIGKILL)
        _ = run.finish()
        let released = eventually(within: 3) {
            let fd = open(image, O_RDONLY | O_CLOEXEC)
            defer { close(fd) }
            return fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        #expect(released, "\(image) still locked 3 s after swift-nspawn was killed")
    }

    @Test func killedAtFiftyMoments() throws {
        let machine = try TestMachine()
        let tree = treeFingerprint(machine.path)
        let host = HostState.capture()
        var random = SplitMix64(seed: Self.seed)
        // A start takes about 10 ms, the command 20 ms, shutdown a few: moments all through them.
        for round in 0..<50 {
            let delay = UInt32.random(in: 0...45_000, using: &random)
            try killedRun(["-D", machine.path, "-P", "-q", "/bin/sh", "-c", "sleep 0.02"], image: machine.path, delay: delay)
            let normal = try machine.run([], ["true"])
            #expect(normal.status == 0, "seed \(Self.seed) round \(round), killed after \(delay) µs: \(normal.stderr)")
            let settled = eventually(within: 3) { HostState.capture() == host }
            #expect(settled, "seed \(Self.seed) round \(round), killed after \(delay) µs: \(HostState.capture()) vs \(host)")
            #expect(treeFingerprint(machine.path) == tree, "seed \(Self.seed) round \(round)")
        }
        print("fault: 50 kills from seed \(Self.seed), host and tree as they were after each normal run")
    }

    @Test func killedWithANetwork() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let before = try network.state()
        let host = HostState.capture()
        var random = SplitMix64(seed: Self.seed ^ 0x6e)
        for round in 0..<20 {
            let delay = UInt32.random(in: 0...60_000, using: &random)
            try killedRun(
                ["-D", machine.path, "-P", "-q", "--register=no", "-n", "/bin/sh", "-c", "sleep 0.02"], image: machine.path, prefix: network.prefix,
                delay: delay)
            let normal = try network.nspawn(machine, ["-n"], ["true"])
            #expect(normal.status == 0, "seed \(Self.seed) round \(round), killed after \(delay) µs: \(normal.stderr)")
            try network.expectUnchanged(since: before)
            #expect(eventually(within: 3) { HostState.capture() == host }, "seed \(Self.seed) round \(round)")
        }
    }

    @Test func killedWithADiskImage() throws {
        let machine = try TestMachine()
        let image = try TestDiskImage(table: "gpt", [.init(type: "root", content: .tree(machine.path))])
        let before = try image.checksum()
        let host = HostState.capture()
        var random = SplitMix64(seed: Self.seed ^ 0x1a)
        for round in 0..<20 {
            let delay = UInt32.random(in: 0...60_000, using: &random)
            try killedRun(["-i", image.path, "-x", "-P", "-q", "/bin/sh", "-c", "sleep 0.02"], image: image.path, delay: delay)
            let normal = try runNspawn(["-i", image.path, "-x", "-P", "-q", "true"])
            #expect(normal.status == 0, "seed \(Self.seed) round \(round), killed after \(delay) µs: \(normal.stderr)")
            #expect(image.loopDevicesGone(), "seed \(Self.seed) round \(round)")
            #expect(eventually(within: 3) { HostState.capture() == host }, "seed \(Self.seed) round \(round): \(HostState.capture())")
        }
        #expect(try image.checksum() == before)
    }

    /// /run without a free inode (a tmpfs of the test's own mount namespace): one line, status 1.
    @Test func fullRun() throws {
        let machine = try TestMachine()
        let script =
            "mount -t tmpfs -o size=64k,nr_inodes=8 tmpfs /run && i=0 && while touch /run/f$i 2>/dev/null; do i=$((i+1)); done; exec \"$@\""
        let result = try runNspawn(
            ["-D", machine.path, "-P", "-q", "true"], prefix: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh"])
        #expect(result.status == 1 && result.stderrLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("No space left on device"), "\(result.stderr)")
    }

    /// A network namespace the kernel refuses (ENOSPC: its max_net_namespaces reached), which PID 1
    /// makes at birth, while the supervisor is still writing its ID maps and setting its limits:
    /// one line naming the call, status 1, and nothing left behind.
    @Test func refusedNetworkNamespace() throws {
        let machine = try TestMachine()
        let host = HostState.capture()
        let refuse = [try machine.hostFixture("refuse-unshare"), "\(NamespaceSet.network.rawValue)", "\(ENOSPC)"]
        let result = try runNspawn(["-D", machine.path, "-P", "-q", "--cpu-affinity=0", "--oom-score-adjust=100", "true"], prefix: refuse)
        #expect(result.status == 1 && result.stderrLines == ["unshare(\"net\"): No space left on device"], "\(result.stderr)")
        #expect(eventually(within: 3) { HostState.capture() == host }, "\(HostState.capture()) vs \(host)")
        // The same filter leaves a machine on the host's network alone.
        #expect(try runNspawn(["-D", machine.path, "-P", "-q", "--no-private-network", "true"], prefix: refuse).status == 0)
    }

    /// Too few descriptors, at every limit up to where a start fits: each ends in one line naming
    /// the call that failed, or runs, and leaves nothing behind.
    @Test func fewDescriptors() throws {
        let machine = try TestMachine()
        let host = HostState.capture()
        var ran = false
        // From 4: with 3, the dynamic loader of a debug build cannot open a library (status 127, not ours).
        for limit in 4...40 {
            let result = try runNspawn(["-D", machine.path, "-P", "-q", "true"], prefix: ["/usr/bin/prlimit", "--nofile=\(limit)", "--"])
            if result.status == 0 {
                ran = true
                continue
            }
            #expect(result.status == 1 && result.stderrLines.count == 1, "nofile \(limit): \(result.stderr)")
            #expect(result.stderr.contains("Too many open files"), "nofile \(limit): \(result.stderr)")
            #expect(eventually(within: 3) { HostState.capture() == host }, "nofile \(limit)")
        }
        #expect(ran, "no start fitted in 40 descriptors")
    }
}
