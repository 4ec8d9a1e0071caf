#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Paths inside the machine's tree are resolved by the kernel with openat2(2), so a symlink in the
/// tree can never lead a host-privileged process out of it.
enum PathResolution {
    enum Scope: Equatable, Sendable {
        /// Fail with EXDEV on any step that would leave the directory (absolute symlinks included).
        case beneath
        /// Resolve as if the directory were "/": what the machine itself will see.
        case inRoot
        /// No symlinks at all.
        case noSymlinks
    }

    private static let RESOLVE_NO_MAGICLINKS: UInt64 = 0x02
    private static let RESOLVE_NO_SYMLINKS: UInt64 = 0x04
    private static let RESOLVE_BENEATH: UInt64 = 0x08
    private static let RESOLVE_IN_ROOT: UInt64 = 0x10

    static func open(_ relative: String, in directory: Int32, flags: Int32, mode: mode_t = 0, resolve scope: Scope) throws(SyscallError) -> OwnedFD {
        var resolve = RESOLVE_NO_MAGICLINKS
        switch scope {
        case .beneath: resolve |= RESOLVE_BENEATH
        case .inRoot: resolve |= RESOLVE_IN_ROOT
        case .noSymlinks: resolve |= RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
        }
        let path = relative.isEmpty ? "." : relative
        return OwnedFD(
            try sys("openat2", path: "/" + relative) {
                nsp_openat2(directory, path, UInt64(UInt32(bitPattern: flags | O_CLOEXEC)), UInt64(mode), resolve)
            })
    }
}
