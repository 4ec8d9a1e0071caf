#if canImport(Glibc)
    import Glibc
#endif

/// A bounded buffer for one direction of the console: read(2) fills it at the end, write(2) drains
/// it from the front, straight from and to its one allocation, so forwarding a byte costs no
/// allocation and no copy of our own. What is left after a short write moves to the front only when
/// the end is reached and a read needs the room.
struct ByteQueue {
    private var storage: [UInt8]
    private var start = 0
    private var end = 0

    /// The room is not zeroed: only bytes that read(2) put there are ever written out, and a page of
    /// it costs memory only once data has reached it.
    init(capacity: Int) {
        storage = [UInt8](unsafeUninitializedCapacity: capacity) { _, count in count = capacity }
    }

    var count: Int { end - start }
    var isEmpty: Bool { start == end }
    var isFull: Bool { count == storage.count }

    mutating func removeAll() {
        start = 0
        end = 0
    }

    /// One read(2) into the free room; its return value (with errno set when it is -1).
    mutating func read(from fd: Int32) -> Int {
        if end == storage.count && start > 0 {
            let (from, length) = (start, count)
            storage.withUnsafeMutableBytes { _ = memmove($0.baseAddress!, $0.baseAddress! + from, length) }
            (start, end) = (0, length)
        }
        let (from, room) = (end, storage.count - end)
        let n = storage.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + from, room) }
        if n > 0 { end += n }
        return n
    }

    /// One write(2) of what the queue holds; its return value (with errno set when it is -1).
    mutating func write(to fd: Int32) -> Int {
        let (from, length) = (start, count)
        let n = storage.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + from, length) }
        if n > 0 { start += n }
        if start == end { removeAll() }
        return n
    }

    /// The last `n` bytes that came in.
    func suffix(_ n: Int) -> ArraySlice<UInt8> { storage[(end - n)..<end] }
}
