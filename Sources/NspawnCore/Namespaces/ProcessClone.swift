#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Namespaces a child is born in.
struct NamespaceSet: OptionSet {
    let rawValue: UInt64
    static let mount = NamespaceSet(rawValue: UInt64(NSP_CLONE_NEWNS))
    static let cgroup = NamespaceSet(rawValue: UInt64(NSP_CLONE_NEWCGROUP))
    static let uts = NamespaceSet(rawValue: UInt64(NSP_CLONE_NEWUTS))
    static let ipc = NamespaceSet(rawValue: UInt64(NSP_CLONE_NEWIPC))
    static let user = NamespaceSet(rawValue: UInt64(NSP_CLONE_NEWUSER))
    static let pid = NamespaceSet(rawValue: UInt64(NSP_CLONE_NEWPID))
    static let network = NamespaceSet(rawValue: UInt64(NSP_CLONE_NEWNET))
    static let time = NamespaceSet(rawValue: 0x80)  // CLONE_NEWTIME

    /// Each namespace with its name in /proc/PID/ns.
    static let procNames: [(NamespaceSet, String)] = [
        (.mount, "mnt"), (.cgroup, "cgroup"), (.uts, "uts"), (.ipc, "ipc"), (.user, "user"), (.pid, "pid"), (.network, "net"), (.time, "time"),
    ]

    /// Their names as /proc/PID/ns has them, for messages: "net", "cgroup+net".
    var names: String { Self.procNames.filter { contains($0.0) }.map(\.1).joined(separator: "+") }
}

/// A child process this process made, held by pidfd so that its PID can never be reused under us.
final class ChildProcess {
    let pid: pid_t
    let pidfd: OwnedFD
    /// What the child is, for messages: "The outer child".
    let role: String
    private(set) var reaped = false

    init(pid: pid_t, pidfd: OwnedFD, role: String) {
        self.pid = pid
        self.pidfd = pidfd
        self.role = role
    }

    /// clone3 straight from this single-threaded process: no exec of ourselves, and the child runs
    /// Swift with the parent's memory copied. `body` runs in the child and must end in _exit; an error
    /// it throws is printed and ends the child with status 1.
    static func clone(namespaces: NamespaceSet, intoCgroup cgroup: Int32? = nil, role: String, _ body: () throws -> Never) throws(UserError) -> ChildProcess {
        try ThreadCheck.requireSingleThreaded(before: role)
        var pidfd: Int32 = -1
        let pid = nsp_clone3(namespaces.rawValue | UInt64(NSP_CLONE_PIDFD), SIGCHLD, cgroup ?? -1, &pidfd)
        guard pid >= 0 else { throw UserError("Failed to start \(role.lowercasedFirst): \(SyscallError.last("clone3"))") }
        if pid == 0 {
            ProcessLifetime.dieWithParent()
            do {
                try body()
            } catch is SetupAborted {
                _exit(1)  // the peer that died first has said why
            } catch {
                printError("\(error)")
                _exit(1)
            }
        }
        return ChildProcess(pid: pid, pidfd: OwnedFD(pidfd), role: role)
    }

    func signal(_ signal: Int32) {
        guard !reaped else { return }
        _ = nsp_pidfd_send_signal(pidfd.raw, signal)
    }

    enum Termination: Equatable {
        case exited(Int32)
        case killed(Int32)
    }

    /// Waits for the child to end (blocking), or returns nil at once with `block: false` if it runs on.
    func wait(block: Bool = true) throws(SyscallError) -> Termination? {
        var code: Int32 = 0
        var status: Int32 = 0
        try sys("waitid") { nsp_waitid_pidfd(pidfd.raw, WEXITED | (block ? 0 : WNOHANG), &code, &status) }
        if code == 0 { return nil }
        reaped = true
        return code == CLD_EXITED ? .exited(status) : .killed(status)
    }

    /// For a child that must succeed: one that failed has said why itself (SetupAborted); one that a
    /// signal ended (the OOM killer, a crash) could not, so that is said here.
    func requireCleanExit() throws {
        switch try wait() {
        case .exited(0)?: return
        case .killed(let signal)?: throw UserError("\(role) was killed by signal \(SignalName.name(signal)).")
        default: throw SetupAborted(peer: role)
        }
    }

    /// SIGKILL and reap: for children that must not outlive a failed setup.
    func kill() {
        guard !reaped else { return }
        signal(SIGKILL)
        _ = try? wait()
    }
}

enum ThreadCheck {
    /// A user namespace cannot be created, nor Swift safely run after clone, in a multithreaded process.
    /// Asked of /proc/self/task, whose link count is two and one for each thread: one stat(), where
    /// /proc/self/status is a page the kernel formats field by field.
    static func requireSingleThreaded(before role: String) throws(UserError) {
        let task: Glibc.stat
        do {
            task = try FileSystem.stat("/proc/self/task")
        } catch {
            // Unreadable (no procfs, say): say why, not that we have threads.
            throw UserError("Refusing to start \(role.lowercasedFirst) unchecked: \(error)")
        }
        guard task.st_nlink != 3 else { return }
        throw UserError(
            "Refusing to start \(role.lowercasedFirst): swift-nspawn must be single-threaded before clone3(), but /proc/self/task lists \(Int(task.st_nlink) - 2) threads."
        )
    }
}

enum ProcessLifetime {
    /// Die with the parent, so a SIGKILLed supervisor takes its machine along. The kernel forgets
    /// this whenever the credentials change, so it is set again after every setresuid().
    static func dieWithParent() {
        _ = nsp_prctl(PR_SET_PDEATHSIG, UInt(SIGKILL), 0, 0, 0)
    }
}
