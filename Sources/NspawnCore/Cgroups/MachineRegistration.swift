#if canImport(Glibc)
    import Glibc
#endif

/// Registration with systemd-machined, so machinectl lists the machine (v252's RegisterMachine: the
/// scope exists already; machined finds it from the leader's cgroup).
enum MachineRegistration {
    static let machined = (destination: "org.freedesktop.machine1", path: "/org/freedesktop/machine1", interface: "org.freedesktop.machine1.Manager")

    static func arguments(name: String, id: MachineID, service: String, leader: pid_t, root: String) -> [BusValue] {
        [
            .string(name), .array(element: "y", id.bytes.map { .byte($0) }), .string(service), .string("container"),
            .uint32(UInt32(leader)), .string(root),
        ]
    }

    /// Forgets the machine at its end, best effort: machined would otherwise still know the name when
    /// a unit restarts the machine at once (RestartForceExitStatus=133), and refuse it.
    static func unregister(bus: Bus, name: String) {
        _ = try? bus.call(destination: machined.destination, path: machined.path, interface: machined.interface, member: "UnregisterMachine", [.string(name)])
    }

    /// Registers, or returns false when machined is not there and `required` is false.
    static func register(bus: Bus, name: String, id: MachineID, service: String, leader: pid_t, root: String, required: Bool) throws -> Bool {
        var failure: BusError?
        do {
            _ = try bus.call(
                destination: machined.destination, path: machined.path, interface: machined.interface, member: "RegisterMachine",
                arguments(name: name, id: id, service: service, leader: leader, root: root))
        } catch {
            failure = error
        }
        guard let failure else { return true }
        let absent = ["org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"].contains(failure.name ?? "")
        if absent && !required { return false }
        throw failure
    }
}
