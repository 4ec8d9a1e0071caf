#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim

/// --set-credential=ID:VALUE and --load-credential=ID:PATH: a secret for the machine, which it finds
/// in $CREDENTIALS_DIRECTORY (systemd's credentials, imported by the guest's systemd as system
/// credentials).
public struct Credential: Equatable, Sendable {
    public var id: String
    public var value: [UInt8]

    /// What systemd takes at most for one credential.
    static let maximumSize = 1 << 20

    /// A credential name is a file name: not empty, no slash, not . or .., at most 255 bytes.
    static func validID(_ id: Substring) -> Bool {
        !id.isEmpty && id != "." && id != ".." && !id.contains("/") && id.utf8.count <= 255
    }

    /// ID:VALUE, the value with C escapes (\n, \t, \\, \xHH, \NNN …), as systemd-nspawn reads it.
    static func parseSet(_ text: String) throws(UserError) -> Credential {
        guard let colon = text.firstIndex(of: ":"), validID(text[..<colon]) else {
            throw UserError("Failed to parse --set-credential= value: \(text) (ID:VALUE, the ID a file name).")
        }
        guard let value = unescape(text[text.index(after: colon)...]) else {
            throw UserError("Failed to unescape the value of --set-credential=\(text).")
        }
        return Credential(id: String(text[..<colon]), value: value)
    }

    /// ID:PATH; the file is read later, by the launcher.
    static func parseLoad(_ text: String) throws(UserError) -> CredentialFile {
        guard let colon = text.firstIndex(of: ":"), validID(text[..<colon]), text.index(after: colon) < text.endIndex else {
            throw UserError("Failed to parse --load-credential= value: \(text) (ID:PATH, the ID a file name).")
        }
        return CredentialFile(id: String(text[..<colon]), path: String(text[text.index(after: colon)...]))
    }

    static func unescape(_ text: Substring) -> [UInt8]? {
        var bytes = Array(text.utf8)[...]
        var result: [UInt8] = []
        func digits(_ count: Int, radix: Int) -> UInt8? {
            let text = String(decoding: bytes.prefix(count), as: UTF8.self)
            guard text.count == count, text.allSatisfy({ $0.isHexDigit && ($0.hexDigitValue ?? 16) < radix }), let value = UInt8(text, radix: radix) else {
                return nil
            }
            bytes = bytes.dropFirst(count)
            return value
        }
        while let byte = bytes.popFirst() {
            guard byte == UInt8(ascii: "\\") else {
                result.append(byte)
                continue
            }
            guard let escape = bytes.popFirst() else { return nil }
            switch escape {
            case UInt8(ascii: "n"): result.append(0x0A)
            case UInt8(ascii: "t"): result.append(0x09)
            case UInt8(ascii: "r"): result.append(0x0D)
            case UInt8(ascii: "a"): result.append(0x07)
            case UInt8(ascii: "b"): result.append(0x08)
            case UInt8(ascii: "f"): result.append(0x0C)
            case UInt8(ascii: "v"): result.append(0x0B)
            case UInt8(ascii: "s"): result.append(0x20)
            case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "'"): result.append(escape)
            case UInt8(ascii: "x"):
                guard let value = digits(2, radix: 16) else { return nil }
                result.append(value)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                bytes = [escape] + bytes
                guard let value = digits(3, radix: 8) else { return nil }
                result.append(value)
            default: return nil
            }
        }
        return result
    }
}

/// --load-credential=ID:PATH before its file is read.
public struct CredentialFile: Equatable, Sendable {
    public var id: String
    /// Absolute, or relative to swift-nspawn's own $CREDENTIALS_DIRECTORY (a unit's LoadCredential=).
    public var path: String

    /// Reads the file: a regular file of at most `Credential.maximumSize` bytes.
    func read(ownCredentials: String?) throws -> Credential {
        let full: String
        if path.hasPrefix("/") {
            full = path
        } else if let ownCredentials {
            full = "\(ownCredentials)/\(path)"
        } else {
            throw UserError(
                "--load-credential=\(id):\(path): a relative path names one of swift-nspawn's own credentials, and it has none ($CREDENTIALS_DIRECTORY is not set)."
            )
        }
        // Looked at before it is opened for reading: opening a device can act on it.
        let node: OwnedFD
        do {
            node = try FileSystem.open(full, NSP_O_PATH)
        } catch {
            throw UserError("Failed to read credential '\(id)' from \(full): \(error.errno.message)")
        }
        guard try FileSystem.status(node, path: full).st_mode & S_IFMT == S_IFREG else {
            throw UserError("Credential '\(id)': \(full) is not a regular file; swift-nspawn reads credentials from regular files only.")
        }
        let fd = try FileSystem.open("/proc/self/fd/\(node.raw)", O_RDONLY | O_NOCTTY)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= Credential.maximumSize {
            let n = try sys("read", path: full) { buffer.withUnsafeMutableBytes { Glibc.read(fd.raw, $0.baseAddress, $0.count) } }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        return Credential(id: id, value: bytes)
    }
}
