#if canImport(Glibc)
    import Glibc
#endif
import CCap
import CNspawnShim

/// The real kernel behind the `Kernel` seam. Each method is the system call its documentation
/// names, made through `sys()`, which retries EINTR and turns -1 into a `SyscallError`.
struct LinuxKernel: Kernel {
    static let AT_EMPTY_PATH: UInt32 = 0x1000
    private static let AT_RECURSIVE: UInt32 = 0x8000
    private static let OPEN_TREE_CLONE: UInt32 = 1
    private static let MOVE_MOUNT_F_EMPTY_PATH: UInt32 = 0x04
    private static let MOVE_MOUNT_T_EMPTY_PATH: UInt32 = 0x40
    private static let MOUNT_ATTR_IDMAP: UInt64 = 0x0010_0000

    // MARK: Mounts

    func newMount(_ type: String, options: [String], attributes: MountAttributes) throws(SyscallError) -> OwnedFD {
        let context = OwnedFD(try sys("fsopen", path: type) { fsopen(type, UInt32(FSOPEN_CLOEXEC)) })
        for option in options where !option.isEmpty {
            if let equals = option.firstIndex(of: "=") {
                let key = String(option[..<equals])
                let value = String(option[option.index(after: equals)...])
                try sys("fsconfig", path: "\(type): \(option)") { fsconfig(context.raw, FSCONFIG_SET_STRING.rawValue, key, value, 0) }
            } else {
                try sys("fsconfig", path: "\(type): \(option)") { fsconfig(context.raw, FSCONFIG_SET_FLAG.rawValue, option, nil, 0) }
            }
        }
        try sys("fsconfig", path: type) { fsconfig(context.raw, FSCONFIG_CMD_CREATE.rawValue, nil, nil, 0) }
        return OwnedFD(try sys("fsmount", path: type) { fsmount(context.raw, UInt32(FSMOUNT_CLOEXEC), UInt32(attributes.rawValue)) })
    }

    func newOverlay(lowers: [OwnedFD], upper: OwnedFD?, work: OwnedFD?, attributes: MountAttributes, name: String) throws(SyscallError) -> OwnedFD {
        let context = OwnedFD(try sys("fsopen", path: "overlay") { fsopen("overlay", UInt32(FSOPEN_CLOEXEC)) })
        let layers = lowers.map { ("lowerdir+", $0) } + [upper.map { ("upperdir", $0) }, work.map { ("workdir", $0) }].compactMap { $0 }
        for (key, layer) in layers {
            try sys("fsconfig", path: "overlay: \(key)") { fsconfig(context.raw, FSCONFIG_SET_FD.rawValue, key, nil, layer.raw) }
        }
        try sys("fsconfig", path: name) { fsconfig(context.raw, FSCONFIG_CMD_CREATE.rawValue, nil, nil, 0) }
        return OwnedFD(try sys("fsmount", path: name) { fsmount(context.raw, UInt32(FSMOUNT_CLOEXEC), UInt32(attributes.rawValue)) })
    }

    func cloneMount(_ path: String, in directory: OwnedFD?, recursive: Bool, name: String) throws(SyscallError) -> OwnedFD {
        var flags = Self.OPEN_TREE_CLONE | UInt32(O_CLOEXEC)
        if recursive { flags |= Self.AT_RECURSIVE }
        if path.isEmpty { flags |= Self.AT_EMPTY_PATH }
        return OwnedFD(try sys("open_tree", path: name) { open_tree(directory?.raw ?? AT_FDCWD, path, flags) })
    }

    func setMountAttributes(
        _ mount: OwnedFD, set: MountAttributes, clear: MountAttributes, idmap: OwnedFD?, recursive: Bool, name: String
    ) throws(SyscallError) {
        var attr = mount_attr()
        attr.attr_set = set.rawValue
        attr.attr_clr = clear.rawValue
        if let idmap {
            attr.attr_set |= Self.MOUNT_ATTR_IDMAP
            attr.userns_fd = UInt64(idmap.raw)
        }
        guard attr.attr_set != 0 || attr.attr_clr != 0 else { return }
        let flags = Self.AT_EMPTY_PATH | (recursive ? Self.AT_RECURSIVE : 0)
        try sys("mount_setattr", path: name) { mount_setattr(mount.raw, "", flags, &attr, MemoryLayout<mount_attr>.size) }
    }

    func moveMount(_ mount: OwnedFD, onto target: OwnedFD, name: String) throws(SyscallError) {
        try sys("move_mount", path: name) {
            move_mount(mount.raw, "", target.raw, "", Self.MOVE_MOUNT_F_EMPTY_PATH | Self.MOVE_MOUNT_T_EMPTY_PATH)
        }
    }

    func makeIDMapNamespace(uidMap: String, gidMap: String) throws -> OwnedFD {
        try IDMapNamespace.make(uidMap: uidMap, gidMap: gidMap)
    }

    func fileSystemType(_ fd: OwnedFD) -> Int? {
        var fs = statfs()
        return fstatfs(fd.raw, &fs) == 0 ? Int(fs.f_type) : nil
    }

    func makeMountsSlave() throws(SyscallError) {
        try sys("mount", path: "/") { mount(nil, "/", nil, UInt(MS_SLAVE | MS_REC), nil) }
    }

    func setRootPropagation(_ propagation: RootPropagation) throws(SyscallError) {
        let flag = propagation == .unbindable ? MS_UNBINDABLE : MS_PRIVATE
        try sys("mount", path: "/") { mount(nil, "/", nil, UInt(flag | MS_REC), nil) }
    }

    func pivotRoot(name: String) throws(SyscallError) {
        try sys("pivot_root", path: name) { nsp_pivot_root(".", ".") }
    }

    func detachMount(_ path: String) throws(SyscallError) {
        try sys("umount2", path: path == "." ? "/" : path) { umount2(path, Int32(MNT_DETACH)) }
    }

    // MARK: Files and directories

    func openBeneath(_ relative: String, in directory: OwnedFD, flags: Int32, resolve: PathResolution.Scope) throws(SyscallError) -> OwnedFD {
        try PathResolution.open(relative, in: directory.raw, flags: flags, resolve: resolve)
    }

    func open(_ path: String, in directory: OwnedFD?, flags: Int32, mode: mode_t) throws(SyscallError) -> OwnedFD {
        OwnedFD(try sys("open", path: path) { openat(directory?.raw ?? AT_FDCWD, path, flags | O_CLOEXEC, mode) })
    }

    func makeDirectory(_ name: String, in directory: OwnedFD?, mode: mode_t, path: String) throws(SyscallError) {
        try sys("mkdir", path: path) { mkdirat(directory?.raw ?? AT_FDCWD, name, mode) }
    }

    func makeFile(_ name: String, in directory: OwnedFD, mode: mode_t, path: String) throws(SyscallError) {
        Glibc.close(try sys("open", path: path) { openat(directory.raw, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) })
    }

    func makeSymlink(_ name: String, in directory: OwnedFD, target: String, path: String) throws(SyscallError) {
        try sys("symlink", path: path) { symlinkat(target, directory.raw, name) }
    }

    func makeDevice(_ name: String, in directory: OwnedFD, block: Bool, mode: mode_t, device: UInt64, path: String) throws(SyscallError) {
        try sys("mknod", path: path) { mknodat(directory.raw, name, (block ? S_IFBLK : S_IFCHR) | mode, dev_t(device)) }
    }

    func changeOwner(_ name: String, in directory: OwnedFD?, uid: UInt32, gid: UInt32, path: String) throws(SyscallError) {
        try sys("chown", path: path) { fchownat(directory?.raw ?? AT_FDCWD, name, uid, gid, AT_SYMLINK_NOFOLLOW) }
    }

    func changeMode(_ name: String, in directory: OwnedFD, mode: mode_t, path: String) throws(SyscallError) {
        try sys("chmod", path: path) { fchmodat(directory.raw, name, mode, 0) }
    }

    func remove(_ name: String, in directory: OwnedFD?, directory isDirectory: Bool, path: String) throws(SyscallError) {
        try sys(isDirectory ? "rmdir" : "unlink", path: path) { unlinkat(directory?.raw ?? AT_FDCWD, name, isDirectory ? AT_REMOVEDIR : 0) }
    }

    func status(_ fd: OwnedFD, name: String) throws(SyscallError) -> stat {
        var st = Glibc.stat()
        try sys("fstat", path: name) { fstat(fd.raw, &st) }
        return st
    }

    func write(_ bytes: [UInt8], to fd: OwnedFD, name: String) throws(SyscallError) {
        try FileSystem.writeAll(fd: fd.raw, bytes, path: name)
    }

    func readAll(_ fd: OwnedFD, name: String) throws(SyscallError) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let offset = result.count
            let n = try sys("read", path: name) { buffer.withUnsafeMutableBytes { pread(fd.raw, $0.baseAddress, $0.count, off_t(offset)) } }
            if n == 0 { return result }
            result.append(contentsOf: buffer[0..<n])
        }
    }

    func poll(_ fd: OwnedFD, events: Int16, timeoutMilliseconds: Int32) -> Bool {
        var pfd = pollfd(fd: fd.raw, events: events, revents: 0)
        return (try? sys("poll") { Glibc.poll(&pfd, 1, timeoutMilliseconds) }) ?? 0 > 0
    }

    func subdirectories(of directory: OwnedFD, name: String) throws(SyscallError) -> [String] {
        try FileSystem.entries(of: directory.raw, path: name).filter { $0.type == UInt8(DT_DIR) }.map(\.name)
    }

    func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    // MARK: Credentials and namespaces

    func setFilesystemIDs(uid: UInt32, gid: UInt32) {
        // They return the previous ID, never an error: a refused change simply does not happen.
        nsp_setfsgid(gid)
        nsp_setfsuid(uid)
        // Each fsuid change is a credential change, which makes the kernel forget PDEATHSIG.
        ProcessLifetime.dieWithParent()
    }

    func raiseFileOverrides() throws(SyscallError) {
        guard let caps = cap_get_proc() else { throw SyscallError.last("capget") }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        var raised: [cap_value_t] = [cap_value_t(CAP_DAC_OVERRIDE), cap_value_t(CAP_DAC_READ_SEARCH), cap_value_t(CAP_FOWNER)]
        guard cap_set_flag(caps, CAP_EFFECTIVE, Int32(raised.count), &raised, CAP_SET) == 0 else { throw SyscallError.last("cap_set_flag") }
        try sys("capset") { cap_set_proc(caps) }
    }

    func enter(_ namespace: OwnedFD, _ type: NamespaceSet, name: String) throws(SyscallError) {
        try sys("setns", path: name) { nsp_setns(namespace.raw, Int32(truncatingIfNeeded: type.rawValue)) }
    }

    func unshare(_ namespaces: NamespaceSet) throws(SyscallError) {
        do {
            try sys("unshare") { nsp_unshare(Int32(truncatingIfNeeded: namespaces.rawValue)) }
        } catch {
            // Named only on failure: the children call this, and a name costs them string work.
            throw SyscallError("unshare", path: namespaces.names, errno: error.errno)
        }
    }

    func becomeRoot() throws(SyscallError) {
        try sys("setresgid") { nsp_setresgid(0) }
        try sys("setgroups") { setgroups(0, nil) }
        try sys("setresuid") { nsp_setresuid(0) }
        ProcessLifetime.dieWithParent()
    }

    func setHostname(_ name: String) throws(SyscallError) {
        try sys("sethostname", path: name) { sethostname(name, name.utf8.count) }
    }

    func setDomainname(_ name: String) throws(SyscallError) {
        try sys("setdomainname", path: name) { setdomainname(name, name.utf8.count) }
    }

    func bringUp(_ interface: String) throws(SyscallError) {
        try sys("ioctl(SIOCSIFFLAGS)", path: interface) { nsp_interface_up(interface) }
    }

    func changeDirectory(to directory: OwnedFD, name: String) throws(SyscallError) {
        try sys("fchdir", path: name) { fchdir(directory.raw) }
    }

    func changeDirectory(_ path: String) throws(SyscallError) {
        try sys("chdir", path: path) { chdir(path) }
    }

    func setResourceLimit(of pid: pid_t, _ limit: ResourceLimit) throws(SyscallError) {
        try sys("prlimit", path: ResourceLimit.names.first { $0.1 == limit.resource }.map { "RLIMIT_\($0.0)" }) {
            nsp_prlimit(pid, limit.resource, limit.soft, limit.hard)
        }
    }

    func setCPUAffinity(of pid: pid_t, cpus: [Int]) throws(SyscallError) {
        // cpu_set_t as the kernel reads it: a bit per CPU in unsigned longs.
        var mask = [UInt64](repeating: 0, count: max(16, (cpus.max() ?? 0) / 64 + 1))
        for cpu in cpus { mask[cpu / 64] |= 1 << UInt64(cpu % 64) }
        try sys("sched_setaffinity") {
            mask.withUnsafeBytes { nsp_sched_setaffinity(pid, $0.count, $0.baseAddress) }
        }
    }

    // MARK: Terminals and sockets

    func openPTYPeer(_ master: OwnedFD, name: String) throws(SyscallError) -> OwnedFD {
        var unlock: Int32 = 0
        try sys("ioctl(TIOCSPTLCK)", path: name) { ioctl(master.raw, NSP_TIOCSPTLCK, &unlock) }
        return OwnedFD(try sys("ioctl(TIOCGPTPEER)", path: name) { ioctl(master.raw, NSP_TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC) })
    }

    func bindDatagramSocket(_ name: String, in directory: OwnedFD, path: String) throws(SyscallError) -> OwnedFD {
        let socket = OwnedFD(
            try sys("socket", path: path) {
                Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            })
        var on: Int32 = 1
        try sys("setsockopt(SO_PASSCRED)", path: path) { setsockopt(socket.raw, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size)) }
        // bind() takes a path: name it relative to the directory we hold, never by resolving it again.
        let saved = try open(".", in: nil, flags: NSP_O_PATH | O_DIRECTORY, mode: 0)
        try changeDirectory(to: directory, name: path)
        defer { _ = fchdir(saved.raw) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in name.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        let previous = umask(0o177)
        defer { umask(previous) }
        try sys("bind", path: path) {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(socket.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        return socket
    }

    // MARK: Cgroups

    func attachDeviceFilter(_ program: [UInt8], to cgroup: OwnedFD, name: String) throws(SyscallError) {
        try sys("bpf(BPF_PROG_ATTACH)", path: name) { program.withUnsafeBytes { nsp_attach_device_filter(cgroup.raw, $0.baseAddress, $0.count) } }
    }
}
