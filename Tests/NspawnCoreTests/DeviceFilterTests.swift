import Testing
@testable import NspawnCore

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
