import Testing
@testable import NspawnCore

/// The mount table, as systemd-nspawn 252 builds it (reference nspawn-behaviour.md, "mount_all
/// table"), split into the host's mounts (locked in the machine) and the guest's (unmountable).
@Suite struct MountPlanTests {
    private func plan(_ args: [String] = [], console: ConsoleMode = .pipe) throws -> MountPlan {
        var host = PlanFixture.host
        if console != .pipe { host.stdoutIsTerminal = true }
        return try PlanFixture.plan(args + (console == .pipe ? ["-P"] : ["--console=\(console.rawValue)"]), host: host).mounts
    }

    private func index(_ operations: [MountOperation], _ match: (MountOperation) -> Bool) throws -> Int {
        let found = operations.firstIndex(where: match)
        return try #require(found)
    }

    @Test func theTmpfsMountsCarrySystemdNspawnsOptions() throws {
        let p = try plan()
        #expect(p.hostMounts.contains(.tmpfs(path: "/dev", options: "mode=0755,size=4m,nr_inodes=64k", attributes: [.noSUID], resolution: .noSymlinks)))
        #expect(p.hostMounts.contains(.tmpfs(path: "/dev/shm", options: "mode=01777", attributes: [.noSUID, .noDev], resolution: .noSymlinks)))
        #expect(
            p.hostMounts.contains(.tmpfs(path: "/run", options: "mode=0755,size=20%,nr_inodes=800k", attributes: [.noSUID, .noDev], resolution: .noSymlinks)))
        #expect(
            p.guestMounts.first == .tmpfs(path: "/tmp", options: "mode=01777,size=10%,nr_inodes=400k", attributes: [.noSUID, .noDev], resolution: .noSymlinks))
    }

    @Test func devIsBuiltBeforeWhatGoesInsideIt() throws {
        let ops = try plan().hostMounts
        let dev = try index(ops) { $0.path == "/dev" }
        let nodes = try index(ops) { if case .deviceNodes("/dev", _) = $0 { true } else { false } }
        let pts = try index(ops) { $0 == .devpts(path: "/dev/pts") }
        let mqueue = try index(ops) { if case .api(.mqueue, "/dev/mqueue", _) = $0 { true } else { false } }
        #expect(dev < nodes && nodes < pts && pts < mqueue)
    }

    @Test func procIsMountedThenLockedDownThenMasked() throws {
        let ops = try plan().hostMounts
        let proc = try index(ops) { if case .api(.proc, "/proc", _) = $0 { true } else { false } }
        let sys = try index(ops) { $0 == .rebind(path: "/proc/sys", attributes: .lockedDown, required: true) }
        let net = try index(ops) { if case .rebind("/proc/sys/net", let attributes, true) = $0 { !attributes.contains(.readOnly) } else { false } }
        #expect(proc < sys && sys < net)
        // systemd-nspawn's masks, and /proc/sched_debug, which leaks the host's tasks the same way.
        for entry in ["/proc/kcore", "/proc/kallsyms", "/proc/keys", "/proc/sysrq-trigger", "/proc/timer_list", "/proc/sched_debug"] {
            #expect(try index(ops) { $0 == .mask(path: entry) } > proc)
        }
        for entry in ["/proc/acpi", "/proc/apm", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/scsi"] {
            #expect(ops.contains(.rebind(path: entry, attributes: .lockedDown, required: false)))
        }
    }

    @Test func nestingLeavesProcFullyVisible() throws {
        let p = try plan(["--nesting=yes"])
        let procChildren = p.hostMounts.filter { ($0.path ?? "").hasPrefix("/proc/") }
        #expect(procChildren.isEmpty, "\(procChildren)")
        // /sys keeps its read-only sysfs: a nested machine mounts its own read-only too.
        #expect(p.hostMounts.contains { if case .api(.sysfs, "/sys", .lockedDown) = $0 { true } else { false } })
    }

    @Test func sharedNetworkKeepsProcSysNetReadOnlyAndBindsTheHostsSysfs() throws {
        let p = try plan(["--no-private-network"])
        #expect(!p.hostMounts.contains { $0.path == "/proc/sys/net" })
        #expect(p.hostMounts.contains(.hostBind(source: "/sys", path: "/sys", attributes: .lockedDown)))
        #expect(p.apiFilesystems == [.proc, .cgroup2, .mqueue])
    }

    @Test func privateNetworkGetsItsOwnSysfsWithCgroup2Inside() throws {
        let p = try plan()
        #expect(p.apiFilesystems == [.proc, .sysfs, .cgroup2, .mqueue])
        let sysfs = try index(p.hostMounts) { if case .api(.sysfs, "/sys", .lockedDown) = $0 { true } else { false } }
        let cgroup = try index(p.hostMounts) { if case .api(.cgroup2, "/sys/fs/cgroup", _) = $0 { true } else { false } }
        #expect(sysfs < cgroup)
    }

    @Test func consoleOnlyWithAPTY() throws {
        #expect(!(try plan(console: .pipe)).hostMounts.contains(.console(path: "/dev/console")))
        #expect(try plan(console: .readOnly).hostMounts.contains(.console(path: "/dev/console")))
    }

    @Test func theUsersMountsAreTheGuestsInDestinationOrderAfterTmp() throws {
        let p = try plan(["--bind=/a:/tmp/x:idmap", "--tmpfs=/var", "--bind-ro=/b:/opt:norbind", "--bind=/c:/srv:rootidmap"])
        #expect(
            p.guestMounts == [
                .tmpfs(path: "/tmp", options: "mode=01777,size=10%,nr_inodes=400k", attributes: [.noSUID, .noDev], resolution: .noSymlinks),
                .bind(BindOperation(source: "/b", path: "/opt", attributes: [.readOnly, .noDev], recursive: false, mapping: .none)),
                .bind(BindOperation(source: "/c", path: "/srv", attributes: [.noDev], recursive: true, mapping: .sourceOwnerAsRoot)),
                .bind(BindOperation(source: "/a", path: "/tmp/x", attributes: [.noDev], recursive: true, mapping: .machine(.required))),
                .tmpfs(path: "/var", options: "mode=0755", attributes: [.noSUID, .noDev], resolution: .inRoot),
            ])
        #expect(!p.hostMounts.contains { if case .bind = $0 { true } else { false } })
    }

    /// As systemd-nspawn: raw owners unless asked, so the machine's root is nobody special on the
    /// host's files; idmap follows the tree's policy, even where the tree itself is not mapped.
    @Test func bindsAreIDMappedOnlyWhenAsked() throws {
        func mapping(_ args: [String]) throws -> BindMapping? {
            for case .bind(let bind) in try plan(args).guestMounts { return bind.mapping }
            return nil
        }
        #expect(try mapping(["--bind=/a:/a"]) == BindMapping.none)
        #expect(try mapping(["--bind=/a:/a:idmap"]) == .machine(.required))
        #expect(try mapping(["-U", "--bind=/a:/a:idmap"]) == .machine(.preferred))
        #expect(try mapping(["--private-users-ownership=off", "--bind=/a:/a:idmap"]) == .machine(.required))
        #expect(try mapping(["--private-users=identity", "--bind=/a:/a:idmap"]) == BindMapping.none)
        #expect(try mapping(["--bind-ro=/a:/a:owneridmap"]) == .sourceOwnerAsTargetOwner)
    }

    @Test func anInaccessiblePathBelongsToTheLastGuestMountThatHoldsIt() throws {
        let p = try plan(["--bind=/a:/srv", "--bind=/b:/srv/data", "--inaccessible=/srv/data/x", "--inaccessible=/srv/y", "--inaccessible=/etc/z"])
        #expect(p.inaccessible == ["/srv/data/x", "/srv/y", "/etc/z"])
        #expect(p.inaccessibleLocation("/srv/data/x") == (2, "x"))
        #expect(p.inaccessibleLocation("/srv/y") == (1, "y"))
        #expect(p.inaccessibleLocation("/etc/z") == (nil, "etc/z"))
        #expect(p.inaccessibleLocation("/tmp/t") == (0, "t"))
    }

    @Test func withoutTheTmpfsSwitchTmpIsTheTrees() throws {
        var c = try PlanFixture.configuration([])
        c.switches.tmpfsTmp = false
        let plan = try MachinePlan(
            configuration: c, host: PlanFixture.host, image: PlanFixture.image, treeMachineID: nil, idRange: PlanFixture.range, randomID: PlanFixture.randomID)
        #expect(!plan.mounts.guestMounts.contains { $0.path == "/tmp" })
    }

    @Test func onlyAUserNamespaceMakesTheGuestsMountsStaged() throws {
        #expect(try plan().copiedIntoUserNamespace)
        #expect(!(try plan(["--private-users=no"])).copiedIntoUserNamespace)
    }

    @Test func hostInformationNamesTheManagerAndUUID() throws {
        #expect(
            try plan().hostMounts.contains(
                .hostInformation(
                    path: "/run/host",
                    files: ["container-manager": "swift-nspawn\n", "container-uuid": "00010203-0405-0607-0809-0a0b0c0d0e0f\n"],
                    osRelease: "/etc/os-release", notifySocket: "notify", credentials: [])))
    }

    @Test func theRootMountIsNodevAndIDMappedAsTheOptionsSay() throws {
        let cases: [([String], MountAttributes, IDMapping)] = [
            ([], [.noDev], .required),
            (["--read-only"], [.readOnly, .noDev], .required),
            (["--private-users-ownership=auto"], [.noDev], .preferred),
            (["-U"], [.noDev], .preferred),
            (["--private-users-ownership=off"], [.noDev], .none),
            (["--private-users=no"], [.noDev], .none),
            (["--private-users=identity"], [.noDev], .none),
            (["--private-users=yes"], [.noDev], .none),
        ]
        for (args, attributes, idmap) in cases {
            #expect(try plan(args).root == RootMount(path: PlanFixture.image.path, attributes: attributes, idmap: idmap), "\(args)")
        }
    }

    @Test func deviceNumbersFollowTheKernelsEncoding() {
        #expect(DeviceNode(name: "null", major: 1, minor: 3).deviceNumber == 0x103)
        #expect(DeviceNode(name: "big", major: 259, minor: 300).deviceNumber == (UInt64(259) << 8) | 0x2c | (UInt64(0x100) << 12))
    }
}
