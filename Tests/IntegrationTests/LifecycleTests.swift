import Foundation
import Testing

/// Exit statuses, signals, locks, and what the host holds before and after.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct LifecycleTests {
    @Test(arguments: [("exit 0", Int32(0)), ("exit 42", 42), ("exit 133", 1), ("kill -9 $$; exit 7", 7)])
    func exitStatusIsMappedAsNspawnMapsIt(script: String, expected: Int32) throws {
        let machine = try TestMachine()
        #expect(try machine.shell(script).status == expected)
    }

    @Test func payloadThatCannotBeExecutedFails() throws {
        let machine = try TestMachine()
        let result = try machine.run([], ["/nonexistent"])
        #expect(result.status == 1)
        #expect(result.stderrLines == ["execv(/nonexistent) failed: No such file or directory"])
    }

    @Test func secondReadWriteRunOnTheSameTreeIsRefused() throws {
        let machine = try TestMachine()
        let first = try BackgroundRun(["-D", machine.path, "-P", "-q", "/bin/sleep", "30"])
        #expect(first.waitUntil { !HostState.capture().cgroups.isEmpty })
        let second = try machine.run([], ["true"])
        #expect(second.status == 1)
        #expect(second.stderrLines == ["Directory tree \(machine.path) is currently busy."])
        kill(first.pid, SIGTERM)
        _ = first.finish()
    }

    /// Two read-only runs may share a tree, but not a name: the second is refused before it makes
    /// anything (it once took the first one's cgroup for a leftover and removed it), and the first
    /// runs on untouched. Another name on the same tree runs beside it.
    @Test func secondMachineOfTheSameNameIsRefused() throws {
        let machine = try TestMachine()
        let first = try BackgroundRun(["-D", machine.path, "--read-only", "-P", "-q", "/bin/sh", "-c", "sleep 1; exit 7"])
        #expect(first.waitUntil { !HostState.capture().cgroups.isEmpty })
        let before = HostState.capture()
        let second = try machine.run(["--read-only"], ["true"])
        #expect(second.status == 1)
        #expect(second.stderrLines == ["Machine '\(machine.name)' already exists."])
        #expect(HostState.capture() == before)
        let otherName = try machine.run(["--read-only", "-M", machine.name + "-other"], ["true"])
        #expect(otherName.status == 0, "\(otherName.stderr)")
        #expect(first.finish().status == 7)
    }

    /// The UID range's NSS lookups run in a child that ends before the machine starts, so the
    /// supervisor never holds an NSS module. Meaningful where nsswitch.conf names a module besides
    /// files (Debian's default names systemd); the sources are printed when it fails.
    @Test func theSupervisorNeverLoadsAnNSSModule() throws {
        let machine = try TestMachine()
        let nsswitch = (try? String(contentsOfFile: "/etc/nsswitch.conf", encoding: .utf8)) ?? ""
        let passwdSources = nsswitch.split(separator: "\n").first { $0.hasPrefix("passwd:") }?.split(separator: " ").dropFirst() ?? []
        let run = try BackgroundRun(["-D", machine.path, "-P", "-q", "/bin/sleep", "30"])
        #expect(run.waitUntil { !HostState.capture().cgroups.isEmpty })
        let maps = (try? String(contentsOfFile: "/proc/\(run.pid)/maps", encoding: .utf8)) ?? ""
        #expect(!maps.isEmpty)
        #expect(!maps.contains("libnss_"), "passwd sources: \(passwdSources)")
        kill(run.pid, SIGTERM)
        _ = run.finish()
    }

    @Test func sigtermWithoutKillSignalKillsThePayload() throws {
        let machine = try TestMachine()
        let run = try BackgroundRun(["-D", machine.path, "-P", "/bin/sleep", "30"])
        #expect(run.waitUntil { !HostState.capture().cgroups.isEmpty })
        kill(run.pid, SIGTERM)
        let (status, stderr) = run.finish()
        #expect(status == 1)
        #expect(stderr.contains("terminated by signal KILL"))
    }

    @Test func killSignalLetsThePayloadEndItsOwnWay() throws {
        let machine = try TestMachine()
        let run = try BackgroundRun(["-D", machine.path, "-P", "--kill-signal=SIGTERM", "/bin/sh", "-c", "trap 'exit 17' TERM; while :; do sleep 0.05; done"])
        #expect(run.waitUntil { !HostState.capture().cgroups.isEmpty })
        usleep(200_000)
        kill(run.pid, SIGTERM)
        #expect(run.finish().status == 17)
    }

    @Test func stubInitTurnsThePoweroffSignalIntoACleanExit() throws {
        let machine = try TestMachine()
        let run = try BackgroundRun(["-D", machine.path, "-P", "-a", "--kill-signal=SIGRTMIN+4", "/bin/sleep", "30"])
        #expect(run.waitUntil { !HostState.capture().cgroups.isEmpty })
        usleep(100_000)
        kill(run.pid, SIGTERM)
        #expect(run.finish().status == 0)
    }

    @Test func rebootWithKeepUnitExits133() throws {
        let machine = try TestMachine()
        let run = try BackgroundRun(["-D", machine.path, "-P", "-a", "--keep-unit", "--kill-signal=SIGRTMIN+5", "/bin/sleep", "30"])
        #expect(run.waitUntil { !HostState.capture().cgroups.isEmpty })
        usleep(100_000)
        kill(run.pid, SIGTERM)
        #expect(run.finish().status == 133)
    }

    @Test func killedSupervisorTakesItsMachineAlongAndBlocksNothing() throws {
        let machine = try TestMachine()
        let run = try BackgroundRun(["-D", machine.path, "-P", "-q", "/bin/sleep", "30"])
        var payload: pid_t = 0
        #expect(
            run.waitUntil {
                payload = Self.processes(running: "/bin/sleep 30").first ?? 0
                return payload != 0
            })
        kill(run.pid, SIGKILL)
        _ = run.finish()
        #expect(run.waitUntil { kill(payload, 0) != 0 }, "the machine outlived its supervisor")
        // The next run takes over the dead run's empty cgroup and unlocked ID range, and removes them.
        let before = HostState.capture()
        #expect(!before.cgroups.isEmpty)
        #expect(try machine.run([], ["true"]).status == 0)
        #expect(HostState.capture().cgroups.isEmpty)
        #expect(HostState.capture().runtime.isEmpty)
    }

    @Test func aRunLeavesTheHostAsItWasAndTheTreeUntouched() throws {
        let machine = try TestMachine()
        let before = HostState.capture()
        let tree = treeFingerprint(machine.path)
        #expect(try machine.shell("touch /tmp/x /run/x; mkdir /sys/fs/cgroup/sub; echo done").stdout == "done\n")
        #expect(try machine.run(["-a", "--private-users=no"], ["true"]).status == 0)
        #expect(HostState.capture() == before)
        #expect(treeFingerprint(machine.path) == tree)
    }

    static func processes(running command: String) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry),
                let cmdline = try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8)
            else { return nil }
            return cmdline.replacingOccurrences(of: "\0", with: " ").hasPrefix(command) ? pid : nil
        }
    }
}
