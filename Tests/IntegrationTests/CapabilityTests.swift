import Foundation
import Testing

/// The payload's capability sets, and the stub init's, as /proc/PID/status shows them.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct CapabilityTests {
    private func sets(_ machine: TestMachine, options: [String] = [], pid: String = "self") throws -> [String: UInt64] {
        let lines = try machine.shell("grep ^Cap /proc/\(pid)/status", options: options).lines
        var result: [String: UInt64] = [:]
        for line in lines {
            let parts = line.split(separator: "\t")
            result[String(parts[0].dropLast())] = UInt64(parts[1], radix: 16)
        }
        return result
    }

    /// systemd-nspawn's 26 capabilities (reference §6) plus CAP_NET_ADMIN for the private network.
    static let nspawnSet: UInt64 = 0xfdec_afff | (1 << 12)

    @Test func rootGetsNspawnsSetAndNothingInheritable() throws {
        let machine = try TestMachine()
        let caps = try sets(machine)
        #expect(caps["CapBnd"] == Self.nspawnSet)
        #expect(caps["CapEff"] == Self.nspawnSet && caps["CapPrm"] == Self.nspawnSet)
        #expect(caps["CapInh"] == 0 && caps["CapAmb"] == 0)
    }

    @Test func sharedNetworkHasNoNetAdmin() throws {
        let machine = try TestMachine()
        #expect(try sets(machine, options: ["--no-private-network"])["CapBnd"] == Self.nspawnSet & ~(1 << 12))
    }

    @Test func capabilitiesAreAddedAndDropped() throws {
        let machine = try TestMachine()
        let caps = try sets(machine, options: ["--drop-capability=CAP_SYS_ADMIN,net_raw", "--capability=CAP_SYS_RAWIO"])
        #expect(caps["CapBnd"] == (Self.nspawnSet & ~(1 << 21) & ~(1 << 13)) | (1 << 17))
        #expect(try sets(machine, options: ["--drop-capability=all"])["CapBnd"] == 0)
    }

    @Test func anUnprivilegedUserHasOnlyItsAmbientCapabilities() throws {
        let machine = try TestMachine()
        #expect(try sets(machine, options: ["-u", "alice"])["CapEff"] == 0)
        let ambient = try sets(machine, options: ["-u", "alice", "--ambient-capability=CAP_NET_BIND_SERVICE"])
        #expect(ambient["CapAmb"] == 1 << 10 && ambient["CapEff"] == 1 << 10 && ambient["CapInh"] == 1 << 10)
    }

    @Test func noNewPrivilegesIsSetWhenAsked() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("grep NoNewPrivs /proc/self/status").stdout == "NoNewPrivs:\t0\n")
        #expect(try machine.shell("grep NoNewPrivs /proc/self/status", options: ["--no-new-privileges=yes"]).stdout == "NoNewPrivs:\t1\n")
    }

    @Test func helpListsTheNamesAndUnknownNamesAreRefused() throws {
        let help = try runNspawn(["--capability=help"])
        #expect(help.status == 0 && help.lines.contains("CAP_SYS_ADMIN") && help.lines.contains("CAP_CHOWN"))
        let bad = try runNspawn(["--drop-capability=CAP_NOPE", "true"])
        #expect(bad.status == 1 && bad.stderrLines == ["Failed to parse capability in --drop-capability=: CAP_NOPE (see --drop-capability=help)."])
    }

    @Test func theStubStaysRootAndShowsNothingOfTheHost() throws {
        let machine = try TestMachine()
        let result = try machine.shell(
            "id -u; grep '^Uid' /proc/1/status | cut -f2; tr '\\0' '\\n' < /proc/1/environ | grep -c = ; cat /proc/1/comm",
            options: ["-a", "-u", "alice"])
        #expect(result.lines == ["1000", "0", "0", "(sd-stubinit)"], "\(result.stdout) \(result.stderr)")
    }
}
