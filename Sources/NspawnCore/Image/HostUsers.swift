#if canImport(Glibc)
    import Glibc
#endif

extension BoundUser {
    /// The host's users named by --bind-user, looked up through NSS as the host's tools do, each
    /// given the next machine ID; refused where the tree already has that name or ID.
    static func lookUp(_ names: [String], treePasswd: [PasswdEntry], treeGroups: [GroupEntry]) throws(UserError) -> [BoundUser] {
        var users: [BoundUser] = []
        for (index, name) in names.enumerated() {
            guard let entry = getpwnam(name) else { throw UserError("Failed to find user \(name) on the host.") }
            let uid = entry.pointee.pw_uid
            let gid = entry.pointee.pw_gid
            let home = String(cString: entry.pointee.pw_dir)
            guard uid != 0, gid != 0, uid != 65534 else { throw UserError("Binding user \(name) (UID \(uid)) into the machine is not supported.") }
            guard home.hasPrefix("/"), FileSystem.exists(home) else { throw UserError("Home directory \(home) of user \(name) does not exist.") }
            // As systemd-nspawn 252: one machine ID serves as the user's UID and its group's GID.
            let groupName = getgrgid(gid).map { String(cString: $0.pointee.gr_name) }
            guard groupName == name else {
                throw UserError(
                    "User \(name)'s primary group is \(groupName ?? "GID \(gid)"), not a group of its own: mapping users without private groups is not supported."
                )
            }
            let machineID = firstMachineID + UInt32(index)
            guard !treePasswd.contains(where: { $0.name == name || $0.uid == machineID }) else {
                throw UserError("User \(name) (or UID \(machineID)) already exists in the machine's /etc/passwd. Refusing.")
            }
            guard !treeGroups.contains(where: { $0.name == name || $0.gid == machineID }) else {
                throw UserError("Group \(name) (or GID \(machineID)) already exists in the machine's /etc/group. Refusing.")
            }
            users.append(BoundUser(name: name, hostUID: uid, hostGID: gid, home: home, machineID: machineID))
        }
        return users
    }
}
