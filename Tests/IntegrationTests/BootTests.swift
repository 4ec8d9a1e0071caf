import Foundation
import Testing

/// Booting Debian with systemd as PID 1: the job swift-nspawn exists for.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct BootTests {
    private func debian(customize: (DebianMachine) throws -> Void = { _ in }) throws -> DebianMachine {
        let machine = try DebianMachine()
        try customize(machine)
        return machine
    }

    /// The whole transcript, from start to poweroff, with the user's binds and tmpfs mounts (one
    /// reached through /var/run → /run), has no FAILED line: the guest's init unmounts what it owns.
    @Test func bootsToMultiUserAndShutsDownCleanlyOnSIGTERM() throws {
        let machine = try debian()
        let source = machine.directory.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        let run = try BootRun(
            [
                "-D", machine.path, "-b", "--console=read-only", "--bind=\(source.path):/srv/shared", "--bind-ro=\(source.path):/var/run/shared",
                "--tmpfs=/var/scratch",
            ], in: machine.directory)
        #expect(run.waitFor("Multi-User System"), "\(run.transcript.suffix(2000))")
        #expect(run.transcript.contains("Welcome to"))
        let stopped = Date()
        kill(run.pid, SIGTERM)
        #expect(run.finish(timeout: 30) == 0, "\(run.stderr)")
        #expect(Date().timeIntervalSince(stopped) < 20)
        #expect(run.transcript.contains("Halting system."), "\(run.transcript.suffix(2000))")
        for unit in ["tmp.mount", "srv-shared.mount", "run-shared.mount", "var-scratch.mount"] {
            #expect(run.transcript.contains("Unmounted \u{1B}[0;1;39m\(unit)"), "\(unit) \(run.transcript.suffix(3000))")
        }
        let failed = run.transcript.split(separator: "\n").filter { $0.contains("FAILED") }
        #expect(failed.isEmpty, "\(failed)")
        #expect(run.stderr.contains("Container \(machine.name) has been shut down."))
        #expect(HostState.capture().cgroups.isEmpty)
    }

    /// $container and /run/host/container-manager say swift-nspawn: systemd in the machine knows it
    /// is in a container, of a kind it has no name for (documented in swift-nspawn(1)).
    @Test func systemdInTheMachineDetectsAContainer() throws {
        let machine = try debian()
        let result = try runNspawn(["-D", machine.path, "-P", "-q", "/bin/sh", "-c", "systemd-detect-virt; systemd-detect-virt --container"])
        #expect(result.stdout == "container-other\ncontainer-other\n", "\(result.stderr)")
        // SYSTEMD_NSPAWN_CONTAINER_SERVICE names the container, as with systemd-nspawn.
        let named = try runNspawn(
            ["-D", machine.path, "-P", "-q", "/bin/sh", "-c", "systemd-detect-virt; cat /run/host/container-manager; echo $container"],
            environment: ["SYSTEMD_NSPAWN_CONTAINER_SERVICE": "systemd-nspawn"])
        #expect(named.stdout == "systemd-nspawn\nsystemd-nspawn\nsystemd-nspawn\n", "\(named.stderr)")
    }

    @Test func rebootInsideBootsAgainInTheSameProcess() throws {
        let machine = try debian()
        let run = try BootRun(["-D", machine.path, "-b", "--console=read-only"], in: machine.directory)
        #expect(run.waitFor("multi-user.target"))
        // SIGINT to systemd is ctrl-alt-del: a reboot.
        let pid1 = try #require(run.machinePID1)
        kill(pid1, SIGINT)
        #expect(run.waitFor("Welcome to", count: 2), "\(run.transcript.suffix(2000))")
        #expect(run.waitFor("multi-user.target", count: 2))
        kill(run.pid, SIGTERM)
        #expect(run.finish(timeout: 30) == 0)
        #expect(run.stderr.contains("is being rebooted"))
    }

    @Test func rebootWithKeepUnitExits133() throws {
        let machine = try debian()
        let run = try BootRun(["-D", machine.path, "-b", "--keep-unit", "--console=read-only"], in: machine.directory)
        #expect(run.waitFor("multi-user.target"))
        let pid1 = try #require(run.machinePID1)
        kill(pid1, SIGINT)
        #expect(run.finish(timeout: 30) == 133)
    }

    @Test func bootTestReportsARunningSystem() throws {
        let machine = try debian()
        let result = try runNspawn(["-D", machine.path, "--boot-test", "--boot-test-timeout=90"], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("Boot test of \(machine.name): running, up in "))
        #expect(HostState.capture().cgroups.isEmpty)
    }

    @Test func bootTestNamesTheFailedUnits() throws {
        let machine = try debian { try $0.addService("broken.service", "[Service]\nType=oneshot\nExecStart=/bin/false") }
        let result = try runNspawn(["-D", machine.path, "--boot-test"], timeout: 120)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("degraded"))
        #expect(result.stderr.contains("failed units: broken.service"))
    }

    @Test func bootTestTimesOut() throws {
        let machine = try debian {
            try $0.addService("slow.service", "[Service]\nType=oneshot\nExecStart=/bin/sleep 60")
        }
        let started = Date()
        let result = try runNspawn(["-D", machine.path, "--boot-test", "--boot-test-timeout=3"], timeout: 120)
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("not up after 3 s"))
        #expect(Date().timeIntervalSince(started) < 60)
    }

    /// The boot test asks systemctl in the machine through the event loop: a systemctl that hangs
    /// does not keep swift-nspawn from hearing SIGTERM (the old synchronous calls held it 20 s).
    @Test func aHangingSystemctlDoesNotBlockTheSupervisor() throws {
        let machine = try TestMachine {
            let initPath = $0.appendingPathComponent("usr/lib/systemd/systemd")
            try FileManager.default.createDirectory(at: initPath.deletingLastPathComponent(), withIntermediateDirectories: true)
            try "#!/bin/sh\nexec notify-probe --sleep 300 READY=1\n".write(to: initPath, atomically: false, encoding: .utf8)
            try "#!/bin/sh\nexec sleep 60\n".write(to: $0.appendingPathComponent("bin/systemctl"), atomically: false, encoding: .utf8)
            for path in [initPath.path, $0.appendingPathComponent("bin/systemctl").path] { chmod(path, 0o755) }
        }
        try machine.installFixture("notify-probe")
        let run = try BackgroundRun(["-D", machine.path, "--boot-test", "-q"])
        // systemctl (the sleep) runs once the machine's cgroup holds PID 1, the entering process and it.
        // machine-NAME on a host without systemd, machine-NAME.scope/payload on one with it.
        var procs: String {
            let cgroup = HostState.capture().cgroups.first { $0.hasSuffix("machine-\(machine.name)") || $0.hasSuffix("machine-\(machine.name).scope/payload") }
            return "\(HostState.cgroupRoot)/\(cgroup ?? "none")/cgroup.procs"
        }
        #expect(run.waitUntil { ((try? String(contentsOfFile: procs, encoding: .utf8)) ?? "").split(separator: "\n").count >= 3 })
        let stopped = Date()
        kill(run.pid, SIGTERM)
        usleep(300_000)
        kill(run.pid, SIGTERM)
        let (status, stderr) = run.finish()
        #expect(Date().timeIntervalSince(stopped) < 5, "SIGTERM waited for systemctl")
        #expect(status == 4, "\(status) \(stderr)")
        #expect(HostState.capture().cgroups.isEmpty)
    }

    @Test func bootRefusesATreeWithoutOSRelease() throws {
        let machine = try TestMachine { try FileManager.default.removeItem(at: $0.appendingPathComponent("etc/os-release")) }
        let result = try runNspawn(["-D", machine.path, "-b"])
        #expect(result.status == 1)
        #expect(result.stderrLines == ["Directory \(machine.path) doesn't look like an OS root directory (os-release file is missing). Refusing."])
    }

    @Test func bootSearchesInitInSystemdsOrder() throws {
        let machine = try TestMachine {
            let fake = $0.appendingPathComponent("usr/lib/systemd/systemd")
            try FileManager.default.createDirectory(at: fake.deletingLastPathComponent(), withIntermediateDirectories: true)
            try "#!/bin/sh\necho \"init $0 $* pid $$\"\n".write(to: fake, atomically: false, encoding: .utf8)
            chmod(fake.path, 0o755)
        }
        let result = try machine.run(["-b"], ["systemd.unit=test.target"])
        #expect(result.stdout == "init /usr/lib/systemd/systemd systemd.unit=test.target pid 1\n")
    }
}
