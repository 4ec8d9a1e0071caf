import Foundation
import Testing

/// The machine's network, end to end, with swift-nspawn run inside a network namespace of the
/// test's standing in for the host, and a second one for a client on the host's LAN (TestNetwork):
/// links, addresses, DHCP, NAT, port forwards, moved and lower links, bad input, and what every
/// exit path leaves behind (nothing).
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct NetworkTests {
    /// host0 has its address and default route when the payload starts, so a busybox payload
    /// reaches its gateway at once; nothing of it remains afterwards.
    @Test func vethGivesHost0AnAddressAndARouteBeforeThePayloadStarts() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let before = try network.state()
        let result = try network.nspawn(
            machine, ["-n"],
            ["sh", "-c", "ip -4 -o addr show host0; ip route; ping -c 1 -W 2 $(ip route | awk '/default/ {print $3}') >/dev/null && echo reached"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("inet 10.") && result.stdout.contains("default via 10.") && result.stdout.contains("reached"), "\(result.stdout)")
        try network.expectUnchanged(since: before)
    }

    /// --resolv-conf=auto with -n covers the tree's /etc/resolv.conf with one the machine can use,
    /// read-only, and writes nothing into the tree; copy-host writes, as asked.
    @Test(.enabled(if: !HostFile.nameServers().isEmpty, "the host's resolv.conf names no server a machine could reach"))
    func resolvConfIsBoundByDefaultAndCopiedOnRequest() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let file = machine.root.appendingPathComponent("etc/resolv.conf")
        try "nameserver 192.0.2.99\n".write(to: file, atomically: false, encoding: .utf8)
        let tree = treeFingerprint(machine.path)
        let servers = HostFile.nameServers()
        let bound = try network.nspawn(machine, ["-n"], ["sh", "-c", "grep ^nameserver /etc/resolv.conf; echo x >> /etc/resolv.conf || echo read-only"])
        #expect(bound.status == 0, "\(bound.stderr)")
        #expect(bound.lines == servers.map { "nameserver \($0)" } + ["read-only"], "\(bound.stdout)")
        #expect(treeFingerprint(machine.path) == tree)
        let copied = try network.nspawn(machine, ["--resolv-conf=copy-host"], ["true"])
        #expect(copied.status == 0, "\(copied.stderr)")
        #expect(try String(contentsOf: file, encoding: .utf8) == (try String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)))
    }

    /// A guest's DHCP client (busybox udhcpc here) is answered with the address it already has.
    @Test func dhcpClientGetsTheMachinesAddress() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let result = try network.nspawn(
            machine, ["-n"],
            ["sh", "-c", "a=$(ip -4 -o addr show host0 | awk '{print $4}'); ip addr flush dev host0; udhcpc -i host0 -n -q -f -s /bin/true 2>&1; echo had $a"])
        #expect(result.status == 0, "\(result.stderr)")
        let had = try #require(result.lines.last?.split(separator: " ").last?.split(separator: "/").first)
        #expect(result.stdout.contains("lease of \(had) obtained"), "\(result.stdout)")
    }

    /// The machine reaches the LAN through NAT, over IPv4 and IPv6; -p tcp:8080:80 reaches the
    /// machine from the LAN (both families), from the host's own address and from localhost; the
    /// owned table goes with the machine.
    @Test func natAndPortForwardsWorkFromTheLANTheHostAndLocalhost() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let before = try network.state()
        let lanOutput = machine.directory.appendingPathComponent("lan-received")
        let lanServer = try network.start(in: network.lan, ["/bin/busybox", "nc", "-l", "-p", "9999"], output: lanOutput)
        defer { stop(lanServer) }
        let run = try BootRun(
            [
                "-D", machine.path, "-P", "-q", "--register=no", "-n", "-p", "tcp:8080:80", "sh", "-c",
                "echo from-machine | nc -w 3 \(TestNetwork.lanAddress) 9999; ping -c 1 -W 3 \(TestNetwork.lanAddress6) >/dev/null && echo ipv6-nat; "
                    + "for i in 1 2 3 4; do echo answer-$i | nc -l -p 80 -w 5; done; sleep 2",
            ], in: machine.directory, prefix: network.prefix)
        #expect(waitUntil { (try? String(contentsOf: lanOutput, encoding: .utf8))?.contains("from-machine") == true })
        var answers: [String] = []
        let clients = [
            (network.lan, TestNetwork.hostAddress), (network.host, TestNetwork.hostAddress), (network.host, "127.0.0.1"),
            (network.lan, TestNetwork.hostAddress6),
        ]
        for (namespace, address) in clients {
            var answer = ""
            for _ in 0..<20 where !answer.contains("answer-") {
                answer = try network.exec(in: namespace, ["/bin/sh", "-c", "echo hi | busybox nc -w 2 \(address) 8080"]).stdout
                if !answer.contains("answer-") { usleep(100_000) }
            }
            answers.append(answer.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(answers == ["answer-1", "answer-2", "answer-3", "answer-4"])
        #expect(try network.tables().contains { $0.hasPrefix("table inet swift-nspawn-ve-") })
        // Someone else's `nft flush ruleset` does not touch a table its owner holds.
        try network.exec(in: network.host, ["/usr/sbin/nft", "flush", "ruleset"])
        #expect(try network.tables().contains { $0.hasPrefix("table inet swift-nspawn-ve-") })
        #expect(run.finish(timeout: 20) == 0, "\(run.stderr)")
        #expect(run.transcript.contains("ipv6-nat"), "\(run.transcript)")
        try network.expectUnchanged(since: before)
    }

    /// localhost:PORT needs route_localnet on the machine's veth; the machine's root must not
    /// use it to reach the host's localhost services: what it sends on its link to or from
    /// 127.0.0.0/8 is dropped (it routes 127.0.0.0/8 to its gateway to try).
    @Test func theMachineCannotReachTheHostsLocalhost() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let secret = machine.directory.appendingPathComponent("secret")
        // A server on the host's 127.0.0.2 that gives up after six seconds.
        let server = try network.start(
            in: network.host,
            [
                "/usr/bin/python3", "-c",
                "import socket; s = socket.socket(); s.settimeout(6); s.bind(('127.0.0.2', 7777)); s.listen(); c, _ = s.accept(); print('reached', c.recv(100))",
            ], output: secret)
        defer { stop(server) }
        usleep(300_000)
        let result = try network.nspawn(
            machine, ["-n", "-p", "8080:80"],
            [
                "sh", "-c",
                "gw=$(ip route | awk '/default/ {print $3}'); echo 1 > /proc/sys/net/ipv4/conf/host0/route_localnet; "
                    + "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet; ip route del 127.0.0.0/8 dev lo table local; "
                    + "ip route add 127.0.0.0/8 via $gw dev host0 && echo routed; echo leaked | nc -w 2 127.0.0.2 7777",
            ])
        #expect(result.lines.first == "routed", "\(result.stdout) \(result.stderr)")
        #expect(waitUntil { !server.isRunning })
        #expect(!((try? String(contentsOf: secret, encoding: .utf8)) ?? "").contains("reached"))
    }

    /// Where the host's systemd-networkd addresses the links (simulated: SWIFT_NSPAWN_OWN_ADDRESSES=no,
    /// and the test gives the host end its address as networkd would), swift-nspawn makes the
    /// links only, and -p follows the address the machine is given.
    @Test func portsFollowTheAddressTheMachineIsGivenWhenAddressesAreNotOurs() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let before = try network.state()
        let run = try BootRun(
            [
                "-D", machine.path, "-P", "-q", "--register=no", "-n", "-p", "8080:80", "sh", "-c",
                "ip -4 -o addr show host0 | grep -q inet && echo addressed; sleep 0.5; ip link set host0 up; ip addr add 10.77.0.2/24 dev host0; "
                    + "echo answer | nc -l -p 80 -w 5",
            ], in: machine.directory, environment: ["SWIFT_NSPAWN_OWN_ADDRESSES": "no"], prefix: network.prefix)
        let hostEnd = "ve-\(machine.name)".prefix(15)
        #expect(waitUntil { (try? TestNetwork.ip(["-n", network.host, "addr", "add", "10.77.0.1/24", "dev", String(hostEnd)])) != nil })
        var answer = ""
        for _ in 0..<40 where !answer.contains("answer") {
            answer = try network.exec(in: network.host, ["/bin/sh", "-c", "echo hi | busybox nc -w 1 10.77.0.1 8080"]).stdout
            if !answer.contains("answer") { usleep(100_000) }
        }
        #expect(answer.contains("answer"))
        #expect(run.finish(timeout: 20) == 0, "\(run.stderr)")
        #expect(!run.transcript.contains("addressed"))
        try network.expectUnchanged(since: before)
    }

    /// A reboot makes the links again in the same process: the next boot waits for the old
    /// namespace's link to go, and gets the same name and address. A host link that already has
    /// the machine's name is no failure: the machine's gets the next hashed name.
    @Test func rebootKeepsTheAddressAndATakenNameIsResolved() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let shared = machine.directory.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o1777], ofItemAtPath: shared.path)
        let before = try network.state()
        let script =
            "n=$(cat /shared/n 2>/dev/null || echo 0); echo $((n + 1)) > /shared/n; ip -4 -o addr show host0 | awk '{print $4}' >> /shared/addresses; "
            + "[ $n -ge 1 ] && exit 0; sleep 30"
        let run = try BootRun(
            ["-D", machine.path, "-P", "-q", "--register=no", "-a", "--kill-signal=SIGRTMIN+5", "-n", "--bind=\(shared.path):/shared", "sh", "-c", script],
            in: machine.directory, prefix: network.prefix)
        let addresses = shared.appendingPathComponent("addresses")
        #expect(waitUntil { ((try? String(contentsOf: addresses, encoding: .utf8)) ?? "").hasSuffix("\n") })
        kill(run.pid, SIGTERM)
        #expect(run.finish(timeout: 20) == 0, "\(run.stderr)")
        let lines = ((try? String(contentsOf: addresses, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines.count == 2 && lines[0] == lines[1] && lines[0].hasPrefix("10."), "\(lines)")
        try network.expectUnchanged(since: before)

        // ve-NAME taken by a link of someone else's.
        let name = String("ve-\(machine.name)".prefix(15))
        try TestNetwork.ip(["-n", network.host, "link", "add", name, "type", "veth", "peer", "name", "someone0"])
        let taken = try network.state()
        let result = try network.nspawn(machine, ["-n"], ["sh", "-c", "ip -4 -o addr show host0 | grep -q inet && echo up"])
        #expect(result.status == 0 && result.lines == ["up"], "\(result.stderr)")
        try network.expectUnchanged(since: taken)
    }

    /// Two machines in one zone share its bridge and subnet and reach each other and the host end;
    /// the bridge goes with the last of them.
    @Test func zoneMembersTalkToEachOther() throws {
        let network = try TestNetwork()
        let first = try TestMachine()
        let second = try TestMachine()
        let before = try network.state()
        let shared = first.directory.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o1777], ofItemAtPath: shared.path)
        let zone = ["--network-zone=t\(String(UInt16.random(in: 0...UInt16.max), radix: 36))", "--bind=\(shared.path):/shared"]
        let server = try BootRun(
            ["-D", first.path, "-P", "-q", "--register=no", "-M", "zone-member-number-one"] + zone
                + ["sh", "-c", "ip -4 -o addr show host0 | awk '{print $4}' | cut -d/ -f1 > /shared/address; sleep 8"],
            in: first.directory, prefix: network.prefix)
        let address = shared.appendingPathComponent("address")
        #expect(waitUntil { ((try? String(contentsOf: address, encoding: .utf8)) ?? "").hasSuffix("\n") })
        let result = try network.nspawn(
            second, ["-M", "zone-member-number-two"] + zone,
            [
                "sh", "-c",
                "ping -c 1 -W 2 $(cat /shared/address) >/dev/null && echo peer; ping -c 1 -W 2 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gateway",
            ])
        #expect(result.lines == ["peer", "gateway"], "\(result.stdout) \(result.stderr)")
        kill(server.pid, SIGTERM)
        _ = server.finish(timeout: 15)
        try network.expectUnchanged(since: before)
    }

    /// --network-bridge adds vb-NAME to the user's bridge, which stays as it was.
    @Test func bridgeGetsTheMachinesVethAndKeepsItsOwnState() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        // With an address of its own: a bridge that took its MAC from its ports has none once they are gone.
        try TestNetwork.ip(["-n", network.host, "link", "add", "testbr0", "address", "02:00:00:00:00:01", "type", "bridge"])
        let before = try network.state()
        let run = try BootRun(
            ["-D", machine.path, "-P", "-q", "--register=no", "--network-bridge=testbr0", "sleep", "5"], in: machine.directory, prefix: network.prefix)
        #expect(
            waitUntil {
                ((try? TestNetwork.ip(["-n", network.host, "-o", "link", "show", "master", "testbr0"])) ?? []).contains {
                    $0.contains("vb-\(machine.name.prefix(8))")
                }
            })
        kill(run.pid, SIGTERM)
        _ = run.finish(timeout: 15)
        try network.expectUnchanged(since: before)
    }

    /// A macvlan and a veth-extra are made in the machine; a moved interface (a veth end here:
    /// this kernel has no dummy links) is back under its own name afterwards.
    @Test func macvlanExtraVethAndMovedInterface() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        try TestNetwork.ip(["-n", network.host, "link", "add", "movable0", "type", "veth", "peer", "name", "movable1"])
        let before = try network.state()
        let result = try network.nspawn(
            machine, ["--network-macvlan=uplink", "--network-interface=movable0:moved", "--network-veth-extra=side0:inside0"],
            ["sh", "-c", "ip -o link | awk '{print $2}' | cut -d@ -f1 | tr -d :"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Set(result.lines) == ["lo", "mv-uplink", "moved", "inside0"], "\(result.stdout)")
        try network.expectUnchanged(since: before)
    }

    /// Bad input is one line and status 1, and the host namespace is as it was.
    @Test(arguments: [
        (["--network-interface=nothere0"], "Network interface nothere0 does not exist"),
        (["--network-macvlan=nothere0"], "Network interface nothere0 does not exist"),
        (["--network-bridge=nothere0"], "Bridge nothere0 does not exist"),
        (["--network-veth-extra=uplink"], "Failed to add new veth interfaces (uplink:uplink): File exists"),
        (["--network-ipvlan=uplink"], "ipvlan"),
        (["--network-zone=much-too-long"], "Network zone name not valid"),
        (["-n", "--network-namespace-path=/run/netns/x"], "cannot be combined"),
        (["--network-namespace-path=/proc/self/ns/mnt"], "doesn't refer to a network namespace"),
    ])
    func badNetworkInputLeavesTheHostAsItWas(options: [String], expected: String) throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let before = try network.state()
        let result = try network.nspawn(machine, options, ["true"])
        #expect(result.status == 1 && result.stderrLines.count == 1 && result.stderr.contains(expected), "\(result.stderr)")
        try network.expectUnchanged(since: before)
    }

    /// A host port that a program holds, or another machine forwards, is refused; the first machine
    /// keeps it.
    @Test func aTakenHostPortIsRefused() throws {
        let network = try TestNetwork()
        let first = try TestMachine()
        let second = try TestMachine()
        let run = try BootRun(["-D", first.path, "-P", "-q", "--register=no", "-n", "-p", "8080", "sleep", "5"], in: first.directory, prefix: network.prefix)
        #expect(waitUntil { ((try? network.tables()) ?? []).contains { $0.contains("swift-nspawn") } })
        let before = try network.state()
        let result = try network.nspawn(second, ["-n", "-p", "8080:80"], ["true"])
        #expect(result.status == 1 && result.stderr.contains("Port tcp:8080 is taken on the host"), "\(result.stderr)")
        try network.expectUnchanged(since: before)
        kill(run.pid, SIGTERM)
        _ = run.finish(timeout: 15)
    }

    /// SIGKILL of the supervisor at several points of start-up and while running: the kernel
    /// takes the veth pair with the namespace and the owned table with the socket, and the next
    /// run removes the zone's empty bridge; the host namespace is then as it was.
    @Test(arguments: [0, 20, 60, 150, 400])
    func sigkillOfTheSupervisorThenTheNextRunLeavesNothing(milliseconds: Int) throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let before = try network.state()
        let zone = "--network-zone=k\(milliseconds)"
        let run = try BootRun(
            ["-D", machine.path, "-P", "-q", "--register=no", zone, "-p", "8081:80", "sleep", "10"], in: machine.directory, prefix: network.prefix)
        usleep(useconds_t(milliseconds * 1000))
        kill(run.pid, SIGKILL)
        _ = run.finish(timeout: 10)
        let next = try network.nspawn(machine, [zone], ["true"])
        #expect(next.status == 0, "\(next.stderr)")
        try network.expectUnchanged(since: before)
    }

    /// A booted Debian whose systemd-networkd (enabled in the copy) manages host0 with its
    /// 80-container-host0.network gets its address from swift-nspawn's DHCP server, reaches the
    /// LAN through NAT, and powers off leaving the host namespace as it was.
    @Test func debianWithNetworkdGetsItsAddressByDHCPAndReachesTheLAN() throws {
        let network = try TestNetwork()
        let machine = try DebianMachine()
        let system = machine.root.appendingPathComponent("etc/systemd/system")
        for (wants, unit) in [("multi-user.target.wants", "systemd-networkd.service"), ("sockets.target.wants", "systemd-networkd.socket")] {
            try FileManager.default.createDirectory(at: system.appendingPathComponent(wants), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(
                atPath: system.appendingPathComponent("\(wants)/\(unit)").path, withDestinationPath: "/usr/lib/systemd/system/\(unit)")
        }
        try machine.addService(
            "lan-report.service",
            """
            [Service]
            Type=oneshot
            StandardOutput=journal+console
            ExecStart=/bin/bash -c 'for i in $(seq 200); do ls /run/systemd/netif/leases/* >/dev/null 2>&1 && break; sleep 0.1; done; \
                grep -h -E "^(ADDRESS|ROUTER)=" /run/systemd/netif/leases/* | sed "s/^/lease-/"; echo from-debian > /dev/tcp/\(TestNetwork.lanAddress)/9999'
            """)
        let lanOutput = machine.directory.appendingPathComponent("lan-received")
        let lanServer = try network.start(in: network.lan, ["/bin/busybox", "nc", "-l", "-p", "9999"], output: lanOutput)
        defer { stop(lanServer) }
        let before = try network.state()
        let run = try BootRun(["-D", machine.path, "-b", "-n", "--register=no", "--console=read-only"], in: machine.directory, prefix: network.prefix)
        #expect(run.waitFor("lease-ROUTER=10."), "\(run.transcript.suffix(3000)) \(run.stderr)")
        #expect(run.transcript.contains("lease-ADDRESS=10."))
        #expect(waitUntil { (try? String(contentsOf: lanOutput, encoding: .utf8))?.contains("from-debian") == true })
        kill(run.pid, SIGTERM)
        #expect(run.finish(timeout: 30) == 0, "\(run.stderr)")
        try network.expectUnchanged(since: before)
    }

    /// --network-namespace-path: the machine lives in that namespace, with its links in /sys.
    @Test func joinedNamespaceIsTheMachines() throws {
        let network = try TestNetwork()
        let machine = try TestMachine()
        let result = try network.nspawn(
            machine, ["--network-namespace-path=/run/netns/\(network.lan)"], ["sh", "-c", "ls /sys/class/net; ip -4 -o addr show lan0"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines.contains("lan0") && result.stdout.contains(TestNetwork.lanAddress), "\(result.stdout)")
    }
}

/// The host's name servers a machine can reach (not on its loopback), as --resolv-conf=auto gives them.
enum HostFile {
    static func nameServers() -> [String] {
        let text = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            return words.count >= 2 && words[0] == "nameserver" && !words[1].hasPrefix("127.") && !words[1].contains(":") ? String(words[1]) : nil
        }
    }
}

/// Waits (bounded, 10 s) until the predicate holds.
func waitUntil(timeout: TimeInterval = 10, _ predicate: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if predicate() { return true }
        usleep(50_000)
    }
    return false
}
