import Testing
@testable import NspawnCore

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
