#if canImport(Glibc)
    import Glibc
#endif
import SystemPackage
import Testing
@testable import NspawnCore

/// The machine's cgroup and its PID 1's own setup, against a recording kernel: the calls in order.
@Suite struct MachineCgroupTests {
    private let path = "/cg/machine-web"

    @Test func aNewCgroupIsLimitedAndGivenToTheMachinesRootBeforeAnythingLivesInIt() throws {
        let kernel = RecordingKernel(existing: ["/cg"])
        let cgroup = try MachineCgroup.create(at: path, machine: "web", owner: 0x1234_0000, kernel: kernel)
        let owner = "\(0x1234_0000):\(0x1234_0000)"
        #expect(
            kernel.calls == [
                "mkdir(/cg/machine-web, 755)", "open(/cg/machine-web)", "open(/cg/machine-web/cgroup.max.depth)",
                "write(/cg/machine-web/cgroup.max.depth, \"63\")",
                "chown(/cg/machine-web/., \(owner))", "chown(/cg/machine-web/cgroup.procs, \(owner))",
                "chown(/cg/machine-web/cgroup.subtree_control, \(owner))", "chown(/cg/machine-web/cgroup.threads, \(owner))",
            ])
        try cgroup.attachDeviceFilter(.closed, required: true)
        #expect(kernel.calls.last == "bpf(BPF_PROG_ATTACH, /cg/machine-web, \(DeviceFilter.closed.program.count) instructions)")
    }

    @Test func aRefusedDeviceFilterFailsTheStartUnlessInsideAMachine() throws {
        let kernel = RecordingKernel(existing: ["/cg"])
        kernel.failure = { $0.hasPrefix("bpf(") ? .notPermitted : nil }
        let cgroup = try MachineCgroup.create(at: path, machine: "web", owner: 0, kernel: kernel)
        #expect(throws: SyscallError.self) { try cgroup.attachDeviceFilter(.closed, required: true) }
        // Inside a machine the filter around us covers us: go on without one.
        try cgroup.attachDeviceFilter(.closed, required: false)
    }

    @Test func aLeftoverOfAKilledRunIsReusedOnlyWhenEmpty() throws {
        let kernel = RecordingKernel(existing: ["/cg", path, "\(path)/guest"])
        kernel.failure = { [path] line in line == "mkdir(\(path), 755)" && kernel.existing.contains(path) ? .fileExists : nil }
        kernel.contents["\(path)/cgroup.events"] = Array("populated 1\n".utf8)
        #expect(throws: UserError("Machine 'web' already exists: its cgroup \(path) is in use.")) {
            try MachineCgroup.create(at: path, machine: "web", owner: 0, kernel: kernel)
        }
        kernel.contents["\(path)/cgroup.events"] = Array("populated 0\n".utf8)
        _ = try MachineCgroup.create(at: path, machine: "web", owner: 0, kernel: kernel)
        // Its children first, then itself, then made anew.
        let guest = try #require(kernel.index("rmdir(\(path)/guest)"))
        #expect(kernel.calls[guest + 1] == "rmdir(\(path))" && kernel.calls[guest + 2] == "mkdir(\(path), 755)", "\(kernel.calls)")
    }

    @Test func removingKillsWhatIsLeftWaitsAndRemovesTheSubtree() throws {
        let kernel = RecordingKernel(existing: ["/cg"])
        let cgroup = try MachineCgroup.create(at: path, machine: "web", owner: 0, kernel: kernel)
        kernel.existing.formUnion(["\(path)/init.scope", "\(path)/system.slice", "\(path)/system.slice/x.service"])
        kernel.contents["\(path)/cgroup.events"] = Array("populated 1\n".utf8)
        kernel.afterWrite = { [path, unowned kernel] file in
            if file == "\(path)/cgroup.kill" { kernel.contents["\(path)/cgroup.events"] = Array("populated 0\n".utf8) }
        }
        let before = kernel.calls.count
        cgroup.remove()
        let calls = Array(kernel.calls[before...])
        #expect(calls.contains("write(\(path)/cgroup.kill, \"1\")"))
        let removals = calls.filter { $0.hasPrefix("rmdir(") }
        // The one rmdir that does for an empty cgroup is refused first.
        #expect(
            removals == [
                "rmdir(\(path))", "rmdir(\(path)/init.scope)", "rmdir(\(path)/system.slice/x.service)", "rmdir(\(path)/system.slice)", "rmdir(\(path))",
            ], "\(calls)")
        cgroup.remove()
        #expect(kernel.calls.count == before + calls.count, "removed twice")
    }

    @Test func anEmptyCgroupGoesWithOneRmdir() throws {
        let kernel = RecordingKernel(existing: ["/cg"])
        let cgroup = try MachineCgroup.create(at: path, machine: "web", owner: 0, kernel: kernel)
        let before = kernel.calls.count
        cgroup.remove()
        #expect(Array(kernel.calls[before...]) == ["rmdir(\(path))"])
    }

    @Test func settingsOfAControllerWeDoNotHaveAreSkippedNotFailed() throws {
        let kernel = RecordingKernel(existing: ["/cg", "\(path)/memory.max"])
        let cgroup = try MachineCgroup.create(at: path, machine: "web", owner: 0, kernel: kernel)
        try cgroup.apply([.memoryMax(1 << 20), .tasksMax(10)], strict: false)
        #expect(kernel.calls.contains("write(\(path)/memory.max, \"1048576\")"))
        #expect(!kernel.calls.contains { $0.contains("pids.max") })
    }
}

@Suite struct InnerChildTests {
    private func prepared(_ args: [String]) throws -> (RecordingKernel, [OwnedFD]) {
        let plan = try PlanFixture.plan(args)
        let kernel = RecordingKernel(existing: [])
        try InnerChild.atBirth(plan, kernel: kernel)
        let mounts = try InnerChild.prepare(plan, kernel: kernel)
        return (kernel, mounts)
    }

    @Test func pid1NamesItsNamespacesAtBirthThenBecomesTheMachinesRootAndMakesItsAPIFileSystems() throws {
        let (kernel, mounts) = try prepared([])
        #expect(
            kernel.calls == [
                "unshare(\(NamespaceSet([.mount, .uts, .ipc]).rawValue))", "unshare(\(NamespaceSet.network.rawValue))", "sethostname(web)",
                "ioctl(SIOCSIFFLAGS, lo, IFF_UP)",
                "setresgid(0) setgroups(0) setresuid(0)", "unshare(\(NamespaceSet.cgroup.rawValue))", "fsmount(proc: ; nosuid|nodev|noexec)",
                "fsmount(sysfs: ; ro|nosuid|nodev|noexec)", "fsmount(cgroup2: ; nosuid|nodev|noexec)", "fsmount(mqueue: ; nosuid|nodev|noexec)",
            ])
        #expect(mounts.map(kernel.label) == ["proc", "sysfs", "cgroup2", "mqueue"])
    }

    @Test func noNestedUserNamespacesIsWrittenIntoTheMachinesOwnLimit() throws {
        let (kernel, _) = try prepared(["--nested-user-namespaces=no", "--no-private-network"])
        #expect(kernel.calls[3] == "open(/proc/sys/user/max_user_namespaces)" && kernel.calls[4] == "write(/proc/sys/user/max_user_namespaces, \"0\")")
        #expect(!kernel.calls.contains { $0.hasPrefix("ioctl(SIOCSIFFLAGS") } && !kernel.calls.contains { $0.hasPrefix("fsmount(sysfs") })
    }

    @Test func withoutAUserNamespacePID1StaysTheHostsRoot() throws {
        let (kernel, _) = try prepared(["--private-users=no"])
        #expect(!kernel.calls.contains { $0.hasPrefix("setres") } && kernel.calls.contains("unshare(\(NamespaceSet.cgroup.rawValue))"))
    }
}

@Suite struct ProcessSettingsTests {
    @Test func theSupervisorSetsPID1sLimitsAsTheHostsRoot() throws {
        var settings = ProcessSettings()
        settings.oomScoreAdjust = -500
        settings.resourceLimits = [ResourceLimit(resource: 7, soft: 512, hard: 4096)]
        settings.cpuAffinity = [0, 3]
        let kernel = RecordingKernel(existing: [])
        try settings.apply(to: 42, kernel: kernel)
        #expect(kernel.calls == ["prlimit(42, 7, 512, 4096)", "sched_setaffinity(42, 0,3)"])
        // The OOM score: the supervisor's own for the moment PID 1 is born, then its own again.
        let oom = RecordingKernel(existing: [])
        oom.contents["/proc/self/oom_score_adj"] = Array("0\n".utf8)
        let born = try settings.bornWithOOMScoreAdjust(kernel: oom) { oom.calls.last }
        #expect(born == "write(/proc/self/oom_score_adj, \"-500\")")
        #expect(oom.calls.last == "write(/proc/self/oom_score_adj, \"0\")")
        let none = RecordingKernel(existing: [])
        try ProcessSettings().apply(to: 42, kernel: none)
        #expect(none.calls.isEmpty)
    }
}

@Suite struct ThreadCheckTests {
    @Test func aProcessWithThreadsIsRefusedBeforeItClones() {
        // The test runner has threads of its own (its executor's); swift-nspawn never does.
        #expect(throws: UserError.self) { try ThreadCheck.requireSingleThreaded(before: "The outer child") }
    }
}

@Suite struct BackgroundPriorityTests {
    private func nice() -> Int32 { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }

    /// Only root may lower a nice value again, as the supervisor does after.
    @Test(.enabled(if: geteuid() == 0)) func theBodyRunsAtNice19AndTheOwnNiceComesBack() {
        let own = nice()
        #expect(BackgroundPriority.run { nice() } == 19)
        #expect(nice() == own)
    }
}
