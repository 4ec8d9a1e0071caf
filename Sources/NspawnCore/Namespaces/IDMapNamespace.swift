#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// A user namespace that exists only to carry an ID mapping for an idmapped mount (rootidmap,
/// owneridmap): a child is born in it, its maps are written, the namespace is held by a descriptor,
/// and the child is gone again. systemd-nspawn makes the same short-lived helper.
enum IDMapNamespace {
    /// `uidMap` and `gidMap` are /proc/PID/uid_map lines: "INSIDE OUTSIDE COUNT", where INSIDE is the
    /// ID on disk and OUTSIDE the ID it shows as.
    static func make(uidMap: String, gidMap: String) throws -> OwnedFD {
        var pipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pipe, O_CLOEXEC) }
        let reader = OwnedFD(pipe[0]), writer = OwnedFD(pipe[1])
        let child = try ChildProcess.clone(namespaces: [.user], role: "The ID-mapping helper") {
            writer.close()
            // Lives until the parent has the namespace: its end of the pipe closes then.
            var byte: UInt8 = 0
            _ = try? sys("read") { Glibc.read(reader.raw, &byte, 1) }
            _exit(0)
        }
        reader.close()
        defer {
            writer.close()
            _ = try? child.wait()
        }
        try FileSystem.write(uidMap, to: "/proc/\(child.pid)/uid_map")
        try FileSystem.write(gidMap, to: "/proc/\(child.pid)/gid_map")
        return try FileSystem.open("/proc/\(child.pid)/ns/user", O_RDONLY)
    }
}
