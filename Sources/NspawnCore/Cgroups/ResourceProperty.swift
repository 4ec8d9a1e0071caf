/// --property=NAME=VALUE: the resource settings people use on a machine, typed. Each becomes a
/// property of the machine's scope on a systemd host, or a cgroup file written directly elsewhere.
public enum ResourceProperty: Equatable, Sendable {
    case memoryMax(UInt64?), memoryHigh(UInt64?), memorySwapMax(UInt64?), memoryMin(UInt64?), memoryLow(UInt64?)
    case tasksMax(UInt64?)
    /// Percent of one CPU.
    case cpuQuota(UInt64)
    case cpuWeight(UInt64), ioWeight(UInt64)
    case allowedCPUs([Int]), allowedMemoryNodes([Int])

    public static let names = [
        "MemoryMax", "MemoryHigh", "MemorySwapMax", "MemoryMin", "MemoryLow", "TasksMax", "CPUQuota", "CPUWeight", "IOWeight",
        "AllowedCPUs", "AllowedMemoryNodes",
    ]

    public static func parse(_ assignment: String) throws(UserError) -> ResourceProperty {
        guard let equals = assignment.firstIndex(of: "=") else { throw UserError("--property= takes NAME=VALUE, got: \(assignment)") }
        let name = String(assignment[..<equals]), value = String(assignment[assignment.index(after: equals)...])
        func bad() -> UserError { UserError("Invalid value for --property=\(name)=: \(value)") }
        switch name {
        case "MemoryMax", "MemoryHigh", "MemorySwapMax", "MemoryMin", "MemoryLow":
            guard let bytes = parseBytes(value) else { throw bad() }
            switch name {
            case "MemoryMax": return .memoryMax(bytes)
            case "MemoryHigh": return .memoryHigh(bytes)
            case "MemorySwapMax": return .memorySwapMax(bytes)
            case "MemoryMin": return .memoryMin(bytes)
            default: return .memoryLow(bytes)
            }
        case "TasksMax":
            if value == "infinity" { return .tasksMax(nil) }
            guard let n = UInt64(value), n > 0 else { throw bad() }
            return .tasksMax(n)
        case "CPUQuota":
            // Up to 1024 CPUs' worth: beyond, the microsecond arithmetic would overflow.
            guard value.hasSuffix("%"), let percent = UInt64(value.dropLast()), (1...102_400).contains(percent) else { throw bad() }
            return .cpuQuota(percent)
        case "CPUWeight", "IOWeight":
            guard let weight = UInt64(value), (1...10000).contains(weight) else { throw bad() }
            return name == "CPUWeight" ? .cpuWeight(weight) : .ioWeight(weight)
        case "AllowedCPUs", "AllowedMemoryNodes":
            guard let list = parseList(value) else { throw bad() }
            return name == "AllowedCPUs" ? .allowedCPUs(list) : .allowedMemoryNodes(list)
        default:
            throw UserError("Unknown or unsupported --property=\(name)=; known: \(names.joined(separator: ", ")).")
        }
    }

    /// "64M", "2G", "4096", "infinity" (nil); K/M/G/T are powers of 1024, as systemd reads them.
    static func parseBytes(_ text: String) -> UInt64?? {
        if text == "infinity" { return .some(nil) }
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        let (digits, factor) = text.last.flatMap { units[$0] }.map { (text.dropLast(), $0) } ?? (Substring(text), 1)
        guard let number = UInt64(digits) else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : .some(bytes)
    }

    /// "0-3,5" → [0, 1, 2, 3, 5].
    static func parseList(_ text: String) -> [Int]? {
        var result: [Int] = []
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard let first = bounds.first ?? nil, bounds.count <= 2, first >= 0 else { return nil }
            let last = bounds.count == 2 ? (bounds[1] ?? -1) : first
            guard last >= first, last < 4096 else { return nil }
            result += Array(first...last)
        }
        return result.isEmpty ? nil : result
    }

    /// The scope property systemd knows this as.
    var busProperty: (String, BusValue) {
        func limit(_ v: UInt64?) -> BusValue { .uint64(v ?? UInt64.max) }
        func mask(_ list: [Int]) -> BusValue {
            var bytes = [UInt8](repeating: 0, count: (list.max() ?? 0) / 8 + 1)
            for bit in list { bytes[bit / 8] |= 1 << UInt8(bit % 8) }
            return .array(element: "y", bytes.map { .byte($0) })
        }
        switch self {
        case .memoryMax(let v): return ("MemoryMax", limit(v))
        case .memoryHigh(let v): return ("MemoryHigh", limit(v))
        case .memorySwapMax(let v): return ("MemorySwapMax", limit(v))
        case .memoryMin(let v): return ("MemoryMin", limit(v))
        case .memoryLow(let v): return ("MemoryLow", limit(v))
        case .tasksMax(let v): return ("TasksMax", limit(v))
        case .cpuQuota(let percent): return ("CPUQuotaPerSecUSec", .uint64(percent * 10_000))
        case .cpuWeight(let w): return ("CPUWeight", .uint64(w))
        case .ioWeight(let w): return ("IOWeight", .uint64(w))
        case .allowedCPUs(let list): return ("AllowedCPUs", mask(list))
        case .allowedMemoryNodes(let list): return ("AllowedMemoryNodes", mask(list))
        }
    }

    /// The cgroup2 file, its content, and the controller it needs, for a host without systemd.
    var cgroupFile: (file: String, value: String, controller: String) {
        func limit(_ v: UInt64?) -> String { v.map(String.init) ?? "max" }
        func list(_ l: [Int]) -> String { l.map(String.init).joined(separator: ",") }
        switch self {
        case .memoryMax(let v): return ("memory.max", limit(v), "memory")
        case .memoryHigh(let v): return ("memory.high", limit(v), "memory")
        case .memorySwapMax(let v): return ("memory.swap.max", limit(v), "memory")
        case .memoryMin(let v): return ("memory.min", limit(v), "memory")
        case .memoryLow(let v): return ("memory.low", limit(v), "memory")
        case .tasksMax(let v): return ("pids.max", limit(v), "pids")
        case .cpuQuota(let percent): return ("cpu.max", "\(percent * 1000) 100000", "cpu")
        case .cpuWeight(let w): return ("cpu.weight", "\(w)", "cpu")
        case .ioWeight(let w): return ("io.weight", "default \(w)", "io")
        case .allowedCPUs(let l): return ("cpuset.cpus", list(l), "cpuset")
        case .allowedMemoryNodes(let l): return ("cpuset.mems", list(l), "cpuset")
        }
    }
}
