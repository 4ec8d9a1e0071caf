import Foundation
import Testing

/// Two network namespaces of the test's own: "host", where swift-nspawn runs (so its links,
/// addresses, forwarding sysctl and nftables tables are made there, never on the real host), and
/// "lan", a client on the host's network, linked to it by a veth (198.51.100.1 ↔ .2, TEST-NET-2;
/// 2001:db8::1 ↔ ::2, the documentation prefix).
/// No traffic leaves them. Both are deleted, with every link in them, when the value goes away.
final class TestNetwork {
    let host: String
    let lan: String
    static let hostAddress = "198.51.100.1"
    static let lanAddress = "198.51.100.2"
    static let hostAddress6 = "2001:db8::1"
    static let lanAddress6 = "2001:db8::2"

    init() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        host = "sn-host-\(tag)"
        lan = "sn-lan-\(tag)"
        for namespace in [host, lan] {
            try Self.ip(["netns", "add", namespace])
            try Self.ip(["-n", namespace, "link", "set", "lo", "up"])
        }
        try Self.ip(["-n", host, "link", "add", "uplink", "type", "veth", "peer", "name", "lan0", "netns", lan])
        try Self.ip(["-n", host, "addr", "add", Self.hostAddress + "/24", "dev", "uplink"])
        try Self.ip(["-n", host, "link", "set", "uplink", "up"])
        try Self.ip(["-n", lan, "addr", "add", Self.lanAddress + "/24", "dev", "lan0"])
        try Self.ip(["-n", lan, "link", "set", "lan0", "up"])
        try Self.ip(["-n", lan, "route", "add", "default", "via", Self.hostAddress])
        try Self.ip(["-n", host, "addr", "add", Self.hostAddress6 + "/64", "dev", "uplink", "nodad"])
        try Self.ip(["-n", lan, "addr", "add", Self.lanAddress6 + "/64", "dev", "lan0", "nodad"])
        try Self.ip(["-n", lan, "-6", "route", "add", "default", "via", Self.hostAddress6])
        // IPv6 forwarding in the test's host namespace, as a host routing for its machines has it
        // (swift-nspawn sets only IPv4's itself).
        let forwarding = try Self.run(["/usr/bin/nsenter", "--net=/run/netns/\(host)", "/bin/sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"])
        guard forwarding.status == 0 else { throw TestNetworkError(text: "IPv6 forwarding in \(host): \(forwarding.stderr)") }
    }

    deinit {
        for namespace in [host, lan] { _ = try? Self.run(["/usr/bin/ip", "netns", "del", namespace]) }
    }

    /// What swift-nspawn runs under: its network namespace is the test's host. (nsenter, not
    /// `ip netns exec`, which would mount a sysfs over the host's cgroup2 mount.)
    var prefix: [String] { ["/usr/bin/nsenter", "--net=/run/netns/\(host)"] }

    /// Runs swift-nspawn on the tree in the test's host namespace.
    func nspawn(_ machine: TestMachine, _ options: [String], _ command: [String], timeout: TimeInterval = 20) throws -> RunResult {
        try runNspawn(["-D", machine.path, "-P", "-q", "--register=no"] + options + command, timeout: timeout, prefix: prefix)
    }

    /// Everything a run could leave in the host namespace: links (with their masters), addresses,
    /// routes, nftables tables. (The forwarding sysctl is not: once set, it stays set, by design.)
    func state() throws -> [String] {
        try Self.ip(["-n", host, "-o", "link"]).sorted()
            // An address's duplicate detection ending meanwhile is not a change of ours.
            + Self.ip(["-n", host, "-o", "addr"]).map { $0.replacingOccurrences(of: " tentative", with: "") }.sorted() + Self.ip(["-n", host, "route"])
            + tables()
    }

    /// Records what changed since `before`, line by line. The kernel removes a machine's veth
    /// with its network namespace, a moment after swift-nspawn ends: that moment is waited for
    /// (at most two seconds).
    func expectUnchanged(since before: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        var after = try state()
        let deadline = Date().addingTimeInterval(2)
        while after != before && Date() < deadline {
            usleep(20_000)
            after = try state()
        }
        let gone = before.filter { !after.contains($0) }
        let new = after.filter { !before.contains($0) }
        #expect(gone.isEmpty && new.isEmpty, "gone: \(gone) new: \(new)", sourceLocation: sourceLocation)
    }

    func tables() throws -> [String] {
        try Self.run(["/usr/bin/ip", "netns", "exec", host, "/usr/sbin/nft", "list", "tables"]).lines
    }

    /// A command in one of the namespaces (the host's through nsenter, so /sys stays as it is).
    @discardableResult
    func exec(in namespace: String, _ command: [String], timeout: TimeInterval = 10) throws -> RunResult {
        try Self.run(["/usr/bin/nsenter", "--net=/run/netns/\(namespace)"] + command, timeout: timeout)
    }

    /// A process in a namespace that the test ends itself (a server).
    func start(in namespace: String, _ command: [String], output: URL) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments = ["--net=/run/netns/\(namespace)"] + command
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> [String] {
        let result = try run(["/usr/bin/ip"] + arguments)
        guard result.status == 0 else { throw TestNetworkError(text: "ip \(arguments.joined(separator: " ")): \(result.stderr)") }
        return result.lines
    }

    static func run(_ command: [String], timeout: TimeInterval = 10) throws -> RunResult {
        try runNspawn(Array(command.dropFirst()), timeout: timeout, binary: command[0])
    }

    struct TestNetworkError: Error, CustomStringConvertible {
        var text: String
        var description: String { text }
    }
}

/// Ends a server process a test started, by its pid, and waits for it.
func stop(_ process: Process) {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}
