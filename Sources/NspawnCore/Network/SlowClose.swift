#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Closes a descriptor whose last close is slow in a short-lived child, so that the supervisor
/// does not wait for it: the nfnetlink socket that owns the machine's NAT table, whose removal
/// waits for an RCU grace period (8 ms here, for each hook of its chains). The child keeps only
/// that descriptor, waits until we have let go of ours, and exits; the kernel removes the table
/// in its exit. Children are reaped by the next call, or go with us (they die with their parent).
enum SlowClose {
    nonisolated(unsafe) private static var children: [ChildProcess] = []

    static func close(_ fd: OwnedFD) {
        children.removeAll { (try? $0.wait(block: false)) != nil }
        var pipe: [Int32] = [-1, -1]
        guard nsp_pipe2(&pipe, O_CLOEXEC) == 0 else { return fd.close() }
        let kept = fd.raw
        let child = try? ChildProcess.clone(namespaces: [], role: "The closer of the NAT table") {
            // Nothing else of ours is held a moment longer (the image lock least of all).
            closeDescriptors(except: [kept, pipe[0]])
            var byte: UInt8 = 0
            // End of file once the supervisor's copies of both are closed.
            while Glibc.read(pipe[0], &byte, 1) < 0 && errno == EINTR {}
            _exit(0)
        }
        fd.close()
        Glibc.close(pipe[1])
        Glibc.close(pipe[0])
        if let child { children.append(child) }
    }
}
