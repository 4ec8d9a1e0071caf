import Foundation
import Testing

@testable import NspawnCore

/// The sd-bus layer against a private dbus-daemon the test starts (and stops): calls, replies,
/// errors, signals, and every value type written and read back.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dbus-daemon"), "needs dbus-daemon (package dbus)"))
struct BusTests {
    /// A private dbus-daemon for the length of `body`, killed (SIGKILL: the test runner's threads may
    /// hold SIGTERM blocked, and the daemon inherits that) and reaped on every path.
    private func withPrivateBus(_ body: (String) throws -> Void) throws {
        // Its socket in a directory of ours: a killed daemon cannot remove it itself.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swift-nspawn-bus-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        daemon.arguments = ["--session", "--nofork", "--nopidfile", "--print-address=1", "--address=unix:path=\(directory.path)/bus"]
        let out = Pipe()
        daemon.standardOutput = out
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer {
            kill(daemon.processIdentifier, SIGKILL)
            daemon.waitUntilExit()
        }
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data([0x0a]) { line += byte }
        try body(String(decoding: line, as: UTF8.self))
    }

    private let dbus = (destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus")

    @Test func callsReturnTypedReplies() throws {
        try withPrivateBus { address in try callsReturnTypedReplies(address) }
    }

    private func callsReturnTypedReplies(_ address: String) throws {
        let bus = try Bus.connect(address: address)
        let unique = try #require(bus.uniqueName)
        let reply = try bus.call(destination: dbus.destination, path: dbus.path, interface: dbus.interface, member: "ListNames")
        guard case .array(element: "s", let names)? = reply.first else {
            Issue.record("ListNames replied \(reply)")
            return
        }
        #expect(names.contains(.string(unique)))
    }

    @Test func errorsNameTheCallAndTheDBusError() throws {
        try withPrivateBus { address in try errorsNameTheCallAndTheDBusError(address) }
    }

    private func errorsNameTheCallAndTheDBusError(_ address: String) throws {
        let bus = try Bus.connect(address: address)
        #expect {
            try bus.call(destination: dbus.destination, path: dbus.path, interface: dbus.interface, member: "NoSuchMethod")
        } throws: { error in
            guard let error = error as? BusError else { return false }
            return error.name == "org.freedesktop.DBus.Error.UnknownMethod"
                && error.description.hasPrefix("Failed to call org.freedesktop.DBus.NoSuchMethod: ")
        }
    }

    @Test func signalsArriveForASubscriptionMadeBeforeTheCall() throws {
        try withPrivateBus { address in try signalsArriveForASubscriptionMadeBeforeTheCall(address) }
    }

    private func signalsArriveForASubscriptionMadeBeforeTheCall(_ address: String) throws {
        let bus = try Bus.connect(address: address)
        let subscription = try bus.subscribe(sender: dbus.destination, path: dbus.path, interface: dbus.interface, member: "NameOwnerChanged")
        let reply = try bus.call(
            destination: dbus.destination, path: dbus.path, interface: dbus.interface, member: "RequestName", [.string("org.swiftnspawn.Test"), .uint32(0)])
        #expect(reply == [.uint32(1)])  // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
        let expected: [BusValue] = [.string("org.swiftnspawn.Test"), .string(""), .string(try #require(bus.uniqueName))]
        #expect(try bus.wait(timeoutSeconds: 5) { subscription.received.contains(expected) })
    }

    @Test func everyValueTypeIsWrittenAndReadBack() throws {
        try withPrivateBus { address in try everyValueTypeIsWrittenAndReadBack(address) }
    }

    private func everyValueTypeIsWrittenAndReadBack(_ address: String) throws {
        let bus = try Bus.connect(address: address)
        let message = try bus.methodCall(destination: "org.example", path: "/", interface: "org.example.I", member: "M")
        let values: [BusValue] = [
            .byte(7), .bool(true), .int32(-5), .uint32(5), .int64(-1 << 40), .uint64(1 << 60), .double(1.5),
            .string("héllo"), .objectPath("/org/freedesktop/systemd1"), .signature("a(sv)"),
            .array(element: "s", []), .array(element: "u", [.uint32(1), .uint32(2)]),
            .properties([("Delegate", .bool(true)), ("PIDs", .array(element: "u", [.uint32(42)]))]),
            .array(element: "{sv}", [.dictionaryEntry(.string("k"), .variant(.int32(3)))]),
            .array(element: "(sa(sv))", []),
        ]
        try message.append(values)
        try message.sealForReading()
        #expect(try message.readAll() == values)
    }
}
