/// systemd-nspawn 252's options that swift-nspawn does not have, each refused with why and what to
/// use instead, never as an unknown option: scripts written for systemd-nspawn fail with a reason.
enum UnavailableOptions {
    struct Entry {
        var long: String
        var short: Character?
        var reason: String
    }

    private static let verity = "dm-verity needs device-mapper, which swift-nspawn does not use; --image-policy=root=unprotected boots an image unverified"

    static let entries: [Entry] = [
        Entry(long: "root-hash", reason: verity),
        Entry(long: "root-hash-sig", reason: verity),
        Entry(long: "verity-data", reason: verity),
        Entry(long: "private-users-chown", reason: "swift-nspawn never rewrites the tree's owners; use --private-users-ownership=map"),
        Entry(long: "selinux-context", short: "Z", reason: "swift-nspawn has no SELinux support"),
        Entry(long: "selinux-apifs-context", short: "L", reason: "swift-nspawn has no SELinux support"),
        Entry(long: "share-system", reason: "removed from systemd-nspawn too; a machine always has its own namespaces"),
    ]

    static func long(_ name: Substring) -> Entry? { entries.first { $0.long == name } }
    static func short(_ letter: Character) -> Entry? { entries.first { $0.short == letter } }

    static func refusal(_ entry: Entry) -> UserError {
        UserError("--\(entry.long) is not supported by swift-nspawn: \(entry.reason).")
    }
}
