#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import CSystemd

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

    private static func boot(_ c: Configuration) throws -> Int32 {
        guard geteuid() == 0 else { throw UserError("Need to be root.") }
        var register = c.register
        let systemdHost = sd_booted() > 0
        if register == .yes && !systemdHost {
            throw UserError("--register=yes: this host does not run systemd, so there is no systemd-machined to register with; use --register=auto or no.")
        }
        // From a login session, our "unit" is the user's session scope: registering it as the machine
        // would let machinectl terminate the session (systemd-nspawn refuses the same).
        if c.keepUnit && systemdHost && ((try? MachineCgroup.ownPath())?.hasPrefix("/user.slice/") ?? false) {
            guard register != .yes else { throw UserError("--keep-unit --register=yes may not be used when invoked from a user session.") }
            register = .no
        }
        let image = try MachineImage.locate(c)
        try image.requireMountPoints()
        if c.boot { try image.requireOSRelease() }
        for bind in c.binds where !FileSystem.exists(bind.source) {
            throw UserError("Failed to resolve bind source \(bind.source): \(SyscallError.last("stat").errno.message)")
        }
        let treeLock = try ImageLock(image, readOnly: c.readOnly)
        try resetLoginUID()
        let (range, rangeLock) = try idRange(c, image: image)
        defer {
            rangeLock?.release()
            _ = treeLock
        }

        let stdinTTY = isatty(0) != 0, stdoutTTY = isatty(1) != 0
        // A boot test shows the boot but takes no input.
        let defaultConsole: ConsoleMode = c.bootTestTimeout != nil ? .readOnly : .defaultMode(stdinIsTerminal: stdinTTY, stdoutIsTerminal: stdoutTTY)
        let console = (c.console ?? defaultConsole)
            .resolved(stdinIsTerminal: stdinTTY, stdoutIsTerminal: stdoutTTY)
        let quiet = c.quiet || console == .pipe
        var capabilities = c.capabilities
        if range == nil {
            let lost = capabilities.limit(to: CapabilityPolicy.held())
            if !lost.isEmpty && !quiet { printError("swift-nspawn itself lacks \(lost); the machine does without.") }
        }
        let seccomp = c.seccomp ? try SeccompFilter.load(SeccompPolicy(capabilities: capabilities.bounding, filters: c.systemCallFilters)) : nil
        // A valid machine-id in the tree wins over --uuid, as with systemd-nspawn; none is ever written.
        let machineID = image.machineID() ?? c.uuid ?? .random()
        let hostOSRelease = ["/etc/os-release", "/usr/lib/os-release"].first(where: FileSystem.exists)
        let spec = MachineSpec(
            image: image, hostname: c.hostname ?? image.name, machineID: machineID, idRange: range,
            // A tree already owned by its range (--private-users=yes) must not be shifted a second time.
            ownership: c.userNamespace == .fromTree ? .off : c.ownership, nestedUserNamespaces: c.nestedUserNamespaces, privateNetwork: c.privateNetwork,
            console: console,
            plan: MountPlan(configuration: c, machineID: machineID, console: console, hostOSRelease: hostOSRelease),
            payload: PayloadSpec(
                command: c.command, environment: c.environment, user: c.user, workingDirectory: c.workingDirectory,
                asPID2: c.asPID2, boot: c.boot, capabilities: capabilities, seccomp: seccomp, machineID: machineID,
                term: console == .pipe ? Configuration.processEnvironment("TERM") : Configuration.processEnvironment("TERM") ?? "vt220"),
            killSignal: c.killSignal, notifyReady: c.notifyReady, bootTestTimeout: c.bootTestTimeout,
            keepUnit: c.keepUnit, register: register, slice: c.slice, properties: c.properties, quiet: quiet)

        var announced = spec.quiet
        while true {
            let outcome = try MachineBoot.run(spec) {
                guard !announced else { return }
                announced = true
                printError("Spawning container \(image.name) on \(image.path).")
                if console == .interactive { printError("Press ^] three times within 1s to kill container.") }
            }
            let end = outcome.end
            if let verdict = outcome.bootTest {
                printError(verdict.report(machine: image.name, bootSeconds: outcome.bootSeconds))
                return verdict.exitStatus
            }
            // Killed by anything but poweroff (SIGINT) or reboot (SIGHUP) is an error, said even when quiet.
            var killedUnexpectedly = false
            if case .killed(let signal) = end { killedUnexpectedly = signal != SIGINT && signal != SIGHUP }
            if !spec.quiet || killedUnexpectedly { printError(MachineExitStatus.message(end, machine: image.name)) }
            switch MachineExitStatus.decide(end, keepUnit: c.keepUnit) {
            case .exit(let status): return status
            case .reboot: continue
            }
        }
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

    private static func idRange(_ c: Configuration, image: MachineImage) throws -> (UIDRange?, UIDRangeLock?) {
        switch c.userNamespace {
        case .no:
            return (nil, nil)
        case .identity:
            return (UIDRange(base: 0), nil)
        case .pick:
            let (range, lock) = try UIDRangeAllocator.pick(for: image.name)
            return (range, lock)
        case .fixed(let range):
            return (range, try UIDRangeAllocator.claim(range))
        case .fromTree:
            let st = try FileSystem.stat(image.path)
            let base = st.st_uid & 0xffff_0000
            guard st.st_gid & 0xffff_0000 == base else {
                throw UserError("UID and GID base of \(image.path) don't match. Refusing.")
            }
            if base == 0 { return (UIDRange(base: 0), nil) }
            return (UIDRange(base: base), try UIDRangeAllocator.claim(UIDRange(base: base)))
        }
    }
}
