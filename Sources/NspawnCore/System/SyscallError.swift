#if canImport(Glibc)
    import Glibc
#endif
import SystemPackage

/// A failed system call, printed the way systemd-nspawn prints them: `mount("/proc"): Operation not permitted`.
public struct SyscallError: Error, CustomStringConvertible, Equatable {
    public var syscall: String
    public var path: String?
    public var errno: Errno

    public init(_ syscall: String, path: String? = nil, errno: Errno) {
        self.syscall = syscall
        self.path = path
        self.errno = errno
    }

    /// The error of the call that just failed, from the thread's errno.
    public static func last(_ syscall: String, path: String? = nil) -> SyscallError {
        SyscallError(syscall, path: path, errno: Errno(rawValue: Glibc.errno))
    }

    public var description: String {
        let call = path.map { "\(syscall)(\"\($0)\")" } ?? "\(syscall)()"
        return "\(call): \(errno.message)"
    }
}

extension Errno {
    /// strerror(3)'s text, which users know from every other tool.
    public var message: String { String(cString: strerror(rawValue)) }
}

/// An error meant for the user as one line, with no syscall behind it (bad input, refusals).
public struct UserError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a system call that returns -1 and sets errno on failure, retrying on EINTR.
/// This is the one place that loop lives.
@discardableResult
func sys<T: FixedWidthInteger>(_ name: String, path: String? = nil, _ call: () -> T) throws(SyscallError) -> T {
    while true {
        let result = call()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SyscallError(name, path: path, errno: Errno(rawValue: code))
    }
}
