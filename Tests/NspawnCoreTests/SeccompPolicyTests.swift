import CSeccomp
import Testing
@testable import NspawnCore

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
        #expect(SeccompFilter.cacheKey(a.cacheKey, architectures: ["x86"]) != SeccompFilter.cacheKey(b.cacheKey, architectures: ["x86"]))
    }
}

@Suite struct SeccompFilterTests {
    @Test func aRuleLibseccompRefusesFailsTheFilterInsteadOfVanishing() throws {
        let context = try SeccompFilter.Context(defaultAction: SeccompFilter.SCMP_ACT_ALLOW, architectures: SeccompFilter.architectures)
        // Argument 6 does not exist (system calls have six, 0…5): libseccomp answers EINVAL.
        let impossible = scmp_arg_cmp(arg: 6, op: SCMP_CMP_EQ, datum_a: 0, datum_b: 0)
        #expect(throws: SyscallError.self) { try context.add(SeccompFilter.errno(1), "ioctl", [impossible]) }
        // The default action again is refused too: such a rule would do nothing.
        #expect(throws: SyscallError.self) { try context.add(SeccompFilter.SCMP_ACT_ALLOW, "uname") }
        try context.add(SeccompFilter.errno(1), "uname")
    }

    @Test func theDefaultPolicyCompiles() throws {
        let filter = try SeccompFilter.compile(try SeccompPolicy(capabilities: CapabilitySet.nspawnDefault))
        #expect(filter.programs.count == 2 && filter.programs.allSatisfy { !$0.isEmpty && $0.count % 8 == 0 })
    }
}

@Suite struct NestingPolicyTests {
    @Test func aNestingMachineGetsKeyringsAbsentNotForbidden() throws {
        let plan = try PlanFixture.plan(["--nesting=yes"])
        #expect(plan.payload.seccomp?.keyringsAbsent == true)
        #expect(try PlanFixture.plan([]).payload.seccomp?.keyringsAbsent == false)
        let absent = try #require(plan.payload.seccomp)
        #expect(absent.allowed().isDisjoint(with: SeccompPolicy.keyringCalls))
        #expect(absent.cacheKey != (try PlanFixture.plan([])).payload.seccomp?.cacheKey)
        #expect(try SeccompFilter.compile(absent).programs.count == 2)
    }
}

@Suite struct SuppressSyncTests {
    @Test func suppressSyncIsItsOwnFilter() throws {
        let plain = try SeccompPolicy(capabilities: CapabilitySet.nspawnDefault)
        let suppressed = try SeccompPolicy(capabilities: CapabilitySet.nspawnDefault, suppressSync: true)
        #expect(plain.cacheKey != suppressed.cacheKey)
        let compiled = try SeccompFilter.compile(suppressed)
        #expect(compiled.programs[1].count > (try SeccompFilter.compile(plain)).programs[1].count)
        #expect(try PlanFixture.plan(["--suppress-sync=yes"]).payload.seccomp?.suppressSync == true)
    }
}
