#if canImport(Glibc)
    import Glibc
#endif
import CSystemd

/// A connection to a D-Bus bus through sd-bus: method calls with typed arguments and replies,
/// and signal subscriptions that queue what arrives until the caller looks. Single-threaded, used
/// from the supervisor (or synchronously before its loop runs).
public final class Bus {
    let bus: OpaquePointer

    private init(_ bus: OpaquePointer) { self.bus = bus }

    deinit { sd_bus_flush_close_unref(bus) }

    /// The system bus (systemd and machined live there).
    public static func system() throws(BusError) -> Bus {
        try openLibrary()
        var bus: OpaquePointer?
        let r = sd_bus_open_system(&bus)
        guard r >= 0, let bus else { throw BusError(name: nil, message: "Failed to open system bus: \(String(cString: strerror(-r)))", call: nil) }
        return Bus(bus)
    }

    /// A bus at an address, such as "unix:path=/run/dbus/system_bus_socket" (tests use a private daemon).
    public static func connect(address: String) throws(BusError) -> Bus {
        try openLibrary()
        var bus: OpaquePointer?
        var r = sd_bus_new(&bus)
        guard r >= 0, let bus else { throw BusError(errno: -r, doing: "sd_bus_new") }
        let connection = Bus(bus)
        r = sd_bus_set_address(bus, address)
        if r >= 0 { r = sd_bus_set_bus_client(bus, 1) }
        if r >= 0 { r = sd_bus_start(bus) }
        if r < 0 { throw BusError(name: nil, message: "Failed to connect to bus \(address): \(String(cString: strerror(-r)))", call: nil) }
        return connection
    }

    private static func openLibrary() throws(BusError) {
        do { try SystemdLibrary.open() } catch { throw BusError(name: nil, message: error.description, call: nil) }
    }

    /// Our unique name on the bus (":1.42").
    public var uniqueName: String? {
        var name: UnsafePointer<CChar>?
        guard sd_bus_get_unique_name(bus, &name) >= 0, let name else { return nil }
        return String(cString: name)
    }

    public func methodCall(destination: String, path: String, interface: String, member: String) throws(BusError) -> BusMessage {
        var message: OpaquePointer?
        let r = sd_bus_message_new_method_call(bus, &message, destination, path, interface, member)
        guard r >= 0, let message else { throw BusError(errno: -r, doing: "new method call \(interface).\(member)") }
        return BusMessage(adopting: message)
    }

    /// Calls a method and returns the reply's values; a D-Bus error becomes a BusError naming the call.
    public func call(
        destination: String, path: String, interface: String, member: String, _ arguments: [BusValue] = [], timeoutSeconds: Double = 25
    ) throws(BusError) -> [BusValue] {
        let message = try methodCall(destination: destination, path: path, interface: interface, member: member)
        try message.append(arguments)
        return try call(message, name: "\(interface).\(member)", timeoutSeconds: timeoutSeconds).readAll()
    }

    func call(_ message: BusMessage, name: String, timeoutSeconds: Double) throws(BusError) -> BusMessage {
        var error = sd_bus_error()
        defer { sd_bus_error_free(&error) }
        var reply: OpaquePointer?
        let r = sd_bus_call(bus, message.message, UInt64(timeoutSeconds * 1_000_000), &error, &reply)
        guard r >= 0, let reply else {
            let text = error.message.map { String(cString: $0) } ?? String(cString: strerror(-r))
            throw BusError(name: error.name.map { String(cString: $0) }, message: text, call: name)
        }
        return BusMessage(adopting: reply)
    }

    /// Subscribes to a signal; what arrives waits in the subscription until read. Subscribe before
    /// the call whose signal you wait for (systemd's JobRemoved can come before the call returns).
    public func subscribe(sender: String?, path: String?, interface: String, member: String) throws(BusError) -> SignalSubscription {
        let subscription = SignalSubscription()
        var slot: OpaquePointer?
        let r = sd_bus_match_signal(
            bus, &slot, sender, path, interface, member,
            { message, userdata, _ in
                guard let message, let userdata else { return 0 }
                let subscription = Unmanaged<SignalSubscription>.fromOpaque(userdata).takeUnretainedValue()
                let wrapped = BusMessage(adopting: sd_bus_message_ref(message))
                if let values = try? wrapped.readAll() { subscription.received.append(values) }
                return 0
            }, Unmanaged.passUnretained(subscription).toOpaque())
        guard r >= 0, let slot else { throw BusError(errno: -r, doing: "match \(interface).\(member)") }
        subscription.slot = slot
        return subscription
    }

    /// Processes incoming messages until `done` holds or the time is up (then false).
    public func wait(timeoutSeconds: Double, until done: () -> Bool) throws(BusError) -> Bool {
        let deadline = Clock.monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while !done() {
            let r = sd_bus_process(bus, nil)
            if r < 0 { throw BusError(errno: -r, doing: "process") }
            if r > 0 { continue }
            let now = Clock.monotonicNanoseconds()
            guard now < deadline else { return done() }
            let w = sd_bus_wait(bus, (deadline - now) / 1000)
            if w < 0 && w != -EINTR { throw BusError(errno: -w, doing: "wait") }
        }
        return true
    }
}

/// The signals received for one match, as their values, oldest first.
public final class SignalSubscription {
    fileprivate(set) var received: [[BusValue]] = []
    fileprivate var slot: OpaquePointer?

    deinit { if let slot { sd_bus_slot_unref(slot) } }
}
