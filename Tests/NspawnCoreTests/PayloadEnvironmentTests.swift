import Testing
@testable import NspawnCore

@Suite struct PayloadEnvironmentTests {
    @Test func environmentIsNspawnsWithLaterAssignmentsWinning() throws {
        let id = MachineID(bytes: Array(repeating: 0xab, count: 16))
        let spec = PayloadPlan(
            command: [], environment: ["FOO=1", "PATH=/x", "FOO=2"], user: nil, workingDirectory: nil, asPID2: false, boot: false,
            capabilities: .standard(privateNetwork: true), seccomp: nil, machineID: id, term: "vt220",
            hostEnvironment: ["container_host_id=debian", "container_host_version_id=12"])
        let env = try Payload.environment(spec)
        #expect(
            env == [
                "container=swift-nspawn", "container_uuid=abababab-abab-abab-abab-abababababab", "container_host_id=debian",
                "container_host_version_id=12", "NOTIFY_SOCKET=/run/host/notify", "TERM=vt220",
                "HOME=/root", "USER=root", "LOGNAME=root", "PATH=/x", "FOO=2",
            ])
    }

    @Test func userDecidesHomeAndShell() throws {
        let spec = PayloadPlan(
            command: [], environment: [], user: "alice", workingDirectory: nil, asPID2: false, boot: false, capabilities: .standard(privateNetwork: true),
            seccomp: nil, machineID: .random(), term: nil)
        let env = try Payload.environment(spec, user: PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/zsh"))
        #expect(env.contains("HOME=/home/alice") && env.contains("USER=alice") && env.contains("LOGNAME=alice") && env.contains("SHELL=/bin/zsh"))
        #expect(!env.contains { $0.hasPrefix("TERM=") })
    }

    @Test func hostIdentityComesFromOSReleaseAsSystemdNspawnPassesIt() {
        let text = """
            # a comment
            VARIANT="Ünïcode \\é"\r
            PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
            VERSION_ID="12"
            ID=debian
            BUILD_ID='2026-11-01'
            IMAGE_VERSION="1.\\"2\\" \\n"
            """
        let fields = Dictionary(uniqueKeysWithValues: OSRelease.parse(text).map { ($0.key, $0.value) })
        #expect(fields["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)" && fields["ID"] == "debian" && fields["BUILD_ID"] == "2026-11-01")
        // As in a shell: \" is a quote, \n stays a backslash and an n.
        #expect(fields["IMAGE_VERSION"] == "1.\"2\" \\n")
        // Read as bytes: a backslash before a character of several bytes stays too; a DOS line end
        // ends its line (PRETTY_NAME is the next one) and its \r goes.
        #expect(fields["VARIANT"] == "Ünïcode \\é")
        #expect(
            OSRelease.hostEnvironment(text) == ["container_host_id=debian", "container_host_version_id=12", "container_host_build_id=2026-11-01"])
    }
}
