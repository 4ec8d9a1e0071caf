import Testing
@testable import NspawnCore

@Suite struct UserDatabaseTests {
    let passwd = """
        # comment
        root:x:0:0:root:/root:/bin/bash
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
        alice:x:1000:1000:Alice,,,:/home/alice:/bin/sh
        +nis
        broken:x:notanumber:1::/:/bin/sh
        short:x:5
        """
    let group = """
        root:x:0:
        wheel:x:10:alice,bob
        audio:x:29:bob
        alice:x:1000:
        """

    @Test func passwdEntriesAreParsedAndBadLinesSkipped() {
        let entries = UserDatabase.parsePasswd(passwd)
        #expect(entries.map(\.name) == ["root", "daemon", "alice"])
        #expect(entries[2] == PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/sh"))
    }

    @Test func theHostsIDsAreThoseOfTheEntriesTheParsersKeep() {
        let fromEntries = UserDatabase.parsePasswd(passwd).flatMap { [$0.uid, $0.gid] } + UserDatabase.parseGroup(group).map(\.gid)
        let ids = UserDatabase.ids(passwd, fields: 7, numeric: [2, 3]) + UserDatabase.ids(group, fields: 4, numeric: [2])
        #expect(ids == fromEntries)
        #expect(ids == [0, 0, 1, 1, 1000, 1000, 0, 10, 29, 1000])
    }

    @Test func usersAreFoundByNameOrNumber() {
        let entries = UserDatabase.parsePasswd(passwd)
        #expect(UserDatabase.user("alice", in: entries)?.uid == 1000)
        #expect(UserDatabase.user("1", in: entries)?.name == "daemon")
        #expect(UserDatabase.user("nobody", in: entries) == nil)
        // A number is a UID, whatever a line is named: "1000" of UID 0 does not make 1000 root.
        let tricky = UserDatabase.parsePasswd("1000:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
        #expect(UserDatabase.user("1000", in: tricky)?.name == "alice")
    }

    @Test func supplementaryGroupsStartWithThePrimary() throws {
        let alice = try #require(UserDatabase.user("alice", in: UserDatabase.parsePasswd(passwd)))
        #expect(UserDatabase.groups(of: alice, in: UserDatabase.parseGroup(group)) == [1000, 10])
    }
}
