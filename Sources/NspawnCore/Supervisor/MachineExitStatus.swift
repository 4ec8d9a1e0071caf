/// How the end of the machine's PID 1 becomes swift-nspawn's own exit, as systemd-nspawn maps it
/// (reference §5): a PID namespace's init is killed by SIGINT when the guest powers off and by
/// SIGHUP when it reboots.
public enum MachineExitStatus {
    public enum PID1End: Equatable, Sendable {
        case exited(Int32)
        case killed(Int32)
    }

    public enum Decision: Equatable, Sendable {
        case exit(Int32)
        /// Boot the machine again in this process.
        case reboot
    }

    /// The exit status a unit's RestartForceExitStatus= turns into a restart.
    public static let rebootRequested: Int32 = 133

    public static func decide(_ end: PID1End, keepUnit: Bool) -> Decision {
        switch end {
        // 133 is reserved for "reboot me"; a payload that exits with it must not trigger a restart.
        case .exited(let code): return .exit(code == rebootRequested ? 1 : code)
        case .killed(2): return .exit(0)  // SIGINT: power off
        case .killed(1): return keepUnit ? .exit(rebootRequested) : .reboot  // SIGHUP: reboot
        case .killed: return .exit(1)
        }
    }

    /// The line systemd-nspawn prints when the machine ends.
    public static func message(_ end: PID1End, machine: String) -> String {
        switch end {
        case .exited(0): return "Container \(machine) exited successfully."
        case .exited(let code): return "Container \(machine) failed with error code \(code)."
        case .killed(2): return "Container \(machine) has been shut down."
        case .killed(1): return "Container \(machine) is being rebooted."
        case .killed(let signal): return "Container \(machine) terminated by signal \(SignalName.name(signal))."
        }
    }
}
