import Foundation
import Testing

/// The system call filter and the other options of the security policy, seen from inside.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct SeccompTests {
    @Test func twoFiltersAreLoadedByDefaultAndNoneWithSystemdSeccompZero() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("grep '^Seccomp:' /proc/self/status").stdout == "Seccomp:\t2\n")
        let process = try runNspawn(["-D", machine.path, "-P", "-q", "/bin/sh", "-c", "grep '^Seccomp:' /proc/self/status"], environment: ["SYSTEMD_SECCOMP": "0"])
        #expect(process.stdout == "Seccomp:\t0\n")
    }

    @Test func systemCallFilterDenialsWin() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("hostname renamed; echo $?").stdout == "0\n")
        let denied = try machine.shell("hostname renamed; echo $?", options: ["--system-call-filter=~sethostname"])
        #expect(denied.stdout == "1\n", "\(denied.stderr)")
        #expect(denied.stderr.contains("Operation not permitted"))
        let both = try machine.shell("hostname renamed; echo $?", options: ["--system-call-filter=~sethostname", "--system-call-filter=sethostname"])
        #expect(both.stdout == "1\n")
    }

    @Test func unknownSystemCallNamesAreRefused() throws {
        let result = try runNspawn(["--system-call-filter=~frobnicate", "true"])
        #expect(result.status == 1)
        #expect(result.stderrLines == ["Unknown system call or group in --system-call-filter=: frobnicate (see --system-call-filter=help)."])
        let help = try runNspawn(["--system-call-filter=help"])
        #expect(help.status == 0 && help.stdout.contains("@system-service") && help.stdout.contains("    @basic-io"))
    }

    @Test func nestedUserNamespacesFollowThePolicy() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("unshare -U true && echo made").stdout == "made\n")
        let refused = try machine.shell("unshare -U true && echo made", options: ["--nested-user-namespaces=no"])
        #expect(refused.stdout.isEmpty)
        #expect(refused.stderr.contains("No space left on device"))
    }

    @Test func registerYesIsAcceptedWithAWarningUntilRegistrationExists() throws {
        let machine = try TestMachine()
        let result = try runNspawn(["-D", machine.path, "--register=yes", "--console=pipe", "true"])
        #expect(result.status == 0)
        #expect(result.stderrLines.first?.hasPrefix("--register=yes: registration with systemd-machined is not implemented yet") == true)
    }
}
