#if canImport(Glibc)
    import Glibc
#endif

/// The machine's scope unit on a systemd host, as systemd-nspawn allocates it (reference §3):
/// StartTransientUnit over sd-bus with the machine's PID, Delegate=yes and DevicePolicy=closed,
/// waiting for the job's JobRemoved signal (subscribed before the call) and checking its result.
enum SystemdScope {
    /// systemd's unit_name_escape(): "-" and anything outside [A-Za-z0-9:_.] (and a leading ".")
    /// become \xNN, so that machine "my-box" gets machine-my\x2dbox.scope as with machined.
    static func escape(_ name: String) -> String {
        var result = ""
        for (index, byte) in name.utf8.enumerated() {
            let allowed =
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "_") || (byte == UInt8(ascii: ".") && index > 0)
            if allowed {
                result.append(Character(UnicodeScalar(byte)))
            } else {
                let hex = Array("0123456789abcdef")
                result += "\\x" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xf)])
            }
        }
        return result
    }

    static let manager = (destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager")

    /// StartTransientUnit's arguments: name, mode, properties a(sv), auxiliary units a(sa(sv)).
    /// `leader` is the PIDFDs property (systemd ≥ 253) or the PIDs one. `outlivesUs`: the OCI
    /// runtime's scope, which stays when `create` ends; any other is referenced by our bus
    /// connection, so that when we go (even SIGKILLed), so does it.
    /// `devices`: paths of an OCI bundle's devices, allowed rwm besides the ptys.
    static func startArguments(
        unit: String, leader: (name: String, value: BusValue), slice: String, description: String, properties: [ResourceProperty] = [],
        devices: [String] = [], outlivesUs: Bool = false
    ) -> [BusValue] {
        [
            .string(unit), .string("fail"),
            .properties(
                [
                    (leader.name, leader.value),
                    ("Description", .string(description)),
                    ("Slice", .string(slice)),
                    ("Delegate", .bool(true)),
                    ("CollectMode", .string("inactive-or-failed")),
                ] + (outlivesUs ? [] : [("AddRef", .bool(true))]) + [
                    ("DevicePolicy", .string("closed")),
                    (
                        "DeviceAllow",
                        .array(
                            element: "(ss)", [.structure([.string("char-pts"), .string("rw")])] + devices.map { .structure([.string($0), .string("rwm")]) })
                    ),
                ] + properties.map(\.busProperty)),
            .array(element: "(sa(sv))", []),
        ]
    }

    /// Starts the scope and returns its cgroup path (below the cgroup2 root) once systemd says done.
    static func start(
        bus: Bus, unit: String, machine: ChildProcess, slice: String, description: String, properties: [ResourceProperty], devices: [String] = [],
        outlivesUs: Bool = false
    ) throws -> String {
        let jobs = try bus.subscribe(sender: manager.destination, path: manager.path, interface: manager.interface, member: "JobRemoved")
        func startTransientUnit(_ leader: (name: String, value: BusValue)) throws(BusError) -> [BusValue] {
            // A machine that rebooted in-process asks for its scope again while systemd may still be
            // collecting the old one (emptied a moment ago): give that a bounded moment.
            var attempt = 0
            while true {
                do {
                    return try bus.call(
                        destination: manager.destination, path: manager.path, interface: manager.interface, member: "StartTransientUnit",
                        startArguments(
                            unit: unit, leader: leader, slice: slice, description: description, properties: properties, devices: devices,
                            outlivesUs: outlivesUs))
                } catch {
                    attempt += 1
                    guard error.name == "org.freedesktop.systemd1.UnitExists", attempt < 40 else { throw error }
                    _ = try bus.wait(timeoutSeconds: 0.05) { false }
                }
            }
        }
        var reply: [BusValue] = []
        var failure: BusError?
        do {
            reply = try startTransientUnit(("PIDFDs", .array(element: "h", [.fileDescriptor(machine.pidfd.raw)])))
        } catch {
            failure = error
        }
        if let failure {
            // systemd before 253 knows only PIDs (it says so by name, or in the message).
            let unknown = ["org.freedesktop.DBus.Error.PropertyReadOnly", "org.freedesktop.DBus.Error.UnknownProperty"].contains(failure.name ?? "")
            guard unknown || failure.message.contains(text: "PIDFDs") else { throw failure }
            reply = try startTransientUnit(("PIDs", .array(element: "u", [.uint32(UInt32(machine.pid))])))
        }
        guard case .objectPath(let job)? = reply.first else { throw UserError("StartTransientUnit for \(unit) replied \(reply).") }
        // JobRemoved(u id, o job, s unit, s result)
        let done = try bus.wait(timeoutSeconds: 25) { jobs.received.contains { $0.count == 4 && $0[1] == .objectPath(job) } }
        guard done, let signal = jobs.received.first(where: { $0[1] == .objectPath(job) }) else {
            throw UserError("Timed out waiting for systemd to start \(unit).")
        }
        guard signal[3] == .string("done") else {
            throw UserError("Failed to start \(unit): job \(signal[3].stringValue ?? "?").")
        }
        let cgroup = try FileSystem.readFile("/proc/\(machine.pid)/cgroup")
        guard let line = cgroup.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else {
            throw UserError("The machine's PID 1 is in no cgroup2 cgroup after \(unit) started.")
        }
        return String(line.dropFirst(3))
    }
}
