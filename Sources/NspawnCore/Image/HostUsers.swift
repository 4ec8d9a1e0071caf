#if canImport(Glibc)
    import Glibc
#endif

extension BoundUser {
    /// The host's users named by --bind-user, looked up through NSS as the host's tools do, each
    /// given the next machine ID in 60514…60577 that the tree's passwd and group do not use, as
    /// systemd-nspawn allocates them; refused where the tree has the name, or where the user's IDs
    /// on the host lie in the machine's range (the kernel would refuse the map).
    static func lookUp(_ names: [String], range: UIDRange, treePasswd: [PasswdEntry], treeGroups: [GroupEntry]) throws(UserError) -> [BoundUser] {
        var users: [BoundUser] = []
        var candidate = firstMachineID
        for name in names {
            guard let entry = getpwnam(name) else { throw UserError("Failed to find user \(name) on the host.") }
            let uid = entry.pointee.pw_uid
            let gid = entry.pointee.pw_gid
            let home = String(cString: entry.pointee.pw_dir)
            guard uid != 0, gid != 0, uid != 65534 else { throw UserError("Binding user \(name) (UID \(uid)) into the machine is not supported.") }
            guard home.hasPrefix("/"), home != "/", FileSystem.exists(home) else {
                throw UserError("Home directory \(home) of user \(name) does not exist or is the root directory.")
            }
            // As systemd-nspawn 252: one machine ID serves as the user's UID and its group's GID.
            let groupName = getgrgid(gid).map { String(cString: $0.pointee.gr_name) }
            guard groupName == name else {
                throw UserError(
                    "User \(name)'s primary group is \(groupName ?? "GID \(gid)"), not a group of its own: mapping users without private groups is not supported."
                )
            }
            guard !range.contains(uid), !range.contains(gid) else {
                throw UserError("UID \(uid) or GID \(gid) of user \(name) lies in the machine's range \(range). Refusing.")
            }
            guard !treePasswd.contains(where: { $0.name == name }), !treeGroups.contains(where: { $0.name == name }) else {
                throw UserError("User or group \(name) already exists in the machine's /etc/passwd or /etc/group. Refusing.")
            }
            while treePasswd.contains(where: { $0.uid == candidate }) || treeGroups.contains(where: { $0.gid == candidate }) { candidate += 1 }
            guard candidate <= lastMachineID, candidate < range.count else {
                throw UserError("No free machine ID in \(firstMachineID)…\(min(lastMachineID, range.count - 1)) for user \(name). Refusing.")
            }
            users.append(BoundUser(name: name, hostUID: uid, hostGID: gid, home: home, machineID: candidate))
            candidate += 1
        }
        return users
    }
}
