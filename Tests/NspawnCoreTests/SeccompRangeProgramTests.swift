import Testing

@testable import NspawnCore

@Suite struct SeccompRangeProgramTests {
    typealias Instruction = SeccompRangeProgram.Instruction

    /// AUDIT_ARCH_X86_64 (x32 too: its numbers carry bit 30) and AUDIT_ARCH_I386.
    static let x86_64: UInt32 = 0xc000_003e
    static let i386: UInt32 = 0x4000_0003

    /// Numbers chosen without the compactor's own analysis: every low number of each ABI, the x32
    /// block, the edges of the 32-bit range, and a spread of others.
    static let numbers: [UInt32] = {
        var generator = SplitMix64(seed: 2026)  // the same numbers on every run, should one fail
        return Array(0..<1100) + (0..<1100).map { 0x4000_0000 + $0 } + [0x3fff_ffff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff]
            + (0..<2000).map { _ in UInt32.random(in: 0...UInt32.max, using: &generator) }
    }()
    static let architectures: [UInt32] = [x86_64, i386, 0, 1, 0x4000_003e, 0xc000_0003, 0xc000_003d, 0xc000_003f, 0xc000_00b7, 0xffff_ffff]

    /// The default, one with filters and absent keyrings, one without CAP_SYS_ADMIN and CAP_SYS_BOOT.
    static func policy(_ index: Int) throws -> SeccompPolicy {
        let caps = CapabilitySet.nspawnDefault
        switch index {
        case 0: return try SeccompPolicy(capabilities: caps)
        case 1: return try SeccompPolicy(capabilities: caps, filters: ["~@mount", "~uname"], keyringsAbsent: true)
        default: return try SeccompPolicy(capabilities: caps.subtracting(CapabilitySet([21, 22])), filters: ["@system-service"])
        }
    }

    @Test(arguments: 0..<3)
    func theCompactAllowListAnswersEveryCallAsLibseccompsDoes(policyIndex: Int) throws {
        let policy = try Self.policy(policyIndex)
        let original = try #require(SeccompRangeProgram.decode(try SeccompFilter.allowList(policy).export()))
        let compact = try #require(SeccompRangeProgram.compacted(try SeccompFilter.allowList(policy).export()).flatMap(SeccompRangeProgram.decode))
        #expect(compact.count * 2 < original.count, "\(compact.count) of \(original.count) instructions")
        var mismatches: [String] = []
        for architecture in Self.architectures {
            for number in Self.numbers {
                let expected = SeccompRangeProgram.evaluate(original, architecture: architecture, number: number)
                let answer = SeccompRangeProgram.evaluate(compact, architecture: architecture, number: number)
                if expected == nil || answer != expected { mismatches.append("\(architecture):\(number)") }
            }
        }
        #expect(mismatches.count == 0, "\(mismatches.prefix(10))")
    }

    @Test func theLoadedFilterIsTheCompactOne() throws {
        let policy = try SeccompPolicy(capabilities: CapabilitySet.nspawnDefault)
        let compiled = try SeccompFilter.compile(policy)
        #expect(compiled.programs[0] == SeccompRangeProgram.compacted(try SeccompFilter.allowList(policy).export()))
    }

    /// The argument rules read arguments: left as libseccomp made them.
    @Test func aProgramThatReadsArgumentsIsLeftAlone() throws {
        let policy = try SeccompPolicy(capabilities: CapabilitySet.nspawnDefault)
        let compiled = try SeccompFilter.compile(policy)
        #expect(SeccompRangeProgram.compacted(compiled.programs[1]) == nil)
    }

    @Test func conditionalJumpsNeverReachPastTheirRange() {
        // 600 number ranges: the root's lower half is longer than an 8-bit jump.
        let allow: UInt32 = 0x7fff_0000, refuse: UInt32 = 0x0005_0001
        let numbers: SeccompRangeProgram.Ranges<UInt32> = (0..<600).map { (start: UInt32($0 * 3), answer: $0 % 2 == 0 ? allow : refuse) }
        let none: SeccompRangeProgram.Ranges<UInt32> = [(0, 0)]
        let program = SeccompRangeProgram.emit([(0, none), (Self.x86_64, numbers), (Self.x86_64 + 1, none)])
        #expect(program.contains { $0.code == Instruction.jump })
        for number: UInt32 in [0, 1, 2, 3, 899, 900, 1796, 1797, 1798, 5000] {
            let expected = min(number / 3, 599) % 2 == 0 ? allow : refuse
            #expect(SeccompRangeProgram.evaluate(program, architecture: Self.x86_64, number: number) == expected, "\(number)")
        }
        #expect(SeccompRangeProgram.evaluate(program, architecture: Self.i386, number: 3) == 0)
    }
}
