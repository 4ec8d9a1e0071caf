#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// The messages between the supervisor and its two children while a machine is set up.
enum SetupMessage: UInt8 {
    /// Supervisor → PID 1: the ID maps are written; go on as the machine's root.
    case proceed = 1
    /// PID 1 → outer child: the detached API file system mounts, in the plan's order.
    case apiMounts
    /// Outer child → PID 1: the finished mount namespace (and the console's pty peer).
    case mountNamespace
    /// Outer child → supervisor: the tree is built (with the console's pty master).
    case treeReady
    /// Supervisor → PID 1: the device filter is on the machine's cgroup; go on to the machine's program.
    case devicesFiltered
    /// PID 1 → supervisor (the OCI runtime's `create`): its machine is finished, its program found
    /// (and its seccomp profile's listener, when the profile has one).
    case atStartGate
    /// Supervisor → PID 1: the machine is recorded where `delete` finds it; no longer die with us.
    case recorded
    /// PID 1 → supervisor: it no longer dies with us, and goes to wait at the start gate.
    case detached
    /// A process the OCI runtime's `exec` starts → `exec`: its seccomp profile's listener.
    case seccompListener
    /// `exec` → the process: the agent has the listener; go on to the exec.
    case listenerHandedOn
}

/// One end of a SOCK_SEQPACKET socketpair: message boundaries are kept, descriptors travel with
/// SCM_RIGHTS, and a peer's death reads as end of file, so no wait outlives the other side.
final class SetupChannel {
    let fd: OwnedFD

    private init(_ fd: Int32) { self.fd = OwnedFD(fd) }

    static func pair() throws(SyscallError) -> (SetupChannel, SetupChannel) {
        var fds: [Int32] = [-1, -1]
        try sys("socketpair") { socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
        return (SetupChannel(fds[0]), SetupChannel(fds[1]))
    }

    /// Sends a message with copies of the given descriptors (they stay open here until released).
    /// `peer` names the other side for the error when it died first (and has said why itself).
    func send(_ message: SetupMessage, fds: [OwnedFD] = [], to peer: String) throws {
        var tag = message.rawValue
        let raw = fds.map(\.raw)
        defer { withExtendedLifetime(fds) {} }
        do {
            try sys("sendmsg") { nsp_send_with_fds(fd.raw, &tag, 1, raw, Int32(raw.count)) }
        } catch {
            if [.brokenPipe, .connectionReset, .connectionRefused].contains(error.errno) { throw SetupAborted(peer: peer) }
            throw error
        }
    }

    /// receive(), waiting at most `seconds` for the message to come.
    func receive(_ expected: SetupMessage, from peer: String, within seconds: Int32) throws -> [OwnedFD] {
        var poller = [pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)]
        while true {
            let ready = poll(&poller, 1, seconds * 1000)
            if ready > 0 { return try receive(expected, from: peer) }
            if ready == 0 { throw UserError("\(peer) did not answer within \(seconds) s.") }
            if errno != EINTR { throw SyscallError.last("poll") }
        }
    }

    /// Waits for the expected message. `peer` names the other side for the error when it died first.
    func receive(_ expected: SetupMessage, from peer: String) throws -> [OwnedFD] {
        var tag: UInt8 = 0
        var fds = [Int32](repeating: -1, count: 8)
        var count: Int32 = 0
        let n = nsp_recv_with_fds(fd.raw, &tag, 1, &fds, 8, &count)
        let received = fds.prefix(Int(count)).map(OwnedFD.init)
        // End of file, or a reset: the peer died, and said why itself.
        if n == 0 || (n < 0 && errno == ECONNRESET) { throw SetupAborted(peer: peer) }
        if n < 0 { throw SyscallError.last("recvmsg") }
        guard tag == expected.rawValue else {
            throw UserError("Setup protocol error: expected message \(expected) from \(peer), got \(tag).")
        }
        return received
    }
}

/// The other side of a setup channel went away; it has already said why on standard error.
struct SetupAborted: Error, CustomStringConvertible {
    var peer: String
    var description: String { "\(peer) died too early." }
}
