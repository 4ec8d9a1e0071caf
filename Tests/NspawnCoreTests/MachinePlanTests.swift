import CCap
import Testing
@testable import NspawnCore

/// A host, a tree and a range to plan against: no system call, no root.
enum PlanFixture {
    static let image = MachineImage(path: "/var/lib/machines/web", name: "web")
    static let range = UIDRange(base: 0x1234_0000)
    static let randomID = MachineID(bytes: Array(0..<16))

    /// A host without systemd (like the build machine): hybrid cgroups, run from the root cgroup, no terminal.
    static var host: HostFacts {
        var host = HostFacts()
        host.cgroupHierarchy = "/sys/fs/cgroup/unified"
        host.ownCgroup = "/"
        host.osRelease = "/etc/os-release"
        host.term = "xterm"
        host.heldCapabilities = CapabilitySet.nspawnDefault.union(CapabilitySet([Int32(CAP_NET_ADMIN)]))
        return host
    }

    static var systemdHost: HostFacts {
        var host = host
        host.systemd = true
        host.cgroupHierarchy = "/sys/fs/cgroup"
        host.ownCgroup = "/system.slice/build.service"
        return host
    }

    static func configuration(_ args: [String]) throws -> Configuration {
        guard case .run(let c) = CommandLineParser.parse(args) else { throw UserError("bad arguments: \(args)") }
        return c
    }

    /// The plan for these arguments, with the range the launcher would lock for them.
    static func plan(_ args: [String], host: HostFacts = host, treeMachineID: MachineID? = nil) throws -> MachinePlan {
        let c = try configuration(args)
        let idRange: UIDRange?
        switch c.userNamespace {
        case .no: idRange = nil
        case .identity: idRange = UIDRange(base: 0)
        case .fixed(let fixed): idRange = fixed
        case .pick, .fromTree: idRange = UIDRange(base: range.base, count: MachinePlan.pickedRangeSize(c))
        }
        return try MachinePlan(configuration: c, host: host, image: image, treeMachineID: treeMachineID, idRange: idRange, randomID: randomID)
    }
}

@Suite struct MachinePlanTests {
    @Test func theDefaultsAreTheSafeOnes() throws {
        let plan = try PlanFixture.plan([])
        #expect(plan.namespaces == [.mount, .pid, .uts, .ipc, .user, .network])
        #expect(plan.idRange == PlanFixture.range)
        #expect(plan.nestedUserNamespaces && plan.privateNetwork)
        #expect(plan.mounts.root.idmap == .required && plan.mounts.copiedIntoUserNamespace)
        #expect(plan.payload.capabilities == .standard(privateNetwork: true))
        #expect(plan.payload.seccomp == (try SeccompPolicy(capabilities: CapabilityPolicy.standard(privateNetwork: true).bounding)))
        #expect(plan.console == .readOnly && !plan.quiet)
        #expect(plan.hostname == "web" && plan.machineID == PlanFixture.randomID)
        #expect(plan.killSignal == nil && !plan.keepUnit && plan.warnings.isEmpty)
        #expect(plan.payload.term == "xterm")
    }

    // MARK: Namespaces and IDs

    @Test func namespacesFollowTheOptions() throws {
        let cases: [([String], NamespaceSet)] = [
            (["--private-users=no"], [.mount, .pid, .uts, .ipc, .network]),
            (["--no-private-network"], [.mount, .pid, .uts, .ipc, .user]),
            (["--private-users=no", "--no-private-network"], [.mount, .pid, .uts, .ipc]),
        ]
        for (args, expected) in cases { #expect(try PlanFixture.plan(args).namespaces == expected, "\(args)") }
    }

    @Test func namespacesAreNamedAsProcNamesThem() {
        #expect(NamespaceSet.network.names == "net" && NamespaceSet.mount.names == "mnt")
        #expect(NamespaceSet([.cgroup, .network]).names == "cgroup+net" && NamespaceSet().names == "")
    }

    @Test func pid1IsBornInItsUserAndPIDNamespacesAndMakesTheOthersItself() throws {
        let plain = try PlanFixture.plan([])
        #expect(plain.namespacesAtClone == [.pid, .user] && plain.namespacesMadeByPID1 == [.mount, .uts, .ipc, .network])
        // Links are moved into it by the supervisor before PID 1 goes on: it must exist at the clone.
        let linked = try PlanFixture.plan(["-n"])
        #expect(linked.namespacesAtClone == [.pid, .user, .network] && linked.namespacesMadeByPID1 == [.mount, .uts, .ipc])
        let shared = try PlanFixture.plan(["--no-private-network"])
        #expect(shared.namespacesAtClone == [.pid, .user] && shared.namespacesMadeByPID1 == [.mount, .uts, .ipc])
        let hostUsers = try PlanFixture.plan(["--private-users=no"])
        #expect(hostUsers.namespacesAtClone == [.pid] && hostUsers.namespacesMadeByPID1 == [.mount, .uts, .ipc, .network])
        for plan in [plain, linked, shared, hostUsers] {
            #expect(plan.namespacesAtClone.union(plan.namespacesMadeByPID1) == plan.namespaces)
            #expect(plan.namespacesAtClone.intersection(plan.namespacesMadeByPID1).isEmpty)
        }
    }

    @Test func aNestingMachineGetsSixteenSlotsOfIDs() throws {
        let c = try PlanFixture.configuration(["--nesting=yes"])
        #expect(MachinePlan.pickedRangeSize(c) == 16 * 65536)
        #expect(MachinePlan.pickedRangeSize(try PlanFixture.configuration([])) == 65536)
        #expect(try PlanFixture.plan(["--nesting=yes"]).idRange?.mapLine == "0 \(PlanFixture.range.base) 1048576\n")
    }

    @Test func nestingNeedsAUserNamespace() {
        func refusal(_ args: [String]) -> String? {
            if case .exit(let text, 1) = CommandLineParser.parse(args) { text } else { nil }
        }
        #expect(refusal(["--nesting=yes", "--private-users=no"])?.hasPrefix("--nesting=yes needs a user namespace for the machine") == true)
        #expect(refusal(["--nesting=yes", "--nested-user-namespaces=no"]) == "--nesting=yes and --nested-user-namespaces=no contradict each other.")
    }

    // MARK: The cgroup

    @Test func withoutSystemdTheCgroupIsOurOwnBelowOurs() throws {
        let cgroup = try PlanFixture.plan([]).cgroup
        #expect(cgroup.backend == .direct(path: "/machine-web"))
        #expect(cgroup.hierarchy == "/sys/fs/cgroup/unified" && cgroup.owner == PlanFixture.range.base)
        #expect(cgroup.registration == .no && !cgroup.needsBus && cgroup.propertiesOnCgroup)
        var nested = PlanFixture.host
        nested.ownCgroup = "/ci/job"
        #expect(try PlanFixture.plan([], host: nested).cgroup.backend == .direct(path: "/ci/job/machine-web"))
    }

    @Test func onSystemdTheMachineGetsAScopeAndIsRegistered() throws {
        let cgroup = try PlanFixture.plan(["-S", "test.slice", "--property=MemoryMax=1M"], host: PlanFixture.systemdHost).cgroup
        #expect(cgroup.backend == .scope(unit: "machine-web.scope", slice: "test.slice", description: "Container web"))
        #expect(cgroup.registration == .ifAvailable && cgroup.needsBus && !cgroup.propertiesOnCgroup)
        #expect(cgroup.properties == [.memoryMax(1 << 20)])
        #expect(try PlanFixture.plan(["--register=yes"], host: PlanFixture.systemdHost).cgroup.registration == .required)
        #expect(!(try PlanFixture.plan(["--register=no"], host: PlanFixture.systemdHost).cgroup.needsBus) == false)
    }

    @Test func keepUnitUsesOurOwnUnitAndNeverASessionScope() throws {
        let unit = try PlanFixture.plan(["--keep-unit"], host: PlanFixture.systemdHost).cgroup
        #expect(unit.backend == .ownUnit(path: "/system.slice/build.service") && unit.registration == .ifAvailable && unit.propertiesOnCgroup)
        var session = PlanFixture.systemdHost
        session.ownCgroup = "/user.slice/user-1000.slice/session-2.scope"
        #expect(try PlanFixture.plan(["--keep-unit"], host: session).cgroup.registration == .no)
        #expect(throws: UserError.self) { try PlanFixture.plan(["--keep-unit", "--register=yes"], host: session) }
        #expect(!(try PlanFixture.plan(["--keep-unit", "--register=no"], host: PlanFixture.systemdHost)).cgroup.needsBus)
    }

    /// swift-nspawn-runc --systemd-cgroup: runc's "slice:prefix:name", a scope that outlives create,
    /// never registered, its resources strict.
    @Test func theRuntimesSystemdDriverAsksForAScope() throws {
        func cgroup(_ path: String?, host: HostFacts = PlanFixture.systemdHost) throws -> CgroupPlan {
            try CgroupPlan(
                host: host, machine: "c1", owner: 0, keepUnit: false, register: .no, slice: "machine.slice", properties: [], path: path, systemdDriver: true)
        }
        let scope = try cgroup("system.slice:ctr:c1")
        #expect(scope.backend == .scope(unit: "ctr-c1.scope", slice: "system.slice", description: "Container c1", outlivesUs: true))
        #expect(scope.registration == .no && scope.strictProperties && scope.needsBus)
        #expect(try cgroup(":crio:c1").backend == .scope(unit: "crio-c1.scope", slice: "system.slice", description: "Container c1", outlivesUs: true))
        #expect(try cgroup("-::c1").backend == .scope(unit: "c1.scope", slice: "-.slice", description: "Container c1", outlivesUs: true))
        #expect(try cgroup(nil).backend == .scope(unit: "runc-c1.scope", slice: "system.slice", description: "Container c1", outlivesUs: true))
        for bad in ["/default/c1", "a:b", "system.slice:ctr:", "system.slice:ctr:x.slice", "system:ctr:c1"] {
            #expect(throws: UserError.self, "\(bad)") { try cgroup(bad) }
        }
        #expect(throws: UserError.self) { try cgroup("system.slice:ctr:c1", host: PlanFixture.host) }
    }

    @Test func registerYesNeedsSystemd() {
        #expect(throws: UserError.self) { try PlanFixture.plan(["--register=yes"]) }
    }

    @Test func noCgroup2IsRefusedBeforeAnythingStarts() {
        var host = PlanFixture.host
        host.cgroupHierarchy = nil
        #expect(throws: UserError.self) { try PlanFixture.plan([], host: host) }
    }

    // MARK: Identity, console, payload

    @Test func theTreesMachineIDWinsOverUUID() throws {
        let tree = MachineID(bytes: Array(repeating: 7, count: 16))
        let given = "--uuid=0f0e0d0c-0b0a-0908-0706-050403020100"
        #expect(try PlanFixture.plan([given], treeMachineID: tree).machineID == tree)
        #expect(try PlanFixture.plan([given]).machineID.uuidString == "0f0e0d0c-0b0a-0908-0706-050403020100")
        #expect(try PlanFixture.plan([given]).payload.machineID == (try PlanFixture.plan([given])).machineID)
    }

    @Test func bootStopsWithSystemdsSignalAndBootTestOnlyWatches() throws {
        let boot = try PlanFixture.plan(["-b"])
        #expect(boot.payload.boot && boot.killSignal == SignalName.parse("SIGRTMIN+3"))
        var terminal = PlanFixture.host
        terminal.stdinIsTerminal = true
        terminal.stdoutIsTerminal = true
        #expect(try PlanFixture.plan(["-b"], host: terminal).console == .interactive)
        let test = try PlanFixture.plan(["--boot-test"], host: terminal)
        #expect(test.console == .readOnly && test.bootTestTimeout == 120 && test.payload.boot)
    }

    @Test func pipeIsQuietAndPassesTERMOnlyIfSet() throws {
        let pipe = try PlanFixture.plan(["-P"])
        #expect(pipe.console == .pipe && pipe.quiet && pipe.payload.term == "xterm")
        var bare = PlanFixture.host
        bare.term = nil
        #expect(try PlanFixture.plan(["-P"], host: bare).payload.term == nil)
        #expect(try PlanFixture.plan([], host: bare).payload.term == "vt220")
    }

    @Test func withoutAUserNamespaceTheMachineGetsOnlyWhatWeHold() throws {
        var host = PlanFixture.host
        host.heldCapabilities = CapabilitySet.nspawnDefault
        let plan = try PlanFixture.plan(["--private-users=no"], host: host)
        #expect(plan.payload.capabilities.bounding == CapabilitySet.nspawnDefault)
        #expect(plan.warnings == ["swift-nspawn itself lacks CAP_NET_ADMIN; the machine does without."])
        #expect(try PlanFixture.plan([], host: host).payload.capabilities.bounding.contains(number: Int32(CAP_NET_ADMIN)))
    }

    @Test func seccompFollowsTheBoundingSetAndTheFilters() throws {
        let plan = try PlanFixture.plan(["--drop-capability=CAP_SYS_BOOT", "--system-call-filter=~uname"])
        let policy = try #require(plan.payload.seccomp)
        #expect(!policy.allowed().contains("reboot") && !policy.allowed().contains("uname"))
    }

    @Test func thePayloadIsWhatTheCommandLineSays() throws {
        let plan = try PlanFixture.plan(["-u", "app", "--chdir=/srv", "-E", "A=1", "-a", "/bin/app", "x"])
        #expect(plan.payload.user == "app" && plan.payload.workingDirectory == "/srv" && plan.payload.environment == ["A=1"])
        #expect(plan.payload.asPID2 && plan.payload.command == ["/bin/app", "x"] && !plan.payload.boot)
        #expect(try PlanFixture.plan(["--hostname=front"]).hostname == "front")
    }
}

@Suite struct JournalLinkTests {
    private let id = MachineID(bytes: Array(repeating: 0xab, count: 16))
    private var path: String { "/var/log/journal/\(id.hexString)" }

    private func decide(_ mode: LinkJournalMode, _ facts: JournalFacts, machineID: MachineID?? = nil) throws -> JournalLink? {
        try JournalLink.decide(mode, machineID: machineID ?? id, treePath: "/m", facts: facts)
    }

    @Test func theModesDecideAsSystemdNspawns() throws {
        var persistent = JournalFacts()
        persistent.hostJournal = true
        #expect(try decide(.no, persistent) == nil)
        #expect(try decide(.auto, persistent) == nil, "auto binds only a directory the host has")
        var hostHasIt = persistent
        hostHasIt.hostEntry = .directory
        #expect(try decide(.auto, hostHasIt) == JournalLink(action: .bindHostDirectory, path: path, makeHostDirectory: false, makeTreeDirectory: true))
        #expect(try decide(.host, persistent) == JournalLink(action: .bindHostDirectory, path: path, makeHostDirectory: true, makeTreeDirectory: true))
        #expect(try decide(.tryHost, JournalFacts()) == nil, "no persistent journal on the host")
        #expect(throws: UserError.self) { try decide(.host, JournalFacts()) }
        var treeHasJournal = persistent
        treeHasJournal.treeJournal = true
        #expect(try decide(.tryGuest, treeHasJournal) == JournalLink(action: .linkToTree, path: path, makeHostDirectory: false, makeTreeDirectory: true))
        #expect(try decide(.tryGuest, persistent) == nil, "the tree keeps no journal")
        #expect(try decide(.guest, persistent)?.makeTreeDirectory == true)
        var linked = treeHasJournal
        linked.hostEntry = .symlink(to: "/m\(path)")
        #expect(try decide(.guest, linked) != nil)
        linked.hostEntry = .symlink(to: "/elsewhere")
        #expect(try decide(.tryGuest, linked) == nil)
        #expect(throws: UserError.self) { try decide(.guest, linked) }
        #expect(throws: UserError.self) { try decide(.host, persistent, machineID: .some(nil)) }
        #expect(try decide(.tryGuest, treeHasJournal, machineID: .some(nil)) == nil)
    }

    @Test func hostModeBindsTheHostsDirectoryMappedIntoTheMachine() throws {
        let c = try PlanFixture.configuration([])
        let link = JournalLink(action: .bindHostDirectory, path: path, makeHostDirectory: false, makeTreeDirectory: false)
        let plan = try MachinePlan(
            configuration: c, host: PlanFixture.host, image: PlanFixture.image, treeMachineID: id, idRange: PlanFixture.range,
            randomID: PlanFixture.randomID, journal: link)
        #expect(
            plan.mounts.guestMounts.last == .bind(BindOperation(source: path, path: path, attributes: [.noDev], recursive: false, mapping: .machine(.required)))
        )
    }
}

@Suite struct TimezoneSetupTests {
    private let berlin = "../usr/share/zoneinfo/Europe/Berlin"
    private let utc = "/usr/share/zoneinfo/Etc/UTC"

    private func decide(_ mode: TimezoneMode, host: PathEntry, tree: PathEntry, zone: Bool = true, readOnly: Bool = false)
        -> EtcFileSetup?
    {
        TimezoneSetup.decide(mode, facts: TimezoneFacts(host: host, hostFileUsable: host != .missing, tree: tree, treeHasHostZone: zone), readOnly: readOnly)
            .setup
    }

    @Test func autoMountsTheHostsZoneAndNeverWritesIntoTheTree() {
        #expect(decide(.auto, host: .symlink(to: berlin), tree: .symlink(to: utc)) == .mount(.symlink(to: berlin), makeMountPoint: false))
        #expect(decide(.auto, host: .symlink(to: berlin), tree: .file, zone: false) == .mount(.hostFile("/etc/localtime"), makeMountPoint: false))
        #expect(decide(.auto, host: .file, tree: .symlink(to: utc)) == .mount(.hostFile("/etc/localtime"), makeMountPoint: false))
        #expect(decide(.auto, host: .symlink(to: utc), tree: .symlink(to: "../usr/share/zoneinfo/Etc/UTC")) == nil, "already the host's zone")
        #expect(decide(.auto, host: .symlink(to: berlin), tree: .missing) == nil, "no mount point is made for auto")
        #expect(decide(.auto, host: .missing, tree: .file) == nil, "systemd-nspawn deletes; swift-nspawn leaves the tree's")
        #expect(decide(.auto, host: .file, tree: .directory) == nil)
        #expect(decide(.auto, host: .file, tree: .file, readOnly: true) == .mount(.hostFile("/etc/localtime"), makeMountPoint: false))
    }

    @Test func theOtherModesDoWhatSystemdNspawns() {
        #expect(decide(.off, host: .file, tree: .file) == nil)
        #expect(decide(.bind, host: .symlink(to: berlin), tree: .missing) == .mount(.hostFile("/etc/localtime"), makeMountPoint: true))
        #expect(decide(.bind, host: .file, tree: .missing, readOnly: true) == nil)
        #expect(decide(.symlink, host: .symlink(to: berlin), tree: .file) == .write(.symlink(to: berlin)))
        #expect(
            decide(.symlink, host: .symlink(to: berlin), tree: .file, zone: false) == .mount(.hostFile("/etc/localtime"), makeMountPoint: false),
            "bound where the tree lacks the zone")
        #expect(decide(.symlink, host: .file, tree: .file) == nil, "the host's file names no zone")
        #expect(decide(.copy, host: .file, tree: .symlink(to: utc)) == .write(.copy("/etc/localtime")))
        #expect(decide(.copy, host: .missing, tree: .file) == nil)
        #expect(decide(.delete, host: .file, tree: .file) == .write(.delete))
        #expect(decide(.delete, host: .file, tree: .missing) == nil)
        let readOnly = TimezoneSetup.decide(.copy, facts: TimezoneFacts(host: .file, hostFileUsable: true, tree: .file), readOnly: true)
        #expect(readOnly.setup == nil && readOnly.note?.contains("read-only") == true)
        #expect(TimezoneFacts.zone("/usr/share/zoneinfo/") == nil)
        let noEtc = TimezoneSetup.decide(.bind, facts: TimezoneFacts(host: .file, tree: .missing, treeHasEtc: false), readOnly: false)
        #expect(noEtc.setup == nil && noEtc.note == "The tree has no /etc directory; not updating the machine's time zone.")
        #expect(decide(.bind, host: .file, tree: .directory) == nil)
        // A dangling host link (no tzdata on the host): nothing to mount or copy, and no failed start.
        let dangling = TimezoneFacts(host: .symlink(to: berlin), hostFileUsable: false, tree: .file, treeHasHostZone: false)
        #expect(TimezoneSetup.decide(.auto, facts: dangling, readOnly: false).setup == nil)
        #expect(TimezoneSetup.decide(.bind, facts: dangling, readOnly: false).note?.contains("no time zone file") == true)
        #expect(TimezoneSetup.decide(.copy, facts: dangling, readOnly: false).setup == nil)
        var withZone = dangling
        withZone.treeHasHostZone = true
        #expect(TimezoneSetup.decide(.auto, facts: withZone, readOnly: false).setup == .mount(.symlink(to: berlin), makeMountPoint: false))
        #expect(decide(.symlink, host: .symlink(to: berlin), tree: .symlink(to: berlin)) == nil, "already the host's zone")
        #expect(TimezoneSetup.decide(.delete, facts: TimezoneFacts(host: .file, tree: .file), readOnly: true).note?.contains("read-only") == true)
        #expect(decide(.auto, host: .symlink(to: "/elsewhere/zone"), tree: .file) == .mount(.hostFile("/etc/localtime"), makeMountPoint: false))
    }

    @Test func theMountComesAfterTheHostsOthers() throws {
        let plan = try MachinePlan(
            configuration: try PlanFixture.configuration([]), host: PlanFixture.host, image: PlanFixture.image, treeMachineID: nil,
            idRange: PlanFixture.range, randomID: PlanFixture.randomID, timezone: .mount(.hostFile("/etc/localtime"), makeMountPoint: false))
        #expect(plan.mounts.hostMounts.last == .etcFile("localtime", .hostFile("/etc/localtime"), makeMountPoint: false))
        let written = try MachinePlan(
            configuration: try PlanFixture.configuration([]), host: PlanFixture.host, image: PlanFixture.image, treeMachineID: nil,
            idRange: PlanFixture.range, randomID: PlanFixture.randomID, timezone: .write(.delete))
        #expect(!written.mounts.hostMounts.contains(.etcFile("localtime", .hostFile("/etc/localtime"), makeMountPoint: false)))
    }
}

@Suite struct PivotRootPlanTests {
    @Test func theTreeShowsAtOldAsTheRootIsShownAndTheRootIsFoundInTheTree() throws {
        let c = try PlanFixture.configuration(["--pivot-root=/deploy/a:/sysroot", "--read-only"])
        #expect(c.pivotRoot == PivotRoot(newRoot: "/deploy/a", oldRoot: "/sysroot"))
        #expect(try PlanFixture.configuration(["--pivot-root=/deploy/a:"]).pivotRoot == PivotRoot(newRoot: "/deploy/a"))
        let image = MachineImage(path: "/m/deploy/a", name: "m", directory: "/m", pivotRoot: "deploy/a")
        let plan = try MachinePlan(
            configuration: c, host: PlanFixture.host, image: image, treeMachineID: nil, idRange: PlanFixture.range, randomID: PlanFixture.randomID)
        #expect(plan.mounts.root.pivot == RootMount.Pivot(tree: "/m", relative: "deploy/a"))
        #expect(
            plan.mounts.guestMounts.first
                == .bind(
                    BindOperation(source: "/m", path: "/sysroot", attributes: [.readOnly, .noDev], recursive: false, mapping: .machine(plan.mounts.root.idmap)))
        )
    }
}

@Suite struct BoundUserTests {
    private let tester = BoundUser(name: "tester", hostUID: 1500, hostGID: 1501, home: "/home/tester", machineID: 60514)

    @Test func theRangeIsCutAroundEachBoundID() {
        let range = UIDRange(base: 0x10000)
        #expect(range.mapLines(binding: []) == range.mapLine)
        #expect(range.mapLines(binding: [(60514, 1500)]) == "0 65536 60514\n60514 1500 1\n60515 \(65536 + 60515) 5021\n")
        // A nesting range of 16 × 64K, and IDs beyond the range's end are never mapped.
        #expect(UIDRange(base: 0x10000, count: 0x100000).mapLines(binding: [(60514, 1500)]).hasSuffix("60515 \(65536 + 60515) \(0x100000 - 60515)\n"))
        #expect(UIDRange(base: 0x10000, count: 1000).mapLines(binding: [(60514, 1500)]) == "0 65536 1000\n")
        #expect(range.mapLines(binding: [(60515, 1600), (60514, 1500)]) == "0 65536 60514\n60514 1500 1\n60515 1600 1\n60516 \(65536 + 60516) 5020\n")
    }

    @Test func theRecordsAreSystemdNspawns() {
        #expect(tester.userRecord == #"{"userName":"tester","uid":60514,"gid":60514,"homeDirectory":"/run/host/home/tester","service":"io.systemd.NSpawn"}"#)
        #expect(tester.groupRecord == #"{"groupName":"tester","gid":60514,"service":"io.systemd.NSpawn"}"#)
        #expect(
            BoundUser.isValidName("a_b-1") && BoundUser.isValidName("john.doe") && !BoundUser.isValidName("1a") && !BoundUser.isValidName("a\"b")
                && !BoundUser.isValidName(""))
    }

    @Test func thePlanMapsTheUserAndBindsTheHome() throws {
        let plan = try MachinePlan(
            configuration: try PlanFixture.configuration(["--bind-user=tester"]), host: PlanFixture.host, image: PlanFixture.image, treeMachineID: nil,
            idRange: PlanFixture.range, randomID: PlanFixture.randomID, boundUsers: [tester])
        #expect(plan.boundUsers == [tester])
        #expect(
            plan.mounts.guestMounts.last
                == .bind(
                    BindOperation(source: "/home/tester", path: "/run/host/home/tester", attributes: [.noDev, .noSUID], recursive: false, mapping: .none)))
        #expect(throws: UserError.self) { try PlanFixture.configuration(["--bind-user=tester", "--private-users=no"]) }
        #expect(throws: UserError.self) { try PlanFixture.configuration(["--bind-user=a/b"]) }
        #expect(throws: UserError.self) { try PlanFixture.configuration(["--bind-user=x", "--bind-user=x"]) }
    }
}
