#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import CSystemd

/// Reads the sd_notify datagrams the machine sends to /run/host/notify. Only the machine's PID 1 is
/// heard (the kernel vouches for the sender's PID); anything else, oversized datagrams included,
/// is dropped without a trace. One datagram is read per wakeup so a flood cannot starve the loop.
final class NotifyRelay {
    /// A datagram bigger than this is not an sd_notify message (systemd's own limit is 4 KiB-ish for state).
    static let maximumSize = 4096

    private let socket: OwnedFD
    private let machinePID: pid_t
    private let onMessage: ([String: String]) -> Void
    private var source: EventSource?

    init(loop: EventLoop, socket: OwnedFD, machinePID: pid_t, onMessage: @escaping ([String: String]) -> Void) throws {
        self.socket = socket
        self.machinePID = machinePID
        self.onMessage = onMessage
        source = try loop.addIO(socket.raw, events: UInt32(EPOLLIN.rawValue)) { [unowned self] _ in receive() }
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: Self.maximumSize)
        var pid: pid_t = -1
        var truncated: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { nsp_recv_datagram(socket.raw, $0.baseAddress, $0.count, &pid, &truncated) }
        guard n > 0, truncated == 0, pid == machinePID else { return }
        onMessage(Self.parse(Array(buffer[0..<n])))
    }

    /// NAME=VALUE lines; later lines win.
    static func parse(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            guard let equals = line.firstIndex(of: UInt8(ascii: "=")) else { continue }
            fields[String(decoding: line[line.startIndex..<equals], as: UTF8.self)] = String(decoding: line[(equals + 1)...], as: UTF8.self)
        }
        return fields
    }

    /// Tells our own service manager (when we run under one): sd_notify ignores a missing $NOTIFY_SOCKET.
    static func tellServiceManager(_ state: String) {
        guard (try? SystemdLibrary.open()) != nil else { return }
        _ = sd_notify(0, state)
    }
}
