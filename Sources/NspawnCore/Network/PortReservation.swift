#if canImport(Glibc)
    import Glibc
#endif

/// A forwarded host port, held by a socket bound to it on every address of the host for the
/// machine's life: a program or another machine that holds the port already makes the start fail
/// with a clear line (instead of one of them never seeing its connections), no program can take
/// it from the machine later, and `ss -a` shows who has it.
struct PortReservation {
    private let fd: OwnedFD

    init(_ forward: PortForward) throws {
        let type = forward.proto == .tcp ? SOCK_STREAM : SOCK_DGRAM
        fd = OwnedFD(
            try sys("socket", path: "\(forward.proto.rawValue):\(forward.hostPort)") { socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        )
        let bound = IPv4Address.any.withSocketAddress(port: forward.hostPort) { bind(fd.raw, $0, $1) }
        if bound != 0 {
            let error = errno
            fd.close()
            if error == EADDRINUSE {
                throw UserError("Port \(forward.proto.rawValue):\(forward.hostPort) is taken on the host (by a program, or by another machine's --port=).")
            }
            throw SyscallError("bind", path: "\(forward.proto.rawValue):\(forward.hostPort)", errno: .init(rawValue: error))
        }
    }

    func close() { fd.close() }
}
