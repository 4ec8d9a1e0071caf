import CNspawnShim
import Glibc
import Testing

@testable import NspawnCore

/// The console's per-direction buffer, driven through real pipes: bytes keep their order across a
/// short write and the move to the front, and an emptied queue reuses its room from the start.
@Suite struct ByteQueueTests {
    /// A non-blocking pipe: (read end, write end).
    private func pipePair() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        #expect(nsp_pipe2(&fds, O_NONBLOCK | O_CLOEXEC) == 0)
        return (fds[0], fds[1])
    }

    private func send(_ bytes: [UInt8], to fd: Int32) {
        #expect(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
    }

    private func drain(_ fd: Int32) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return result }
            result += chunk[0..<n]
        }
    }

    @Test func bytesKeepTheirOrderThroughAShortWriteAndTheMoveToTheFront() {
        let (inRead, inWrite) = pipePair(), (outRead, outWrite) = pipePair()
        defer { [inRead, inWrite, outRead, outWrite].forEach { close($0) } }
        // An output pipe of one page: a write of two pages is short (more than PIPE_BUF need not be atomic).
        #expect(fcntl(outWrite, 1031 /* F_SETPIPE_SZ, hidden without _GNU_SOURCE */, 4096) == 4096)
        let data = (0..<12288).map { UInt8($0 % 251) }
        send(data, to: inWrite)
        var queue = ByteQueue(capacity: 8192)
        #expect(queue.read(from: inRead) == 8192)
        #expect(queue.write(to: outWrite) == 4096)
        #expect(queue.count == 4096)
        // The end is reached: the half left moves to the front to make room for the rest.
        #expect(queue.read(from: inRead) == 4096)
        #expect(queue.isFull)
        #expect(queue.suffix(4096) == data[8192...])
        var received = drain(outRead)
        while !queue.isEmpty {
            _ = queue.write(to: outWrite)
            received += drain(outRead)
        }
        #expect(received == data)
    }

    @Test func anEmptiedQueueStartsAtTheFrontAgain() {
        let (inRead, inWrite) = pipePair(), (outRead, outWrite) = pipePair()
        defer { [inRead, inWrite, outRead, outWrite].forEach { close($0) } }
        var queue = ByteQueue(capacity: 4)
        send([1, 2, 3, 4, 5, 6], to: inWrite)
        #expect(queue.read(from: inRead) == 4)
        #expect(queue.isFull)
        #expect(queue.suffix(2) == [3, 4])
        // Out goes everything; the queue is empty and starts at the front again.
        #expect(queue.write(to: outWrite) == 4)
        #expect(queue.isEmpty)
        #expect(queue.read(from: inRead) == 2)
        #expect(queue.suffix(2) == [5, 6])
        #expect(drain(outRead) == [1, 2, 3, 4])
    }
}
