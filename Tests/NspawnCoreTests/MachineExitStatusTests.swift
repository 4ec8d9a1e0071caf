import Testing
@testable import NspawnCore

@Suite struct MachineExitStatusTests {
    @Test(arguments: [
        (MachineExitStatus.PID1End.exited(0), false, MachineExitStatus.Decision.exit(0)),
        (.exited(42), false, .exit(42)),
        (.exited(133), false, .exit(1)),
        (.exited(133), true, .exit(1)),
        (.killed(2), false, .exit(0)),
        (.killed(1), false, .reboot),
        (.killed(1), true, .exit(133)),
        (.killed(9), false, .exit(1)),
        (.killed(15), true, .exit(1)),
    ])
    func mapsAsSystemdNspawn(end: MachineExitStatus.PID1End, keepUnit: Bool, expected: MachineExitStatus.Decision) {
        #expect(MachineExitStatus.decide(end, keepUnit: keepUnit) == expected)
    }

    @Test func messagesNameTheSignal() {
        #expect(MachineExitStatus.message(.killed(9), machine: "m") == "Container m terminated by signal KILL.")
        #expect(MachineExitStatus.message(.exited(3), machine: "m") == "Container m failed with error code 3.")
    }
}
