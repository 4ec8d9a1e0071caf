/// --bind-user=NAME: a host user brought into the machine as systemd-nspawn 252 does it. Its home
/// is bound at /run/host/home/NAME, its UID and GID map onto one of the machine's IDs 60514…60577
/// (the host user's own files then show as that user's), and a JSON user and group record in
/// /run/host/userdb tells the machine's nss-systemd about it.
struct BoundUser: Equatable, Sendable {
    /// The user's name, and its primary group's: only users with a group of their own are bound.
    var name: String
    var hostUID: UInt32
    var hostGID: UInt32
    /// The home directory on the host.
    var home: String
    /// The machine's UID and GID for the user.
    var machineID: UInt32

    /// The machine's IDs for bound users, as systemd-nspawn allocates them.
    static let firstMachineID: UInt32 = 60514
    static let lastMachineID: UInt32 = 60577
    static let homeDirectory = "/run/host/home"
    static let userDatabaseDirectory = "/run/host/userdb"

    var machineHome: String { "\(Self.homeDirectory)/\(name)" }

    /// The records systemd-nspawn 252 writes, field for field: NAME.user and NAME.group, and
    /// UID.user and GID.group as symlinks to them. Names are checked user names: nothing to escape.
    var userRecord: String {
        #"{"userName":"\#(name)","uid":\#(machineID),"gid":\#(machineID),"homeDirectory":"\#(machineHome)","service":"io.systemd.NSpawn"}"#
    }
    var groupRecord: String { #"{"groupName":"\#(name)","gid":\#(machineID),"service":"io.systemd.NSpawn"}"# }

    /// A user or group name systemd accepts for a bound user: [A-Za-z_][A-Za-z0-9_.-]*, at most 31
    /// characters (safe in a file name and in JSON as it is).
    static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 31 else { return false }
        func letter(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f }
        return letter(first) && name.utf8.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e }
    }
}

extension UIDRange {
    /// uid_map (or gid_map) lines: the range, with each bound user's machine ID cut out of it and
    /// mapped onto the user's host ID instead, as systemd-nspawn writes them.
    func mapLines(binding bound: [(machine: UInt32, host: UInt32)]) -> String {
        var lines = ""
        var next: UInt32 = 0
        for (machine, host) in bound.sorted(by: { $0.machine < $1.machine }) where machine < count {
            if machine > next { lines += "\(next) \(base + next) \(machine - next)\n" }
            lines += "\(machine) \(host) 1\n"
            next = machine + 1
        }
        if next < count { lines += "\(next) \(base + next) \(count - next)\n" }
        return lines
    }
}
