#if canImport(Glibc)
    import Glibc
#endif
import SystemPackage
import CNspawnShim

/// A request the kernel refused: what was asked, of what, errno, and the kernel's own words from
/// its extended acknowledgement when it gave them.
struct NetlinkError: Error, CustomStringConvertible, Equatable {
    var operation: String
    var errno: Errno
    var detail: String?

    /// ENODEV, or ENOENT: no link of that name.
    var isMissingLink: Bool { errno.rawValue == ENODEV || errno.rawValue == ENOENT }

    var description: String {
        "\(operation): \(errno.message)" + (detail.map { " (\($0))" } ?? "")
    }
}

/// A netlink socket of one protocol (rtnetlink, nfnetlink), bound to the network namespace it was
/// opened in for its whole life. Requests are answered in order; every request asks for an
/// acknowledgement, so each one's error is its own.
final class NetlinkSocket {
    static let route: Int32 = 0
    static let netfilter: Int32 = 12

    let fd: OwnedFD
    private var sequence: UInt32 = 0

    /// Opens the socket in the current network namespace, or in the one `namespace` refers to (we
    /// step into it just for socket(2): the socket stays there, we come back).
    init(protocol proto: Int32, namespace: OwnedFD? = nil) throws {
        let open = { () throws(SyscallError) in
            OwnedFD(try sys("socket", path: "netlink") { socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto) })
        }
        fd = try namespace.map { namespace in try NetworkNamespace.within(namespace) { try open() } } ?? open()
        // Bound now (the kernel picks our port ID): an unbound socket hears no multicast group.
        var address: [UInt8] = UInt16(AF_NETLINK).littleEndianBytes + [UInt8](repeating: 0, count: 10)  // struct sockaddr_nl
        try sys("bind", path: "netlink") {
            address.withUnsafeMutableBytes { bind(fd.raw, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
        }
        // The kernel answers at once; a bound on the wait all the same, so no request hangs us.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(fd.raw, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var on: Int32 = 1
        // NETLINK_EXT_ACK (the kernel's message with an error) and NETLINK_CAP_ACK (errors without
        // the whole request echoed back), both SOL_NETLINK; absent on old kernels, which is fine.
        _ = setsockopt(fd.raw, 270, 11, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd.raw, 270, 10, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { fd.close() }

    /// Sends one request and waits for its acknowledgement. `operation` names it in the error.
    func perform(_ message: NetlinkMessage, _ operation: @autoclosure () -> String) throws {
        _ = try exchange([message], operation)
    }

    /// Sends one request and returns what the kernel answered before its acknowledgement.
    func request(_ message: NetlinkMessage, _ operation: @autoclosure () -> String) throws -> [NetlinkReply] {
        try exchange([message], operation)
    }

    /// Sends a dump request and returns every message of the answer.
    func dump(_ message: NetlinkMessage, _ operation: @autoclosure () -> String) throws -> [NetlinkReply] {
        try exchange([message], operation)
    }

    /// Sends the messages as one datagram (an nfnetlink batch) and waits for each acknowledgement;
    /// the first refusal is thrown.
    func performBatch(_ messages: [NetlinkMessage], _ operation: @autoclosure () -> String) throws {
        _ = try exchange(messages, operation)
    }

    private func exchange(_ messages: [NetlinkMessage], _ operation: () -> String) throws -> [NetlinkReply] {
        var datagram: [UInt8] = []
        var pending = Set<UInt32>()
        for message in messages {
            sequence &+= 1
            // Answered: what asks for an acknowledgement or a dump (a batch's ends ask for neither).
            if message.flags & (NetlinkMessage.acknowledge | NetlinkMessage.dump) != 0 { pending.insert(sequence) }
            datagram += message.finished(sequence: sequence)
        }
        let first = sequence &- UInt32(messages.count) &+ 1
        let last = sequence
        try sys("sendto", path: "netlink") { datagram.withUnsafeBytes { send(fd.raw, $0.baseAddress, $0.count, 0) } }
        var collected: [NetlinkReply] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var failure: NetlinkError?
        while !pending.isEmpty {
            let n = buffer.withUnsafeMutableBytes { recv(fd.raw, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                throw NetlinkError(operation: operation(), errno: .timedOut, detail: "no answer from the kernel within five seconds")
            }
            if n < 0 { throw SyscallError.last("recv", path: "netlink") }
            for reply in NetlinkReply.split(Array(buffer[0..<n])) where reply.sequence >= first && reply.sequence <= last {
                switch reply.type {
                case NetlinkReply.error:
                    let awaited = pending.remove(reply.sequence) != nil
                    let code = -Int32(bitPattern: reply.payload.u32(at: reply.payload.startIndex))
                    guard code != 0 else { continue }
                    if failure == nil {
                        failure = NetlinkError(operation: operation(), errno: Errno(rawValue: code), detail: Self.extendedAckMessage(reply))
                    }
                    // An error for a message that asked for no answer (a batch's beginning): the
                    // kernel refused the whole batch, and nothing more comes.
                    if !awaited { pending.removeAll() }
                case NetlinkReply.done:
                    pending.remove(reply.sequence)
                default:
                    if pending.contains(reply.sequence) { collected.append(reply) }
                }
            }
        }
        if let failure { throw failure }
        return collected
    }

    /// NLMSGERR_ATTR_MSG of an error with NLM_F_ACK_TLVS: after the error code and the (capped,
    /// 16-byte) request header.
    private static func extendedAckMessage(_ reply: NetlinkReply) -> String? {
        guard reply.flags & 0x200 != 0 else { return nil }
        let headerLength = reply.flags & 0x100 != 0 ? 16 : Int(reply.payload.u32(at: reply.payload.startIndex + 4))
        let message = NetlinkReply.attributes(in: reply.payload.dropFirst(4 + headerLength))[1]?.cString
        return message?.isEmpty == false ? message : nil
    }
}
