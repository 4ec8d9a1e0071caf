#if canImport(Glibc)
    import Glibc
#endif

/// The system calls that set a machine up: its mounts, its namespaces and credentials, its cgroup.
/// The code that builds a machine calls the kernel only through this seam, so the same code runs
/// against the real kernel (`LinuxKernel`) and, in unit tests without root, against a recording
/// fake that checks the calls in order with their flags (as youki's `Syscall` trait does).
///
/// Every call that can fail throws a `SyscallError` naming the call and `name`, the path it acts
/// on as the user would say it; EINTR is retried below, in `sys()`.
protocol Kernel {
    // MARK: Mounts (the new mount API: every mount detached first, held by descriptor)

    /// fsopen, fsconfig for each "key=value" or flag option, FSCONFIG_CMD_CREATE, fsmount.
    func newMount(_ type: String, options: [String], attributes: MountAttributes) throws(SyscallError) -> OwnedFD
    /// An overlay of `upper` (with `work`; neither for a read-only one) over `lowers` (the
    /// highest first), each layer given by descriptor (FSCONFIG_SET_FD), so ID-mapped detached
    /// mounts can be layers.
    func newOverlay(lowers: [OwnedFD], upper: OwnedFD?, work: OwnedFD?, attributes: MountAttributes, name: String) throws(SyscallError) -> OwnedFD
    /// open_tree(OPEN_TREE_CLONE): a detached copy of the mount at `path` below `directory` (of
    /// `directory` itself for ""), with the mounts below it when recursive.
    func cloneMount(_ path: String, in directory: OwnedFD?, recursive: Bool, name: String) throws(SyscallError) -> OwnedFD
    /// mount_setattr: sets and clears attributes, and ID-maps to the user namespace `idmap` when given.
    func setMountAttributes(
        _ mount: OwnedFD, set: MountAttributes, clear: MountAttributes, idmap: OwnedFD?, recursive: Bool, name: String
    ) throws(SyscallError)
    /// move_mount: attaches a detached mount onto the object `target` refers to.
    func moveMount(_ mount: OwnedFD, onto target: OwnedFD, name: String) throws(SyscallError)
    /// A user namespace carrying only these maps ("ON-DISK SHOWN-AS COUNT" lines), for an idmapped
    /// mount: made by a short-lived child born in it.
    func makeIDMapNamespace(uidMap: String, gidMap: String) throws -> OwnedFD
    /// fstatfs: the file system's magic number (statfs(2), f_type).
    func fileSystemType(_ fd: OwnedFD) -> Int?
    /// mount(MS_SLAVE|MS_REC) of "/": nothing mounted here propagates back to where it came from.
    func makeMountsSlave() throws(SyscallError)
    /// mount(MS_PRIVATE or MS_UNBINDABLE, with MS_REC) of "/".
    func setRootPropagation(_ propagation: RootPropagation) throws(SyscallError)
    /// pivot_root(".", "."), with the new root as the working directory: the old root ends stacked on it.
    func pivotRoot(name: String) throws(SyscallError)
    /// umount2(MNT_DETACH).
    func detachMount(_ path: String) throws(SyscallError)

    // MARK: Files and directories

    /// openat2 with the scope's RESOLVE_* flags; O_CLOEXEC always.
    func openBeneath(_ relative: String, in directory: OwnedFD, flags: Int32, resolve: PathResolution.Scope) throws(SyscallError) -> OwnedFD
    /// openat (of an absolute path when `directory` is nil); O_CLOEXEC always.
    func open(_ path: String, in directory: OwnedFD?, flags: Int32, mode: mode_t) throws(SyscallError) -> OwnedFD
    /// mkdirat.
    func makeDirectory(_ name: String, in directory: OwnedFD?, mode: mode_t, path: String) throws(SyscallError)
    /// openat(O_CREAT|O_EXCL), closed at once: an empty file to mount on.
    func makeFile(_ name: String, in directory: OwnedFD, mode: mode_t, path: String) throws(SyscallError)
    /// symlinkat.
    func makeSymlink(_ name: String, in directory: OwnedFD, target: String, path: String) throws(SyscallError)
    /// mknodat(S_IFCHR or S_IFBLK).
    func makeDevice(_ name: String, in directory: OwnedFD, block: Bool, mode: mode_t, device: UInt64, path: String) throws(SyscallError)
    /// fchownat(AT_SYMLINK_NOFOLLOW) (of an absolute path when `directory` is nil).
    func changeOwner(_ name: String, in directory: OwnedFD?, uid: UInt32, gid: UInt32, path: String) throws(SyscallError)
    /// fchmodat.
    func changeMode(_ name: String, in directory: OwnedFD, mode: mode_t, path: String) throws(SyscallError)
    /// unlinkat, or with AT_REMOVEDIR for a directory.
    func remove(_ name: String, in directory: OwnedFD?, directory isDirectory: Bool, path: String) throws(SyscallError)
    /// fstat.
    func status(_ fd: OwnedFD, name: String) throws(SyscallError) -> stat
    /// write, until all of it is written.
    func write(_ bytes: [UInt8], to fd: OwnedFD, name: String) throws(SyscallError)
    /// pread from offset 0 until end of file: a small file (procfs, cgroupfs) read whole, again and again.
    func readAll(_ fd: OwnedFD, name: String) throws(SyscallError) -> [UInt8]
    /// poll for `events` on one descriptor, bounded; whether they came.
    func poll(_ fd: OwnedFD, events: Int16, timeoutMilliseconds: Int32) -> Bool
    /// The names of the directories in a directory (fdopendir on a copy of the descriptor, readdir).
    func subdirectories(of directory: OwnedFD, name: String) throws(SyscallError) -> [String]
    /// faccessat(F_OK).
    func exists(_ path: String) -> Bool

    // MARK: Credentials and namespaces

    /// setfsgid and setfsuid: whom the files created from now on belong to.
    func setFilesystemIDs(uid: UInt32, gid: UInt32)
    /// capset: CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER effective again, which a change
    /// of the file system UID away from 0 takes away (they stay permitted).
    func raiseFileOverrides() throws(SyscallError)
    /// setns.
    func enter(_ namespace: OwnedFD, _ type: NamespaceSet, name: String) throws(SyscallError)
    /// unshare.
    func unshare(_ namespaces: NamespaceSet) throws(SyscallError)
    /// setresgid(0), setgroups(0), setresuid(0), in the user namespace we are in; then
    /// PR_SET_PDEATHSIG again, which a change of credentials makes the kernel forget.
    func becomeRoot() throws(SyscallError)
    /// sethostname, in our UTS namespace.
    func setHostname(_ name: String) throws(SyscallError)
    /// setdomainname (the NIS domain name), in our UTS namespace.
    func setDomainname(_ name: String) throws(SyscallError)
    /// ioctl(SIOCSIFFLAGS) with IFF_UP, in our network namespace.
    func bringUp(_ interface: String) throws(SyscallError)
    /// fchdir, or chdir for a path.
    func changeDirectory(to directory: OwnedFD, name: String) throws(SyscallError)
    func changeDirectory(_ path: String) throws(SyscallError)

    /// prlimit: a resource limit of another process (as the host's root, also above our own).
    func setResourceLimit(of pid: pid_t, _ limit: ResourceLimit) throws(SyscallError)
    /// sched_setaffinity: the CPUs another process (and what it starts) may run on.
    func setCPUAffinity(of pid: pid_t, cpus: [Int]) throws(SyscallError)

    // MARK: Terminals and sockets

    /// ioctl(TIOCSPTLCK) to unlock a pty master, then ioctl(TIOCGPTPEER): its peer, opened from the
    /// master, never by path.
    func openPTYPeer(_ master: OwnedFD, name: String) throws(SyscallError) -> OwnedFD
    /// A datagram socket with SO_PASSCRED, bound to `name` in `directory` with the mode 0600.
    func bindDatagramSocket(_ name: String, in directory: OwnedFD, path: String) throws(SyscallError) -> OwnedFD

    // MARK: Cgroups

    /// bpf(BPF_PROG_LOAD) of a cgroup device program and bpf(BPF_PROG_ATTACH) to the cgroup.
    func attachDeviceFilter(_ program: [UInt8], to cgroup: OwnedFD, name: String) throws(SyscallError)
}

extension Kernel {
    /// Opens, reads and closes a small file.
    func readFile(_ path: String) throws(SyscallError) -> String {
        String(decoding: try readAll(try open(path, in: nil, flags: O_RDONLY, mode: 0), name: path), as: UTF8.self)
    }

    /// Opens, writes and closes a file (procfs, cgroupfs): the whole string in one write where it fits.
    func writeFile(_ string: String, to path: String) throws(SyscallError) {
        let fd = try open(path, in: nil, flags: O_WRONLY, mode: 0)
        try write(Array(string.utf8), to: fd, name: path)
    }

    /// The detached mount's attributes, without clearing any or ID-mapping.
    func setMountAttributes(_ mount: OwnedFD, _ attributes: MountAttributes, recursive: Bool, name: String) throws(SyscallError) {
        try setMountAttributes(mount, set: attributes, clear: [], idmap: nil, recursive: recursive, name: name)
    }
}
