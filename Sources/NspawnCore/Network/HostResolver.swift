/// The host's name servers, from its resolv.conf files: those a machine can reach through its
/// gateway (IPv4, and not the host's loopback, where a local stub such as systemd-resolved's
/// 127.0.0.53 answers only the host itself).
enum HostResolver {
    /// The "nameserver" lines' addresses, as written.
    static func nameServerLines(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return words.count >= 2 && words[0] == "nameserver" ? String(words[1]) : nil
        }
    }

    /// The reachable ones among them.
    static func nameServers(_ text: String) -> [IPv4Address] {
        nameServerLines(text).compactMap { IPv4Address(parsing: $0) }.filter { $0.value >> 24 != 127 }
    }

    /// The host's /etc/resolv.conf's reachable servers, or, where it has none (it names a local
    /// stub), those of systemd-resolved's upstream file.
    static func reachableNameServers(
        host: String? = try? FileSystem.readFile(ResolvConfMode.Source.host.path), uplink: String? = try? FileSystem.readFile(ResolvConfMode.Source.uplink.path)
    ) -> [IPv4Address] {
        let own = nameServers(host ?? "")
        return own.isEmpty ? nameServers(uplink ?? "") : own
    }
}
