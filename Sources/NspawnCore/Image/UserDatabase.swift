/// Entries of passwd(5) and group(5) files, parsed by us: the tree's own files are read as data,
/// never by running a program inside the machine.
public struct PasswdEntry: Equatable, Sendable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var home: String
    public var shell: String
}

public struct GroupEntry: Equatable, Sendable {
    public var name: String
    public var gid: UInt32
    public var members: [String]
}

public enum UserDatabase {
    public static func parsePasswd(_ text: String) -> [PasswdEntry] {
        records(text, fields: 7).compactMap { f in
            guard let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
            return PasswdEntry(name: f[0], uid: uid, gid: gid, home: f[5], shell: f[6])
        }
    }

    public static func parseGroup(_ text: String) -> [GroupEntry] {
        records(text, fields: 4).compactMap { f in
            guard let gid = UInt32(f[2]) else { return nil }
            return GroupEntry(name: f[0], gid: gid, members: f[3].split(separator: ",").map(String.init))
        }
    }

    /// Looks a user up by number where it is one, else by name, as systemd's get_user_creds() does
    /// for --user: the machine's passwd cannot turn "1000" into a user of another UID by naming it so.
    public static func user(_ nameOrID: String, in entries: [PasswdEntry]) -> PasswdEntry? {
        if let id = UInt32(nameOrID) { return entries.first { $0.uid == id } }
        return entries.first { $0.name == nameOrID }
    }

    /// The supplementary groups of a user, as initgroups(3) computes them, with the primary group first.
    public static func groups(of user: PasswdEntry, in groups: [GroupEntry]) -> [UInt32] {
        var result = [user.gid]
        for group in groups where group.members.contains(user.name) && !result.contains(group.gid) {
            result.append(group.gid)
        }
        return result
    }

    /// The IDs in the numeric fields `numeric` of each record that parsePasswd or parseGroup would
    /// keep (all of them numbers): the host's, read on every start, without making a String of
    /// every field.
    static func ids(_ text: String, fields: Int, numeric: [Int]) -> [UInt32] {
        fieldBytes(text, fields: fields).flatMap { f -> [UInt32] in
            let ids = numeric.compactMap { UInt32(String(decoding: f[$0], as: UTF8.self)) }
            return ids.count == numeric.count ? ids : []
        }
    }

    private static func records(_ text: String, fields: Int) -> [[String]] {
        fieldBytes(text, fields: fields).map { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// Lines of colon-separated fields; comments, NIS "+"/"-" lines and short lines are skipped.
    /// Split on bytes, not Characters: these files are read on every start.
    private static func fieldBytes(_ text: String, fields: Int) -> [[ArraySlice<UInt8>]] {
        let bytes = Array(text.utf8)
        return bytes.split(separator: UInt8(ascii: "\n")).compactMap { line in
            guard let first = line.first, first != UInt8(ascii: "#"), first != UInt8(ascii: "+"), first != UInt8(ascii: "-") else {
                return nil
            }
            let parts = line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            return parts.count >= fields ? parts : nil
        }
    }
}
