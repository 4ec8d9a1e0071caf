#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// Users and groups the files do not list (LDAP, sssd, systemd-homed …) are asked for through NSS at
/// each range's first and last ID, as systemd-nspawn does, but in a short-lived child: the NSS
/// modules, and whatever sockets, threads or memory they keep, never enter the supervisor, which
/// lives as long as its machine (and must stay single-threaded to clone a user namespace). The child
/// answers one byte per range, in order, as it goes; the first free range usually ends it after
/// four lookups.
final class NSSRangeProbe {
    private let answers: OwnedFD
    private let child: ChildProcess

    /// Where systemd's NSS module finds users and groups besides its own few (root, nobody, the
    /// dynamic users below 65536): userdb services and userdb records.
    static let userdbPlaces = ["/run/systemd/userdb", "/etc/userdb", "/run/userdb", "/run/host/userdb", "/usr/local/lib/userdb", "/usr/lib/userdb"]

    /// Whether NSS can know no user or group that /etc/passwd and /etc/group do not list (which the
    /// allocator reads itself): passwd and group come from "files", and from "systemd" only while
    /// there is no userdb service or record for it to report. Then nothing needs asking: no child,
    /// no NSS modules loaded (most of a start's system calls and a millisecond otherwise).
    /// `hasEntries`: whether a directory exists and is not empty.
    static func filesSuffice(nsswitch: String?, hasEntries: (String) -> Bool) -> Bool {
        guard let nsswitch else { return false }  // glibc's defaults then: not only files.
        // Read as bytes, with isspace(3)'s white space as glibc's parser has it (Characters would
        // cost a Unicode property lookup each, on every start).
        func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || (0x09...0x0d).contains(byte) }
        func text(_ bytes: some Sequence<UInt8>) -> String { String(decoding: Array(bytes), as: UTF8.self) }
        var sources: [String: [String]] = [:]
        for line in Array(nsswitch.utf8).split(separator: UInt8(ascii: "\n")) where line.first(where: { !isSpace($0) }) != UInt8(ascii: "#") {
            // (A # after the colon is no comment to glibc: a source of that name; not files, then.)
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            sources[text(line[..<colon].filter { !isSpace($0) })] = line[(colon + 1)...].split(whereSeparator: isSpace).map(text)
        }
        guard let passwd = sources["passwd"], let group = sources["group"] else { return false }
        let listed = Set(passwd + group)
        // An action ([NOTFOUND=return]) or any other source: ask NSS.
        guard listed.isSubset(of: ["files", "systemd"]) else { return false }
        return !listed.contains("systemd") || !userdbPlaces.contains(where: hasEntries)
    }

    /// filesSuffice() for this host. A userdb place that cannot be read counts as having entries:
    /// only one that is not there is known to be empty.
    static var filesSufficeHere: Bool {
        filesSuffice(nsswitch: try? FileSystem.readFile("/etc/nsswitch.conf")) { path in
            let fd: OwnedFD
            do throws(SyscallError) { fd = try FileSystem.open(path, O_RDONLY | O_DIRECTORY) } catch { return error.errno != .noSuchFileOrDirectory }
            return (try? FileSystem.entries(of: fd.raw, path: path).isEmpty) != true
        }
    }

    static func knownToNSS(_ range: UIDRange) -> Bool {
        [range.base, range.last].contains { getpwuid($0) != nil || getgrgid($0) != nil }
    }

    init(_ ranges: [UIDRange]) throws {
        var pipe: [Int32] = [-1, -1]
        try sys("pipe2") { nsp_pipe2(&pipe, O_CLOEXEC) }
        let reader = OwnedFD(pipe[0]), writer = OwnedFD(pipe[1])
        child = try ChildProcess.clone(namespaces: [], role: "The NSS lookup of host users") {
            reader.close()
            for range in ranges {
                var answer: UInt8 = NSSRangeProbe.knownToNSS(range) ? 1 : 0
                guard Glibc.write(writer.raw, &answer, 1) == 1 else { _exit(0) }  // the supervisor has its range
            }
            _exit(0)
        }
        writer.close()
        answers = reader
    }

    /// Whether NSS knows an ID of the next range; an error if the child ended without answering.
    func nextIsKnown() throws -> Bool {
        var answer: UInt8 = 0
        guard try sys("read", { Glibc.read(answers.raw, &answer, 1) }) == 1 else {
            throw UserError("The NSS lookup of host users and groups ended without an answer.")
        }
        return answer == 1
    }

    /// Ends the child, which may be in the middle of a lookup that is no longer needed.
    func finish() {
        answers.close()
        child.kill()
    }
}
