import Testing

@testable import NspawnCore

/// .nspawn files: their syntax, the keys carried into the configuration through their options,
/// who wins (the command line, or the file with --settings=override), and what an untrusted file
/// may not set.
struct SettingsFileTests {
    private func options(_ arguments: [String]) throws -> CommandLineOptions {
        var options = CommandLineOptions()
        try CommandLineParser.read(arguments, into: &options)
        return options
    }

    private func configure(
        _ text: String, trusted: Bool = true, override: Bool = false, commandLine: [String] = ["-D", "/m"]
    ) throws -> (Configuration, [String]) {
        var file = try SettingsFile.parse(text, path: "/m.nspawn")
        file.trusted = trusted
        return try file.configuration(commandLine: try options(commandLine), override: override, environment: { _ in nil })
    }

    private func failure(_ text: String) -> String {
        do {
            _ = try configure(text)
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test func syntax() throws {
        let file = try SettingsFile.parse(
            "# comment\n; also\n\n[Exec]\nBoot = yes\nParameters=a \\\n  b\n[Other]\nX=1\n", path: "/m.nspawn")
        #expect(file.assignments.map { "\($0.section)/\($0.key)=\($0.value)@\($0.line)" } == ["Exec/Boot=yes@5", "Exec/Parameters=a    b@6"])
        #expect(file.warnings == ["/m.nspawn:8: Unknown section 'Other'. Ignoring."])
        #expect(failure("[Files]\nBnd=/a:/b\n") == "/m.nspawn:2: Unknown key 'Bnd' in section [Files].")
        #expect(failure("Boot=yes\n") == "/m.nspawn:1: Assignment outside of section.")
        #expect(failure("[Exec]\nBoot\n") == "/m.nspawn:2: Missing '='.")
        #expect(failure("[Exec\n") == "/m.nspawn:1: Invalid section header '[Exec'.")
        #expect(failure("[Exec]\nParameters=a \\") == "/m.nspawn:2: Line continues past the end of the file.")
        #expect(failure("[Exec]\nParameters=\"a b\n") == "/m.nspawn:2: Unbalanced quoting in '\"a b'.")
    }

    @Test func keysBecomeTheirOptions() throws {
        let (c, _) = try configure(
            """
            [Exec]
            Boot=yes
            Parameters=--log-level=debug "systemd.unit=rescue target"
            Environment=A=1 "B=two words"
            Hostname=web
            KillSignal=SIGRTMIN+3
            LimitNOFILE=1024:4096
            SystemCallFilter=~@clock
            [Files]
            ReadOnly=yes
            Bind=/srv:/data:idmap
            TemporaryFileSystem=/scratch
            [Network]
            VirtualEthernet=yes
            Port=tcp:8080:80
            """)
        #expect(c.boot && c.readOnly && c.hostname == "web")
        #expect(c.command == ["--log-level=debug", "systemd.unit=rescue target"])
        #expect(c.environment == ["A=1", "B=two words"])
        #expect(c.process.resourceLimits.count == 1 && c.systemCallFilters == ["~@clock"])
        #expect(c.binds.map(\.destination) == ["/data"] && c.tmpfs.map(\.destination) == ["/scratch"])
        #expect(c.network.veth && c.network.ports.count == 1)
    }

    @Test func commandLineWinsUnlessOverridden() throws {
        let file = "[Exec]\nHostname=file\nParameters=/bin/file\n[Files]\nBind=/a:/b\n"
        let (plain, _) = try configure(file, commandLine: ["-D", "/m", "--hostname=cmd", "--bind=/c:/d", "/bin/cmd"])
        #expect(plain.hostname == "cmd" && plain.command == ["/bin/cmd"] && plain.binds.map(\.destination) == ["/d"])
        let (override, _) = try configure(file, override: true, commandLine: ["-D", "/m", "--hostname=cmd", "--bind=/c:/d", "/bin/cmd"])
        #expect(override.hostname == "file" && override.command == ["/bin/file"] && override.binds.map(\.destination) == ["/b"])
        // Where the command line says nothing, the file does.
        let (filled, _) = try configure(file)
        #expect(filled.hostname == "file" && filled.command == ["/bin/file"])
        // An empty assignment empties a list; Private=no is --no-private-network.
        let (emptied, _) = try configure("[Files]\nBind=/a:/b\nBind=\nBind=/e:/f\n[Network]\nPrivate=no\n")
        #expect(emptied.binds.map(\.destination) == ["/f"] && !emptied.network.privateNetwork)
    }

    /// Keys that say one thing together are taken or left as a group: the command line's -b keeps
    /// the file's ProcessTwo= and Parameters= out, its -n the file's [Network]; with override the
    /// file's group replaces the command line's. Parameters= lines add up.
    @Test func groupsAreTakenWhole() throws {
        let start = "[Exec]\nProcessTwo=yes\nParameters=a\nParameters=\"b c\"\n"
        let (plain, _) = try configure(start, commandLine: ["-D", "/m", "-b"])
        #expect(plain.boot && !plain.asPID2 && plain.command.isEmpty)
        let (override, _) = try configure(start, override: true, commandLine: ["-D", "/m", "-b", "x"])
        #expect(!override.boot && override.asPID2 && override.command == ["a", "b c"])
        let network = "[Network]\nBridge=br0\n"
        let (kept, _) = try configure(network, commandLine: ["-D", "/m", "-n", "-p", "80"])
        #expect(kept.network.bridge == nil && kept.network.ports.count == 1)
        let (replaced, _) = try configure(network, override: true, commandLine: ["-D", "/m", "--network-zone=z", "-p", "80"])
        #expect(replaced.network.bridge == "br0" && replaced.network.zone == nil && replaced.network.ports.isEmpty)
        // -U is of the user namespace's group: the file's PrivateUsers= stays out.
        let (users, _) = try configure("[Exec]\nPrivateUsers=no\n", commandLine: ["-D", "/m", "-U"])
        #expect(users.userNamespace == .pick)
        let (yes, _) = try configure("[Exec]\nBoot=Yes\n[Files]\nReadOnly=y\n")
        #expect(yes.boot && yes.readOnly)
    }

    /// A file only ever adds to the command line's dropped capabilities and system call denials,
    /// even with override; its Environment= never reads swift-nspawn's own environment.
    @Test func restrictionsOnlyGrow() throws {
        let secret: (String) -> String? = { $0.hasPrefix("SYSTEMD_") || $0.hasPrefix("SWIFT_NSPAWN_") ? nil : "secret-\($0)" }
        for trusted in [false, true] {
            var file = try SettingsFile.parse(
                "[Exec]\nDropCapability=\nDropCapability=CAP_MKNOD\nSystemCallFilter=\nSystemCallFilter=~@swap\n", path: "/m.nspawn")
            file.trusted = trusted
            var commandLine = CommandLineOptions()
            try CommandLineParser.read(["-D", "/m", "--drop-capability=CAP_SYS_ADMIN", "--system-call-filter=~@clock"], into: &commandLine)
            let (c, _) = try file.configuration(commandLine: commandLine, override: true, environment: secret)
            #expect(!c.capabilities.bounding.contains(number: 21) && !c.capabilities.bounding.contains(number: 27))  // SYS_ADMIN, MKNOD
            #expect(c.systemCallFilters == ["~@clock", "~@swap"])
        }
        #expect(failure("[Exec]\nEnvironment=A=1 SSH_AUTH_SOCK\n") == "/m.nspawn:2: Environment= takes NAME=VALUE assignments, not 'SSH_AUTH_SOCK'.")
    }

    /// An untrusted file keeps what the tree alone may ask for and says which keys it ignored.
    @Test func untrustedSubset() throws {
        let (c, warnings) = try configure(
            """
            [Exec]
            Hostname=web
            Capability=CAP_SYS_MODULE
            DropCapability=CAP_NET_RAW
            PrivateUsers=no
            SystemCallFilter=@obsolete
            SystemCallFilter=~@clock
            LimitNOFILE=10
            [Files]
            Bind=/etc:/hostetc
            Bind=/srv:/srv
            Volatile=state
            [Network]
            Port=80
            Private=no
            """, trusted: false)
        #expect(c.hostname == "web" && c.volatile == .state && c.systemCallFilters == ["~@clock"])
        #expect(c.binds.isEmpty && c.network.ports.isEmpty && c.network.privateNetwork && c.userNamespace == .pick)
        #expect(c.process.resourceLimits.isEmpty)
        #expect(!c.capabilities.bounding.contains(number: 16))  // CAP_SYS_MODULE
        #expect(!c.capabilities.bounding.contains(number: 13))  // CAP_NET_RAW dropped
        #expect(
            warnings.map { $0.prefix { $0 != "=" } } == [
                "/m.nspawn:3: Ignoring Capability", "/m.nspawn:5: Ignoring PrivateUsers", "/m.nspawn:6: Ignoring SystemCallFilter",
                "/m.nspawn:8: Ignoring LimitNOFILE", "/m.nspawn:10: Ignoring Bind", "/m.nspawn:14: Ignoring Port", "/m.nspawn:15: Ignoring Private",
            ])
    }

    /// A bad value is refused with the option's own message, at the file's line.
    @Test func badValuesNameTheLine() throws {
        #expect(failure("[Exec]\nHostname=ok\nBoot=maybe\n") == "/m.nspawn:3: Failed to parse Boot= value: maybe")
        #expect(failure("[Exec]\nHostname=ok\n\nKillSignal=SIGFOO\n").hasPrefix("/m.nspawn:4: "))
        #expect(failure("[Files]\nVolatile=sometimes\n").hasPrefix("/m.nspawn:2: Failed to parse --volatile= argument"))
        #expect(failure("[Exec]\nCapability=help\n") == "/m.nspawn:2: 'help' lists values on the command line only")
        // A conflict a later line resolves is not the one blamed.
        #expect(failure("[Exec]\nBoot=yes\nProcessTwo=yes\nProcessTwo=no\nKillSignal=SIGFOO\n").hasPrefix("/m.nspawn:5: "))
        #expect(failure("[Exec]\nBoot=yes\nProcessTwo=yes\n").hasPrefix("/m.nspawn:3: "))
        #expect(throws: UserError.self) { try SettingsMode.parse("sometimes") }
        #expect(try SettingsMode.parse("false") == .no && SettingsMode.parse("override") == .override)
    }
}
