import Testing
@testable import NspawnCore

@Suite struct CommandLineParserTests {
    private func configuration(_ args: [String], file: StaticString = #file) throws -> Configuration {
        switch CommandLineParser.parse(args, environment: { $0 == "FROMHOST" ? "hostvalue" : nil }) {
        case .run(let c): return c
        case .exit(let text, let status): throw UserError("expected a run, got status \(status): \(text)")
        }
    }

    private func failure(_ args: [String]) -> (String, Int32)? {
        if case .exit(let text, let status) = CommandLineParser.parse(args) { return (text, status) }
        return nil
    }

    @Test func payloadStartsAtFirstNonOption() throws {
        let c = try configuration(["-D", "/x", "/bin/ls", "-l", "-b", "--help"])
        #expect(c.directory == "/x")
        #expect(c.command == ["/bin/ls", "-l", "-b", "--help"])
    }

    @Test func shortOptionsGroupAndTakeAttachedValues() throws {
        let c = try configuration(["-qPD/srv/m", "-Mweb", "-E", "A=1", "true"])
        #expect(c.quiet && c.console == .pipe)
        #expect(c.directory == "/srv/m" && c.machineName == "web" && c.environment == ["A=1"])
        #expect(c.command == ["true"])
    }

    @Test func longOptionsTakeValuesAttachedOrNext() throws {
        #expect(try configuration(["--directory=/a"]).directory == "/a")
        #expect(try configuration(["--directory", "/b"]).directory == "/b")
        #expect(failure(["--directory"])?.0 == "Option --directory needs a value.")
        #expect(failure(["--read-only=yes"])?.0 == "Option --read-only takes no value.")
        #expect(failure(["-Y"])?.0 == "Unknown option -Y.")
        #expect(failure(["--frob"])?.0 == "Unknown option --frob.")
    }

    @Test func doubleDashEndsOptions() throws {
        #expect(try configuration(["-D", "/x", "--", "-weird", "arg"]).command == ["-weird", "arg"])
    }

    @Test(arguments: [["-h"], ["--help"], ["-D", "/x", "--help"]])
    func helpExitsZero(args: [String]) throws {
        let result = try #require(failure(args))
        #expect(result.1 == 0)
        #expect(result.0.contains("--directory"))
    }

    @Test func versionExitsZero() throws {
        let result = try #require(failure(["--version"]))
        #expect(result == (Version.string, 0))
    }

    @Test(arguments: [
        (["--frobnicate"], "--frobnicate"),
        (["-D", "/x", "--nope", "/bin/true"], "--nope"),
        (["-M", "a/b"], "Invalid machine name: a/b"),
        (["--private-users=65537"], "not a multiple of 65536"),
        (["--private-users=0:65536"], "overlaps the host's root"),
        (["--private-users=65536:70000"], "larger than 65536"),
        (["--private-users=bogus"], "--private-users"),
        (["--private-users-ownership=chown"], "never rewrites"),
        (["--kill-signal=SIGNOPE"], "Cannot parse signal"),
        (["--bind=relative"], "must be absolute"),
        (
            ["--bind=/a:/b:nosuchopt"],
            "Unknown mount option \"nosuchopt\" in --bind=/a:/b:nosuchopt; known: rbind, norbind, noidmap, idmap, rootidmap, owneridmap, nosuid, noexec."
        ),
        (["--private-users=no", "--bind-ro=/a:/b:rootidmap"], "--bind-ro=/a:/b:rootidmap needs a user namespace for the machine (not --private-users=no)."),
        (["--bind=/a:/"], "may not be the root"),
        (["--tmpfs=/x:uid=5"], "not allowed"),
        (["--uuid=nope"], "Invalid UUID"),
        (["--chdir=tmp"], "absolute"),
        (["-E", "1BAD=x"], "not valid"),
        (["--console=loud"], "Unknown console mode"),
        (["--register=maybe"], "--register"),
        (["--bind=/a:/x", "--tmpfs=/x"], "more than once"),
        (["-b", "-a"], "--boot and --as-pid2 may not be combined."),
        (["--no-private-network", "--port=80"], "--no-private-network cannot be combined"),
        (["-n", "-p", "tcp:80", "-p", "80:81"], "Duplicate port specification: 80:81"),
        (["-n", "-p", "sctp:80"], "Failed to parse port specification: sctp:80"),
        (["-n", "-p", "0"], "Failed to parse port specification: 0"),
        (["--network-zone=a-zone-name-too-long"], "Network zone name not valid: a-zone-name-too-long"),
        (["--network-bridge=br0", "--network-zone=z"], "--network-bridge=br0 and --network-zone=z are mutually exclusive."),
        (["--network-namespace-path=/run/netns/x", "-n"], "--network-namespace-path= cannot be combined with other network options."),
        (["--network-namespace-path=/run/netns/x", "--private-network"], "--network-namespace-path= cannot be combined with other network options."),
        (["--no-private-network", "--network-macvlan=eth0"], "--no-private-network cannot be combined with options"),
        (["--network-interface=eth0", "--network-interface=eth0:x"], "Interface eth0 given to --network-interface= more than once."),
        (["--network-interface=eth0:host0", "-n"], "Interface name host0 would exist twice in the machine."),
        (["--network-veth-extra=a/b"], "Network interface name not valid: a/b"),
        (["--network-macvlan=a-very-long-interface"], "Network interface name not valid: a-very-long-interface"),
        (["--private-network", "--no-private-network"], "--private-network and --no-private-network contradict each other."),
        (["--settings=sometimes"], "Failed to parse --settings= argument: sometimes; known: yes, no, override, trusted."),
        (["--oci-bundle=/b", "-i", "/i.raw"], "--oci-bundle= may not be combined with --image= or --template=."),
        (["-D", "/m", "-i", "/i.raw"], "Please specify either --directory= or --image=, the combination of both is not supported."),
        (["--image-policy=root=bogus"], "Failed to parse image policy: root=bogus: unknown partition policy flag 'bogus'."),
        (["-i", "/i.raw", "--template=/t"], "--template= is not supported with --image=."),
        (["--overlay=relative:/b"], "--overlay= layers must be absolute paths"),
        (["--volatile=maybe"], "Failed to parse --volatile= argument: maybe; known: no, yes, state, overlay."),
        (["-x", "--volatile"], "--volatile= and --ephemeral cannot be combined."),
        (["--private-users-chown"], "--private-users-chown is not supported by swift-nspawn: swift-nspawn never rewrites the tree's owners"),
        (["--link-journal=maybe"], "Failed to parse --link-journal= value: maybe; known: no, auto, host, guest, try-host, try-guest."),
        (["--pivot-root=rel"], "Failed to parse --pivot-root= argument: rel (NEW[:OLD], absolute paths without \"..\")."),
        (["--pivot-root=/a:/"], "Failed to parse --pivot-root= argument: /a:/"),
        (["--timezone=utc"], "Failed to parse --timezone= value: utc; known: off, copy, bind, symlink, delete, auto."),
        (["--set-credential=x:\\x+f"], "Failed to unescape the value of --set-credential=x:\\x+f."),
        (["--set-credential=novalue"], "Failed to parse --set-credential= value: novalue"),
        (["--set-credential=a/b:x"], "Failed to parse --set-credential= value: a/b:x"),
        (["--set-credential=x:bad\\q"], "Failed to unescape the value of --set-credential=x:bad\\q."),
        (["--load-credential=key:"], "Failed to parse --load-credential= value: key:"),
        (["--set-credential=k:1", "--load-credential=k:/f"], "Duplicate credential 'k', refusing."),
        (["--rlimit=NOPE=1"], "Unknown resource limit in --rlimit=NOPE=1"),
        (["--rlimit=NOFILE=2:1"], "the soft limit is above the hard one"),
        (["--rlimit=NOFILE"], "Failed to parse --rlimit= value: NOFILE"),
        (["--oom-score-adjust=2000"], "Failed to parse --oom-score-adjust= value: 2000"),
        (["--cpu-affinity=x"], "Failed to parse --cpu-affinity= value: x"),
        (["--personality=arm64"], "Unknown or unsupported --personality= value: arm64; known: x86, x86-64."),
        (["--nesting=maybe"], "Failed to parse --nesting= value: maybe"),
        (["--nesting=yes", "--private-users=no"], "--nesting=yes needs a user namespace"),
        (["--private-users=131072:65537"], "larger than 65536 and not a multiple of it"),
    ])
    func badInputIsOneLineAndStatusOne(args: [String], expected: String) throws {
        let result = try #require(failure(args))
        #expect(result.1 == 1)
        #expect(result.0.contains(expected), "\(result.0)")
        #expect(!result.0.contains("\n"))
    }

    /// --volatile's value is optional and only ever inline, as with getopt's optional_argument: a
    /// word after it is the command.
    @Test func volatileTakesAnInlineValueOrNone() throws {
        guard case .run(let bare) = CommandLineParser.parse(["--volatile", "yes"]) else { throw UserError("not a run") }
        #expect(bare.volatile == .yes && bare.command == ["yes"])
        guard case .run(let state) = CommandLineParser.parse(["--volatile=state"]) else { throw UserError("not a run") }
        #expect(state.volatile == .state)
        guard case .run(let off) = CommandLineParser.parse(["--volatile=no"]) else { throw UserError("not a run") }
        #expect(off.volatile == .no)
    }

    @Test func defaultsAreTheSafeOnes() throws {
        let c = try configuration([])
        #expect(c.userNamespace == .pick)
        #expect(c.ownership == .map)
        #expect(c.privateNetwork)
        #expect(c.register == .auto)
        #expect(c.console == nil)
    }

    @Test func optionsAreParsed() throws {
        let c = try configuration([
            "-D", "/srv/m", "-M", "web", "--hostname=h1", "--uuid=0123456789abcdef0123456789ABCDEF",
            "-E", "A=1", "-E", "FROMHOST", "-E", "MISSING", "--chdir=/tmp/", "-u", "daemon", "-a",
            "--kill-signal=SIGRTMIN+3", "-q", "--private-users=131072:65536", "--private-users-ownership=off",
            "--no-private-network", "--bind=/src:/dst:norbind,noidmap", "--bind-ro=/etc", "--tmpfs=/var",
            "--read-only", "--register=no", "--keep-unit", "-P", "sh", "-c", "true",
        ])
        #expect(c.directory == "/srv/m")
        #expect(c.machineName == "web")
        #expect(c.hostname == "h1")
        #expect(c.uuid?.uuidString == "01234567-89ab-cdef-0123-456789abcdef")
        #expect(c.environment == ["A=1", "FROMHOST=hostvalue"])
        #expect(c.workingDirectory == "/tmp")
        #expect(c.user == "daemon")
        #expect(c.asPID2)
        #expect(c.killSignal == SignalName.parse("RTMIN+3"))
        #expect(c.quiet)
        #expect(c.userNamespace == .fixed(UIDRange(base: 131072, count: 65536)))
        #expect(c.ownership == .off)
        #expect(!c.privateNetwork)
        #expect(
            c.binds == [
                BindMount(source: "/src", destination: "/dst", readOnly: false, recursive: false, ownership: .raw),
                BindMount(source: "/etc", destination: "/etc", readOnly: true),
            ])
        #expect(c.tmpfs == [TmpfsMount(destination: "/var", options: "mode=0755")])
        #expect(c.readOnly)
        #expect(c.register == .no)
        #expect(c.keepUnit)
        #expect(c.console == .pipe)
        #expect(c.command == ["sh", "-c", "true"])
    }

    @Test func capitalUMeansPickWithAutoOwnership() throws {
        let c = try configuration(["-U"])
        #expect(c.userNamespace == .pick)
        #expect(c.ownership == .auto)
    }

    @Test func customMountsAreOrderedParentFirst() throws {
        let c = try configuration(["--bind=/a:/var/lib/x", "--tmpfs=/var", "--bind-ro=/b:/opt"])
        #expect(c.customMountsInOrder.map(\.destination) == ["/opt", "/var", "/var/lib/x"])
    }

    @Test func processSettingsAreRead() throws {
        guard
            case .run(let c) = CommandLineParser.parse([
                "--no-pager", "--oom-score-adjust=-500", "--rlimit=RLIMIT_NOFILE=512:1024", "--rlimit=CORE=infinity", "--cpu-affinity=0-2,5",
                "--personality=x86",
            ])
        else { throw UserError("refused") }
        #expect(c.process.oomScoreAdjust == -500 && c.process.cpuAffinity == [0, 1, 2, 5] && c.process.personality == 0x0008)
        #expect(c.process.resourceLimits == [ResourceLimit(resource: 7, soft: 512, hard: 1024), ResourceLimit(resource: 4, soft: .max, hard: .max)])
    }

    @Test func credentialValuesAreUnescapedAsSystemdDoes() throws {
        guard case .run(let c) = CommandLineParser.parse(["--set-credential=pw:a\\nb\\x41\\101\\\\\\s", "--load-credential=key:sub/key"]) else {
            throw UserError("refused")
        }
        #expect(c.credentials == [Credential(id: "pw", value: Array("a\nbAA\\ ".utf8))])
        #expect(c.credentialFiles == [CredentialFile(id: "key", path: "sub/key")])
        #expect(throws: UserError.self) { try c.credentialFiles[0].read(ownCredentials: nil) }
    }

    @Test func nspawnsEnvironmentSwitchesAreHonouredOrRefusedWithTheReason() throws {
        func configuration(_ environment: [String: String], _ args: [String] = []) throws -> Configuration {
            var options = CommandLineOptions()
            options.command = args
            return try Configuration(options: options) { environment[$0] }
        }
        let honoured = try configuration([
            "SYSTEMD_NSPAWN_TMPFS_TMP": "0", "SYSTEMD_NSPAWN_LOCK": "no", "SYSTEMD_NSPAWN_CHECK_OS_RELEASE": "false",
            "SYSTEMD_NSPAWN_CONTAINER_SERVICE": "ci-runner", "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "no", "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1",
        ]).switches
        #expect(!honoured.tmpfsTmp && !honoured.lockImage && !honoured.checkOSRelease && honoured.containerService == "ci-runner")
        #expect(try configuration([:]).switches == EnvironmentSwitches())
        #expect(try configuration(["SYSTEMD_NSPAWN_SHARE_NS_IPC": "off", "SYSTEMD_NSPAWN_USE_CGNS": "true"]).switches == EnvironmentSwitches())
        let refusals: [([String: String], String)] = [
            (["SYSTEMD_NSPAWN_API_VFS_WRITABLE": "yes"], "SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes is not supported: swift-nspawn keeps /proc/sys"),
            (["SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"], "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network is not supported"),
            (["SYSTEMD_NSPAWN_USE_CGNS": "0"], "SYSTEMD_NSPAWN_USE_CGNS=0 is not supported: every machine gets a cgroup namespace"),
            (["SYSTEMD_NSPAWN_SHARE_NS_PID": "1"], "SYSTEMD_NSPAWN_SHARE_NS_PID=1 is not supported: every machine gets its own PID namespace"),
            (["SYSTEMD_NSPAWN_SHARE_NS_UTS": "on"], "SYSTEMD_NSPAWN_SHARE_NS_UTS=on is not supported"),
            (["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "0"], "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0 is not supported"),
            (["SYSTEMD_NSPAWN_TMPFS_TMP": "maybe"], "Failed to parse SYSTEMD_NSPAWN_TMPFS_TMP=maybe"),
            (["SYSTEMD_NSPAWN_CONTAINER_SERVICE": "a b"], "Invalid SYSTEMD_NSPAWN_CONTAINER_SERVICE=a b"),
        ]
        for (environment, message) in refusals {
            #expect(performing: { try configuration(environment) }, throws: { ($0 as? UserError)?.description.hasPrefix(message) == true })
        }
    }
}
