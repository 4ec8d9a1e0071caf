import Testing
@testable import NspawnCore

@Suite struct MountPlanTests {
    private let id = MachineID(bytes: Array(0..<16))

    private func plan(_ args: [String] = [], console: ConsoleMode = .pipe) throws -> MountPlan {
        guard case .run(let c) = CommandLineParser.parse(args) else { throw UserError("bad arguments") }
        return MountPlan(configuration: c, machineID: id, console: console, hostOSRelease: "/etc/os-release")
    }

    private func index(_ plan: MountPlan, _ match: (MountOperation) -> Bool) throws -> Int {
        let found = plan.operations.firstIndex(where: match)
        return try #require(found)
    }

    @Test func devIsBuiltBeforeWhatGoesInsideIt() throws {
        let p = try plan()
        let dev = try index(p) { $0 == .tmpfs(path: "/dev", options: "mode=0755,size=4m,nr_inodes=64k", attributes: [.noSUID]) }
        let nodes = try index(p) { if case .deviceNodes("/dev", _) = $0 { true } else { false } }
        let pts = try index(p) { $0 == .devpts(path: "/dev/pts") }
        let mqueue = try index(p) { if case .api(.mqueue, "/dev/mqueue", _) = $0 { true } else { false } }
        #expect(dev < nodes && nodes < pts && pts < mqueue)
    }

    @Test func procIsMountedThenLockedDownThenMasked() throws {
        let p = try plan()
        let proc = try index(p) { if case .api(.proc, "/proc", _) = $0 { true } else { false } }
        let sys = try index(p) { $0 == .rebind(path: "/proc/sys", attributes: .lockedDown, required: true) }
        let net = try index(p) { if case .rebind("/proc/sys/net", let attributes, true) = $0 { !attributes.contains(.readOnly) } else { false } }
        #expect(proc < sys && sys < net)
        for entry in ["/proc/kcore", "/proc/kallsyms", "/proc/keys", "/proc/sysrq-trigger", "/proc/timer_list"] {
            #expect(try index(p) { $0 == .mask(path: entry) } > proc)
        }
        for entry in ["/proc/acpi", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/scsi"] {
            #expect(p.operations.contains(.rebind(path: entry, attributes: .lockedDown, required: false)))
        }
    }

    @Test func sharedNetworkKeepsProcSysNetReadOnlyAndBindsTheHostsSysfs() throws {
        let p = try plan(["--no-private-network"])
        #expect(!p.operations.contains { if case .rebind("/proc/sys/net", _, _) = $0 { true } else { false } })
        #expect(p.operations.contains(.hostBind(source: "/sys", path: "/sys", attributes: .lockedDown)))
        #expect(p.apiFilesystems == [.proc, .cgroup2, .mqueue])
    }

    @Test func privateNetworkGetsItsOwnSysfsWithCgroup2Inside() throws {
        let p = try plan()
        #expect(p.apiFilesystems == [.proc, .sysfs, .cgroup2, .mqueue])
        let sysfs = try index(p) { if case .api(.sysfs, "/sys", .lockedDown) = $0 { true } else { false } }
        let cgroup = try index(p) { if case .api(.cgroup2, "/sys/fs/cgroup", _) = $0 { true } else { false } }
        #expect(sysfs < cgroup)
    }

    @Test func consoleOnlyWithAPTY() throws {
        #expect(!(try plan(console: .pipe)).operations.contains(.console(path: "/dev/console")))
        #expect(try plan(console: .readOnly).operations.contains(.console(path: "/dev/console")))
    }

    @Test func customMountsComeAfterRunAndTmpInDestinationOrder() throws {
        let p = try plan(["--bind=/a:/tmp/x", "--tmpfs=/var", "--bind-ro=/b:/opt:norbind"])
        let tmp = try index(p) { if case .tmpfs("/tmp", _, _) = $0 { true } else { false } }
        let opt = try index(p) { $0 == .bind(BindMount(source: "/b", destination: "/opt", readOnly: true, recursive: false)) }
        let tmpX = try index(p) { $0 == .bind(BindMount(source: "/a", destination: "/tmp/x", readOnly: false)) }
        let varTmpfs = try index(p) { $0 == .tmpfs(path: "/var", options: "mode=0755", attributes: [.noSUID, .noDev]) }
        #expect(tmp < opt && opt < tmpX && tmpX < varTmpfs)
    }

    @Test func hostInformationNamesTheManagerAndUUID() throws {
        let p = try plan()
        #expect(
            p.operations.contains(
                .hostInformation(
                    path: "/run/host",
                    files: ["container-manager": "swift-nspawn\n", "container-uuid": "00010203-0405-0607-0809-0a0b0c0d0e0f\n"],
                    osRelease: "/etc/os-release", notifySocket: "notify")))
    }

    @Test func readOnlyMarksTheRoot() throws {
        #expect(try plan(["--read-only"]).readOnlyRoot)
        #expect(!(try plan()).readOnlyRoot)
    }

    @Test func deviceNumbersFollowTheKernelsEncoding() {
        #expect(DeviceNode(name: "null", major: 1, minor: 3).deviceNumber == 0x103)
        #expect(DeviceNode(name: "big", major: 259, minor: 300).deviceNumber == (UInt64(259) << 8) | 0x2c | (UInt64(0x100) << 12))
    }
}

@Suite struct SeccompPolicyTests {
    private let caps = CapabilitySet.nspawnDefault

    @Test func defaultsFollowNspawnWithoutUserfaultfd() throws {
        let allowed = try SeccompPolicy(capabilities: caps).allowed()
        for call in ["read", "mount", "setns", "ioctl", "reboot", "ptrace", "capset", "uname"] { #expect(allowed.contains(call), "\(call)") }
        for call in [
            "userfaultfd", "bpf", "perf_event_open", "add_key", "keyctl", "kexec_load", "open_by_handle_at", "swapon", "init_module", "clock_settime", "acct",
        ] {
            #expect(!allowed.contains(call), "\(call)")
        }
    }

    @Test func capabilitiesGateTheirCalls() throws {
        let withTime = try SeccompPolicy(capabilities: caps.union(CapabilitySet([25]))).allowed()  // CAP_SYS_TIME
        #expect(withTime.contains("clock_settime"))
        let withoutBoot = try SeccompPolicy(capabilities: caps.subtracting(CapabilitySet([22]))).allowed()  // CAP_SYS_BOOT
        #expect(!withoutBoot.contains("reboot"))
    }

    @Test func knownCoversNestedGroups() {
        #expect(SeccompPolicy.known.contains("uselib"))  // only reachable through @obsolete
        #expect(!SeccompPolicy.known.contains { $0.hasPrefix("@") })
    }

    @Test func groupsWithHyphensExpand() throws {
        #expect(SeccompPolicy.expand("@system-service").contains("read"))  // through @basic-io
    }

    @Test func cacheKeyFollowsTheInputs() throws {
        let a = try SeccompPolicy(capabilities: caps), b = try SeccompPolicy(capabilities: caps, filters: ["~uname"])
        #expect(a.cacheKey != b.cacheKey)
        #expect(SeccompFilter.cacheKey(a) != SeccompFilter.cacheKey(b))
    }
}

@Suite struct DeviceFilterTests {
    @Test func everyJumpLandsInsideTheProgramAndItEndsDenying() {
        let program = DeviceFilter.closed.program
        for (index, instruction) in program.enumerated() where instruction.code == 0x55 {
            #expect(index + 1 + Int(instruction.offset) < program.count)
        }
        #expect(program.suffix(2) == [.move(0, 0), .exit])
        #expect(DeviceFilter.closed.bytes.count == program.count * 8)
    }

    @Test func theClosedPolicyAllowsOnlyTheMachinesNodes() {
        let rules = DeviceFilter.closed.rules
        #expect(rules.allSatisfy { $0.kind == .character })
        #expect(rules.contains { $0.major == 136 && $0.minor == nil && $0.access & DeviceFilter.mknod == 0 })
        #expect(Set(rules.map { "\($0.major):\($0.minor.map(String.init) ?? "*")" }) == ["1:3", "1:5", "1:7", "1:8", "1:9", "5:0", "5:2", "136:*"])
    }
}

@Suite struct ResourcePropertyTests {
    @Test(arguments: [
        ("MemoryMax=64M", ResourceProperty.memoryMax(64 << 20)), ("MemoryHigh=infinity", .memoryHigh(nil)), ("TasksMax=32", .tasksMax(32)),
        ("CPUQuota=150%", .cpuQuota(150)), ("CPUWeight=200", .cpuWeight(200)), ("AllowedCPUs=0-2,5", .allowedCPUs([0, 1, 2, 5])),
    ])
    func parses(text: String, expected: ResourceProperty) throws {
        #expect(try ResourceProperty.parse(text) == expected)
    }

    @Test(arguments: ["MemoryMax=lots", "MemoryMax=", "TasksMax=0", "CPUQuota=50", "CPUWeight=0", "AllowedCPUs=3-1", "Frobnicate=1", "MemoryMax"])
    func refuses(text: String) {
        #expect(throws: UserError.self) { try ResourceProperty.parse(text) }
    }

    @Test func mapsToSystemdAndToCgroupFiles() throws {
        #expect(ResourceProperty.memoryMax(64 << 20).busProperty == ("MemoryMax", .uint64(64 << 20)))
        #expect(ResourceProperty.tasksMax(nil).busProperty == ("TasksMax", .uint64(UInt64.max)))
        #expect(ResourceProperty.cpuQuota(150).busProperty == ("CPUQuotaPerSecUSec", .uint64(1_500_000)))
        #expect(ResourceProperty.allowedCPUs([0, 9]).busProperty == ("AllowedCPUs", .array(element: "y", [.byte(1), .byte(2)])))
        #expect(ResourceProperty.cpuQuota(150).cgroupFile == ("cpu.max", "150000 100000", "cpu"))
        #expect(ResourceProperty.memoryMax(nil).cgroupFile == ("memory.max", "max", "memory"))
    }

    @Test func unitNamesAreEscapedAsSystemdEscapesThem() {
        #expect(SystemdScope.escape("my-box") == "my\\x2dbox")
        #expect(SystemdScope.escape("web.1") == "web.1")
        #expect(SystemdScope.escape(".hidden") == "\\x2ehidden")
    }

    @Test func hugeCPUQuotasAreRefusedNotOverflowed() {
        #expect(throws: UserError.self) { try ResourceProperty.parse("CPUQuota=9999999999999999%") }
    }

    @Test func scopeArgumentsCarryTheProperties() {
        let arguments = SystemdScope.startArguments(
            unit: "machine-m.scope", leader: ("PIDs", .array(element: "u", [.uint32(7)])), slice: "machine.slice", description: "Container m",
            properties: [.memoryMax(1 << 20)])
        #expect(arguments.map(\.signature) == ["s", "s", "a(sv)", "a(sa(sv))"])
        guard case .array(_, let properties) = arguments[2] else { return }
        #expect(properties.contains(.structure([.string("Delegate"), .variant(.bool(true))])))
        #expect(properties.contains(.structure([.string("MemoryMax"), .variant(.uint64(1 << 20))])))
        #expect(properties.contains(.structure([.string("PIDs"), .variant(.array(element: "u", [.uint32(7)]))])))
    }
}
