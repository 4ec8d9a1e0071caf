#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// From a valid configuration to an exit status: checks what can be checked before anything is
/// made, takes the locks, and boots the machine (again, while it reboots).
public enum Launcher {
    public static func run(_ configuration: Configuration) -> Int32 {
        Supervisor.blockSignals()
        // Nothing may ptrace us or read our memory through /proc while we hold the machine's secrets
        // (its descriptors, its maps); the children inherit this until they exec.
        _ = nsp_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        do {
            return try boot(configuration)
        } catch is SetupAborted {
            return 1  // the child that failed has said why
        } catch {
            printError("\(error)")
            return 1
        }
    }

    /// The OCI runtime's `create`: the machine set up as `run` sets it up, its PID 1 left at the
    /// start gate and handed over. Errors are thrown, for the runtime to log its way.
    static func create(_ configuration: Configuration, handover: MachineHandover) throws {
        // A SIGTERM mid-way must not skip the undoing of what is made: it waits until create ends.
        Supervisor.blockSignals()
        _ = nsp_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        _ = try boot(configuration, handover: handover)
    }

    private static func boot(_ configuration: Configuration, handover: MachineHandover? = nil) throws -> Int32 {
        guard geteuid() == 0 else { throw UserError("Need to be root.") }
        var c = try withSettingsFile(configuration)
        // -x and --volatile: the tree (or image) is only read, and what the machine writes goes with it.
        let throwAway = c.ephemeral || c.volatile != .no
        let host = HostFacts.probe(askNetworkd: c.network.addressed && c.switches.ownAddresses == nil, askMachineID: c.network.hasLinks)
        if let template = c.template, let directory = c.directory, !FileSystem.exists(directory) {
            let absolute = directory.hasPrefix("/") ? directory : FileSystem.currentDirectory() + "/" + directory
            let destination = String(absolute.reversed().drop { $0 == "/" }.reversed())
            guard !(destination + "/").hasPrefix(template + "/") else {
                throw UserError("The tree \(destination) would lie inside its template \(template). Refusing.")
            }
            try TreeCopy.make(destination, from: template, progress: !c.quiet && isatty(2) != 0)
        }
        // -i (or -M NAME finding NAME.raw): the image's file systems are mounted in a mount namespace
        // of our own, and the machine is made from them as from a directory.
        let diskImage = try DiskImage.find(c).map {
            try DiskImage(
                $0, policy: c.imagePolicy, readOnly: c.readOnly, throwAway: throwAway, lock: c.switches.lockImage, quiet: c.quiet)
        }
        defer { diskImage?.release() }
        if diskImage?.readOnly == true { c.readOnly = true }
        if let diskImage, !diskImage.submounts.isEmpty, c.pivotRoot != nil, c.ephemeral || c.volatile == .overlay {
            throw UserError(
                "--pivot-root= with \(c.ephemeral ? "--ephemeral" : "--volatile=overlay") needs an image with one file system; \(diskImage.file) has more.")
        }
        let image = try MachineImage.locate(c, diskImage: diskImage)
        try image.requireMountPoints()
        if c.boot && c.switches.checkOSRelease { try image.requireOSRelease() }
        // -x never writes the tree: like --read-only, it shares the lock, and nothing is written
        // into the tree before the machine starts either.
        let treeUnwritten = c.readOnly || throwAway
        let treeLock = c.switches.lockImage && diskImage == nil ? try ImageLock(image, readOnly: treeUnwritten) : nil
        // One machine of a name at a time (two read-only runs may share a tree): its cgroup, scope
        // and registration are named after it.
        guard let nameLock = try LockFile.take(image.name, in: RuntimeDirectory.machineLocks) else {
            throw UserError("Machine '\(image.name)' already exists.")
        }
        defer { nameLock.release() }
        try resetLoginUID()
        let (range, rangeLock) = try idRange(c, image: image, host: host)
        defer {
            rangeLock?.release()
            _ = treeLock
        }
        let treeMachineID = image.machineID()
        let journalFacts = treeMachineID.map { JournalFacts.probe(image, machineID: $0) } ?? JournalFacts()
        // A throw-away machine's journal is thrown away with it, as with systemd-nspawn: nothing is
        // linked (the configuration refuses modes that would ask for it).
        let journal = throwAway ? nil : try JournalLink.decide(c.linkJournal, machineID: treeMachineID, treePath: image.path, facts: journalFacts)
        // --volatile=yes: the machine's /etc is an empty tmpfs, not the tree's: nothing to cover.
        let etcIsTheTrees = c.volatile != .yes
        let (timezone, timezoneNote): (EtcFileSetup?, String?) =
            etcIsTheTrees ? TimezoneSetup.decide(c.timezone, facts: .probe(image), readOnly: treeUnwritten) : (nil, nil)
        // The host's resolv.conf files are read only where auto can do something (no network of
        // the machine's own does nothing), or another mode was asked for.
        let resolvConfMatters = c.resolvConf != .off && (c.resolvConf != .auto || !c.network.privateNetwork || c.network.addressed)
        let (resolvConf, resolvConfNote): (EtcFileSetup?, String?) =
            etcIsTheTrees && resolvConfMatters
            ? ResolvConfSetup.decide(
                c.resolvConf, facts: .probe(image), network: c.network, ownAddresses: c.switches.ownAddresses ?? !host.networkdRunsHere, readOnly: treeUnwritten
            )
            : (nil, nil)
        let own = Configuration.processEnvironment("CREDENTIALS_DIRECTORY")
        let credentials = try c.credentials + c.credentialFiles.map { try $0.read(ownCredentials: own) }
        // The tree's passwd and group are read only for --bind-user, which the configuration
        // refuses without a user namespace.
        var boundUsers: [BoundUser] = []
        if let range, !c.bindUsers.isEmpty {
            boundUsers = try BoundUser.lookUp(
                c.bindUsers, range: range, treePasswd: UserDatabase.parsePasswd(image.readEtcFile("passwd")),
                treeGroups: UserDatabase.parseGroup(image.readEtcFile("group")))
        }
        var plan = try MachinePlan(
            configuration: c, host: host, image: image, treeMachineID: treeMachineID, idRange: range, randomID: .random(), credentials: credentials,
            journal: journal, timezone: timezone, resolvConf: resolvConf, boundUsers: boundUsers)
        // Handed over, the payload's parent is whoever reaps it, not us.
        plan.payload.diesWithSupervisor = handover == nil
        for warning in plan.warnings { printError(warning) }
        let confinement = try PayloadConfinement(plan.payload)
        // What the host and the tree get only once everything else has been checked: bad input
        // leaves them as they were.
        try journal?.prepare(image, quiet: c.quiet)
        if let timezoneNote, !c.quiet { printError(timezoneNote) }
        if case .write(let change) = timezone { try change.apply(to: "localtime", in: image, option: "--timezone", quiet: c.quiet) }
        if let resolvConfNote, !c.quiet { printError(resolvConfNote) }
        if case .write(let change) = resolvConf { try change.apply(to: "resolv.conf", in: image, option: "--resolv-conf", quiet: c.quiet) }

        // Made now that everything else has been checked; removed when the machine is gone.
        let overlayWork = try OverlayWorkDirectories(c.overlays)
        defer { overlayWork.remove() }

        var announced = plan.quiet
        while true {
            let handedOver = try MachineBoot.run(plan, confinement: confinement, handover: handover) {
                guard !announced else { return }
                announced = true
                printError("Spawning container \(image.name) on \(image.shown).")
                if plan.console == .interactive { printError("Press ^] three times within 1s to kill container.") }
            }
            guard let outcome = handedOver else { return 0 }
            let end = outcome.end
            if let verdict = outcome.bootTest {
                printError(verdict.report(machine: image.name, bootSeconds: outcome.bootSeconds))
                return verdict.exitStatus
            }
            // Killed by anything but poweroff (SIGINT) or reboot (SIGHUP) is an error, said even when quiet.
            var killedUnexpectedly = false
            if case .killed(let signal) = end { killedUnexpectedly = signal != SIGINT && signal != SIGHUP }
            if !plan.quiet || killedUnexpectedly { printError(MachineExitStatus.message(end, machine: image.name)) }
            switch MachineExitStatus.decide(end, keepUnit: plan.keepUnit) {
            case .exit(let status): return status
            case .reboot: continue
            }
        }
    }

    /// The configuration with the machine's .nspawn file read into it, where there is one and
    /// --settings= does not say no; its warnings said.
    private static func withSettingsFile(_ c: Configuration) throws -> Configuration {
        if let bundle = c.ociBundle {
            // A bundle's config.json takes the place of the .nspawn file, as with systemd-nspawn.
            guard c.options.directory == nil else { throw UserError("--oci-bundle= may not be combined with --directory=: the bundle names its root.") }
            let (configuration, _) = try OCIBundle.load(bundle).configuration(
                commandLine: c.options, override: false, environment: Configuration.processEnvironment)
            return configuration
        }
        guard c.settings != .no, let (name, directory) = MachineImage.settingsLocation(c),
            let (path, trusted, beside) = SettingsFile.find(name: name, besides: directory, trustAll: c.settings == .trusted)
        else { return c }
        let file = try SettingsFile.load(path, trusted: trusted, beside: beside)
        let (configuration, warnings) = try file.configuration(
            commandLine: c.options, override: c.settings == .override, environment: Configuration.processEnvironment)
        for warning in warnings { printError(warning) }
        return configuration
    }

    /// The machine's processes must not carry the audit login ID of whoever started swift-nspawn
    /// (it would attribute the guest's actions to them): unset it, as systemd-nspawn does. Only
    /// possible where audit is compiled in and we may (CAP_AUDIT_CONTROL); refuse, as systemd-nspawn
    /// does, when it is set and cannot be reset.
    private static func resetLoginUID() throws {
        guard let current = try? FileSystem.readFile("/proc/self/loginuid"), current != "4294967295" else { return }
        do {
            try FileSystem.write("4294967295", to: "/proc/self/loginuid")
        } catch {
            throw UserError("Failed to reset the audit login UID (\(error)); the machine would act in the name of login UID \(current). Refusing.")
        }
    }

    private static func idRange(_ c: Configuration, image: MachineImage, host: HostFacts) throws -> (UIDRange?, UIDRangeLock?) {
        switch c.userNamespace {
        case .no:
            return (nil, nil)
        case .identity:
            return (UIDRange(base: 0), nil)
        case .pick:
            let (range, lock) = try UIDRangeAllocator.pick(for: image.name, size: MachinePlan.pickedRangeSize(c), within: host.mappedIDs)
            return (range, lock)
        case .fixed(let range):
            return (range, try UIDRangeAllocator.claim(range))
        case .fromTree:
            let st = try FileSystem.stat(image.directory)
            let base = st.st_uid & 0xffff_0000
            guard st.st_gid & 0xffff_0000 == base else {
                throw UserError("UID and GID base of \(image.directory) don't match. Refusing.")
            }
            if base == 0 { return (UIDRange(base: 0), nil) }
            return (UIDRange(base: base), try UIDRangeAllocator.claim(UIDRange(base: base)))
        }
    }
}
