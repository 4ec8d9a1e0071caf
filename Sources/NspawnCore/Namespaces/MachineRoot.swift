#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

enum MachineRoot {
    /// In the machine's user namespace, become its root: UID and GID 0 there, no supplementary
    /// groups. Until then the process is the host's root, which has no ID there, so nothing it
    /// created would have an owner the machine knows.
    static func become() throws(SyscallError) {
        try sys("setresgid") { nsp_setresgid(0) }
        try sys("setgroups") { setgroups(0, nil) }
        try sys("setresuid") { nsp_setresuid(0) }
        // The kernel forgets the parent-death signal when credentials change.
        ProcessLifetime.dieWithParent()
    }
}
