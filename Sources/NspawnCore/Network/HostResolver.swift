/// The host's name servers, from its /etc/resolv.conf: those a machine can reach through its
/// gateway (IPv4, and not the host's loopback, where a local stub such as systemd-resolved's
/// 127.0.0.53 answers only the host itself).
enum HostResolver {
    static let path = "/etc/resolv.conf"

    static func nameServers(_ text: String? = try? FileSystem.readFile(path)) -> [IPv4Address] {
        (text ?? "").split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver", let address = IPv4Address(parsing: String(words[1])), address.value >> 24 != 127 else {
                return nil
            }
            return address
        }
    }
}
