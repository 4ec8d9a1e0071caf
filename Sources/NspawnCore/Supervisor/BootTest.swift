/// --boot-test: did the tree boot? Decided from the guest manager's READY=1 and, once it came,
/// from `systemctl` run inside the machine.
public enum BootTestVerdict: Equatable, Sendable {
    case running
    case degraded(failedUnits: [String])
    case timedOut(seconds: Int)
    /// The machine ended, or its manager is in a state other than running or degraded.
    case failed(String)

    /// Documented in swift-nspawn(1); 1 stays "swift-nspawn itself failed".
    public var exitStatus: Int32 {
        switch self {
        case .running: 0
        case .degraded: 2
        case .timedOut: 3
        case .failed: 4
        }
    }

    public func report(machine: String, bootSeconds: Double?) -> String {
        let time = bootSeconds.map { " in \(Self.format($0)) s" } ?? ""
        switch self {
        case .running: return "Boot test of \(machine): running, up\(time)."
        case .degraded(let units) where units.isEmpty: return "Boot test of \(machine): degraded, up\(time)."
        case .degraded(let units): return "Boot test of \(machine): degraded, up\(time); failed units: \(units.joined(separator: " "))."
        case .timedOut(let seconds): return "Boot test of \(machine): not up after \(seconds) s."
        case .failed(let why): return "Boot test of \(machine): failed: \(why)."
        }
    }

    /// From `systemctl is-system-running` and `systemctl list-units --failed --plain --no-legend`.
    public static func from(systemState: String, failedUnitsListing: String) -> BootTestVerdict {
        let state = systemState.trimmingCharacters(in: " \n")
        let units = failedUnitsListing.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        switch state {
        case "running": return units.isEmpty ? .running : .degraded(failedUnits: units)
        case "degraded": return .degraded(failedUnits: units)
        default: return .failed("the system is \(state.isEmpty ? "in an unknown state" : state)")
        }
    }

    static func format(_ seconds: Double) -> String {
        let hundredths = Int((seconds * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
