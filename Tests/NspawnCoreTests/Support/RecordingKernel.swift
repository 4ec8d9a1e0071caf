#if canImport(Glibc)
    import Glibc
#endif
import SystemPackage
@testable import NspawnCore

/// A `Kernel` that makes no change anywhere: it records each call, in order, as one line
/// ("move_mount(tmpfs → /m/root/tmp)"), and models just enough of a file tree for the code under
/// test to find what exists and to make what it creates exist. Descriptors are real ones (of
/// /dev/null), so that OwnedFD may close them, each labelled with what it stands for.
final class RecordingKernel: Kernel {
    private(set) var calls: [String] = []
    /// Absolute paths that exist; a directory unless also in `files`.
    var existing: Set<String>
    var files: Set<String> = []
    /// The errno a call fails with, decided from its recorded line; nil lets it succeed.
    var failure: (String) -> Errno? = { _ in nil }

    private var labels: [Int32: String] = [:]
    private var workingDirectory = "/"

    init(existing: Set<String>) { self.existing = existing }

    /// A descriptor standing for `label` (a path, or what a mount is).
    func descriptor(_ label: String) -> OwnedFD {
        let fd = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
        labels[fd] = label
        return OwnedFD(fd)
    }

    func label(_ fd: OwnedFD?) -> String {
        guard let fd else { return "" }
        return labels[fd.raw] ?? "fd \(fd.raw)"
    }

    /// The index of the first recorded call that starts with `prefix` (nil if none).
    func index(_ prefix: String) -> Int? { calls.firstIndex { $0.hasPrefix(prefix) } }

    private func record(_ line: String, name: String = "") throws(SyscallError) {
        calls.append(line)
        if let errno = failure(line) { throw SyscallError(String(line.prefix { $0 != "(" }), path: name, errno: errno) }
    }

    private func join(_ directory: OwnedFD?, _ path: String) -> String {
        guard let directory, !path.hasPrefix("/") else { return path }
        let base = label(directory)
        if path.isEmpty || path == "." { return base }
        if path == ".." {
            let parent = base.split(separator: "/").dropLast().map { "/" + $0 }.joined()
            return parent.isEmpty ? "/" : parent
        }
        return base == "/" ? "/" + path : base + "/" + path
    }

    /// Inode numbers, one per path, so that fstat tells places apart.
    private var inodes: [String: Int] = [:]

    // MARK: Mounts

    func newMount(_ type: String, options: [String], attributes: MountAttributes) throws(SyscallError) -> OwnedFD {
        try record("fsmount(\(type): \(options.joined(separator: ",")); \(Self.describe(attributes)))", name: type)
        return descriptor(type)
    }

    func newOverlay(lowers: [OwnedFD], upper: OwnedFD?, work: OwnedFD?, attributes: MountAttributes, name: String) throws(SyscallError) -> OwnedFD {
        let layers = lowers.map { "lowerdir+=\(label($0))" } + [upper.map { "upperdir=\(label($0))" }, work.map { "workdir=\(label($0))" }].compactMap { $0 }
        try record("fsmount(overlay: \(layers.joined(separator: ",")); \(Self.describe(attributes)))", name: name)
        return descriptor(name)
    }

    func cloneMount(_ path: String, in directory: OwnedFD?, recursive: Bool, name: String) throws(SyscallError) -> OwnedFD {
        let source = join(directory, path)
        try record("open_tree(\(source)\(recursive ? ", recursive" : ""))", name: name)
        return descriptor("clone of \(source)")
    }

    func setMountAttributes(
        _ mount: OwnedFD, set: MountAttributes, clear: MountAttributes, idmap: OwnedFD?, recursive: Bool, name: String
    ) throws(SyscallError) {
        var line = "mount_setattr(\(label(mount)), set \(Self.describe(set))"
        if !clear.isEmpty { line += ", clear \(Self.describe(clear))" }
        if idmap != nil { line += ", idmap" }
        try record(line + (recursive ? ", recursive)" : ")"), name: name)
    }

    /// Once attached, a mount's descriptor stands for the place it is attached at.
    func moveMount(_ mount: OwnedFD, onto target: OwnedFD, name: String) throws(SyscallError) {
        try record("move_mount(\(label(mount)) → \(label(target)))", name: name)
        labels[mount.raw] = label(target)
    }

    func makeIDMapNamespace(uidMap: String, gidMap: String) throws -> OwnedFD {
        let maps = "uid_map \(uidMap.trimmingCharacters(in: "\n")), gid_map \(gidMap.trimmingCharacters(in: "\n"))"
        try record("userns(\(maps))")
        return descriptor("userns \(maps)")
    }

    /// The file system each path is on, by its statfs magic; ext4 where not said.
    var fileSystems: [String: Int] = [:]

    func fileSystemType(_ fd: OwnedFD) -> Int? { fileSystems[label(fd)] ?? 0xEF53 }

    func makeMountsSlave() throws(SyscallError) { try record("mount(/, MS_SLAVE|MS_REC)") }
    func setRootPropagation(_ propagation: RootPropagation) throws(SyscallError) { try record("mount(/, \(propagation)|MS_REC)") }
    func pivotRoot(name: String) throws(SyscallError) { try record("pivot_root(\(workingDirectory))", name: name) }
    func detachMount(_ path: String) throws(SyscallError) { try record("umount2(\(path), MNT_DETACH)", name: path) }

    // MARK: Files and directories

    func openBeneath(_ relative: String, in directory: OwnedFD, flags: Int32, resolve: PathResolution.Scope) throws(SyscallError) -> OwnedFD {
        let path = join(directory, relative)
        guard existing.contains(path) else {
            try record("openat2(\(path), \(resolve)) = ENOENT")
            throw SyscallError("openat2", path: "/" + relative, errno: .noSuchFileOrDirectory)
        }
        try record("openat2(\(path), \(resolve))", name: "/" + relative)
        return descriptor(path)
    }

    func open(_ path: String, in directory: OwnedFD?, flags: Int32, mode: mode_t) throws(SyscallError) -> OwnedFD {
        let full = path == "." && directory == nil ? workingDirectory : join(directory, path)
        try record("open(\(path == "." ? "." : full))", name: path)
        if flags & O_CREAT != 0 {
            existing.insert(full)
            files.insert(full)
        }
        return descriptor(full)
    }

    func makeDirectory(_ name: String, in directory: OwnedFD?, mode: mode_t, path: String) throws(SyscallError) {
        let full = join(directory, name)
        try record("mkdir(\(full), \(String(mode, radix: 8)))", name: path)
        existing.insert(full)
    }

    func makeFile(_ name: String, in directory: OwnedFD, mode: mode_t, path: String) throws(SyscallError) {
        let full = join(directory, name)
        try record("creat(\(full), \(String(mode, radix: 8)))", name: path)
        existing.insert(full)
        files.insert(full)
    }

    func makeSymlink(_ name: String, in directory: OwnedFD, target: String, path: String) throws(SyscallError) {
        try record("symlink(\(join(directory, name)) → \(target))", name: path)
    }

    func makeDevice(_ name: String, in directory: OwnedFD, block: Bool, mode: mode_t, device: UInt64, path: String) throws(SyscallError) {
        try record("mknod(\(join(directory, name)), \(block ? "b" : "c") \(device >> 8):\(device & 0xff))", name: path)
    }

    func changeOwner(_ name: String, in directory: OwnedFD?, uid: UInt32, gid: UInt32, path: String) throws(SyscallError) {
        try record("chown(\(join(directory, name)), \(uid):\(gid))", name: path)
    }

    func changeMode(_ name: String, in directory: OwnedFD, mode: mode_t, path: String) throws(SyscallError) {
        try record("chmod(\(join(directory, name)), \(String(mode, radix: 8)))", name: path)
    }

    func remove(_ name: String, in directory: OwnedFD?, directory isDirectory: Bool, path: String) throws(SyscallError) {
        let full = join(directory, name)
        try record("\(isDirectory ? "rmdir" : "unlink")(\(full))", name: path)
        // As cgroup2's rmdir: refused while a cgroup below or a process (cgroup.events) is left.
        if isDirectory
            && (existing.contains { $0.hasPrefix(full + "/") && !files.contains($0) } || contents[full + "/cgroup.events"] == Array("populated 1\n".utf8))
        {
            throw SyscallError("rmdir", path: path, errno: .resourceBusy)
        }
        existing.remove(full)
    }

    func status(_ fd: OwnedFD, name: String) throws(SyscallError) -> stat {
        try record("fstat(\(label(fd)))", name: name)
        var st = stat()
        st.st_mode = files.contains(label(fd)) ? S_IFREG | 0o644 : S_IFDIR | 0o755
        (st.st_uid, st.st_gid) = owners[label(fd)] ?? (0, 0)
        st.st_dev = 1
        let key = label(fd)
        if inodes[key] == nil { inodes[key] = inodes.count + 1 }
        st.st_ino = ino_t(inodes[key] ?? 0)
        return st
    }

    /// Owners (uid, gid) of paths; root where not said.
    var owners: [String: (UInt32, UInt32)] = [:]

    func write(_ bytes: [UInt8], to fd: OwnedFD, name: String) throws(SyscallError) {
        try record("write(\(label(fd)), \(String(decoding: bytes, as: UTF8.self).debugDescription))", name: name)
        contents[label(fd)] = bytes
        afterWrite(label(fd))
    }

    /// What the kernel does when a file is written (cgroup.kill empties the cgroup …).
    var afterWrite: (String) -> Void = { _ in }

    /// What files hold (cgroupfs, procfs): read by `readAll`, written by `write`.
    var contents: [String: [UInt8]] = [:]

    func readAll(_ fd: OwnedFD, name: String) throws(SyscallError) -> [UInt8] {
        try record("read(\(label(fd)))", name: name)
        return contents[label(fd)] ?? []
    }

    func poll(_ fd: OwnedFD, events: Int16, timeoutMilliseconds: Int32) -> Bool {
        calls.append("poll(\(label(fd)))")
        return true
    }

    func subdirectories(of directory: OwnedFD, name: String) throws(SyscallError) -> [String] {
        let prefix = label(directory) + "/"
        try record("readdir(\(label(directory)))", name: name)
        return existing.filter { $0.hasPrefix(prefix) && !files.contains($0) && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    func exists(_ path: String) -> Bool { existing.contains(path) }

    // MARK: Credentials and namespaces

    func setFilesystemIDs(uid: UInt32, gid: UInt32) { calls.append("setfsuid(\(uid)) setfsgid(\(gid))") }
    func raiseFileOverrides() throws(SyscallError) { try record("capset(+dac_override,dac_read_search,fowner)") }
    func enter(_ namespace: OwnedFD, _ type: NamespaceSet, name: String) throws(SyscallError) { try record("setns(\(label(namespace)))", name: name) }
    func unshare(_ namespaces: NamespaceSet) throws(SyscallError) { try record("unshare(\(namespaces == .mount ? "mnt" : "\(namespaces.rawValue)"))") }
    func becomeRoot() throws(SyscallError) { try record("setresgid(0) setgroups(0) setresuid(0)") }

    func setHostname(_ name: String) throws(SyscallError) { try record("sethostname(\(name))", name: name) }
    func setDomainname(_ name: String) throws(SyscallError) { try record("setdomainname(\(name))", name: name) }
    func bringUp(_ interface: String) throws(SyscallError) { try record("ioctl(SIOCSIFFLAGS, \(interface), IFF_UP)", name: interface) }

    func changeDirectory(to directory: OwnedFD, name: String) throws(SyscallError) {
        try record("fchdir(\(label(directory)))", name: name)
        workingDirectory = label(directory)
    }

    func changeDirectory(_ path: String) throws(SyscallError) {
        try record("chdir(\(path))", name: path)
        workingDirectory = path
    }

    func setResourceLimit(of pid: pid_t, _ limit: ResourceLimit) throws(SyscallError) {
        try record("prlimit(\(pid), \(limit.resource), \(limit.soft), \(limit.hard))")
    }

    func setCPUAffinity(of pid: pid_t, cpus: [Int]) throws(SyscallError) {
        try record("sched_setaffinity(\(pid), \(cpus.map(String.init).joined(separator: ",")))")
    }

    // MARK: Terminals, sockets, cgroups

    func openPTYPeer(_ master: OwnedFD, name: String) throws(SyscallError) -> OwnedFD {
        try record("ioctl(\(label(master)), TIOCSPTLCK, TIOCGPTPEER)", name: name)
        return descriptor("pty peer")
    }

    func bindDatagramSocket(_ name: String, in directory: OwnedFD, path: String) throws(SyscallError) -> OwnedFD {
        try record("bind(\(join(directory, name)))", name: path)
        return descriptor("socket \(join(directory, name))")
    }

    func attachDeviceFilter(_ program: [UInt8], to cgroup: OwnedFD, name: String) throws(SyscallError) {
        try record("bpf(BPF_PROG_ATTACH, \(label(cgroup)), \(program.count / 8) instructions)", name: name)
    }

    static func describe(_ attributes: MountAttributes) -> String {
        let names: [(MountAttributes, String)] = [(.readOnly, "ro"), (.noSUID, "nosuid"), (.noDev, "nodev"), (.noExec, "noexec")]
        let set = names.filter { attributes.contains($0.0) }.map(\.1)
        return set.isEmpty ? "-" : set.joined(separator: "|")
    }
}
