import Testing

@testable import NspawnCore

/// The network options as systemd-nspawn 252 reads them, and the links they plan: names, MAC
/// addresses, what is addressed and what is not. No root, no system call.
struct NetworkPlanTests {
    private func plan(_ args: [String], machine: String = "web", hostID: String = "0123456789abcdef0123456789abcdef") throws -> NetworkPlan {
        NetworkPlan(configuration: try PlanFixture.configuration(args).network, machine: machine, hostMachineID: hostID)
    }

    @Test func noOptionIsAPrivateNamespaceWithOnlyLoopback() throws {
        let p = try plan([])
        #expect(p.namespace == .own && !p.hasLinks && !p.addressed)
        #expect(try plan(["--no-private-network"]).namespace == .host)
        #expect(try plan(["--network-namespace-path=/run/netns/lab"]).namespace == .joined("/run/netns/lab"))
    }

    @Test func vethIsVeNameToHost0AndAddressed() throws {
        let p = try plan(["-n", "-p", "8080:80", "-p", "udp:53"])
        #expect(p.veth?.hostName == "ve-web" && p.veth?.machineName == "host0" && p.attachment == .routed && p.addressed)
        #expect(p.ports == [PortForward(proto: .tcp, hostPort: 8080, machinePort: 80), PortForward(proto: .udp, hostPort: 53, machinePort: 53)])
    }

    @Test func addressesAreLeftToSystemdNetworkdWhereItRunsOrWhereAsked() throws {
        var host = PlanFixture.host
        host.networkdRunsHere = true
        func plan(_ args: [String], host: HostFacts, environment: [String: String] = [:]) throws -> NetworkPlan {
            guard case .run(let c) = CommandLineParser.parse(args, environment: { environment[$0] }) else { throw UserError("bad arguments: \(args)") }
            return try MachinePlan(
                configuration: c, host: host, image: PlanFixture.image, treeMachineID: nil, idRange: PlanFixture.range, randomID: PlanFixture.randomID
            ).network
        }
        #expect(try !plan(["-n"], host: host).addressed && plan(["-n"], host: host).veth != nil)
        #expect(try plan(["-n"], host: host, environment: ["SWIFT_NSPAWN_OWN_ADDRESSES": "yes"]).addressed)
        #expect(try !plan(["-n"], host: PlanFixture.host, environment: ["SWIFT_NSPAWN_OWN_ADDRESSES": "no"]).addressed)
        #expect(try plan(["-n"], host: PlanFixture.host).addressed)
    }

    @Test func bridgeAndZoneImplyAVethNamedVb() throws {
        let bridged = try plan(["--network-bridge=br0"])
        #expect(bridged.veth?.hostName == "vb-web" && bridged.attachment == .bridge("br0") && !bridged.addressed)
        let zoned = try plan(["--network-zone=lab"])
        #expect(zoned.veth?.hostName == "vb-web" && zoned.attachment == .zone("lab") && zoned.addressed)
    }

    @Test func longNamesAreShortenedWithAHashAndKeepTheirFullNameAside() throws {
        let a = try plan(["-n"], machine: "buildmachine-debian-1")
        let b = try plan(["-n"], machine: "buildmachine-debian-2")
        #expect(a.veth?.hostName.utf8.count == 15 && a.veth?.hostName.hasPrefix("ve-buildmac") == true)
        #expect(a.veth?.fullName == "ve-buildmachine-debian-1")
        #expect(a.veth?.hostName != b.veth?.hostName)
        // Fifteen characters stay as they are; a clash's next try is another valid name.
        #expect(NetworkPlan.shortenedInterfaceName("ve-twelvechars") == "ve-twelvechars")
        let retry = NetworkPlan.shortenedInterfaceName("ve-web", attempt: 1)
        #expect(retry != "ve-web" && NetworkConfiguration.isValidInterfaceName(retry))
    }

    @Test func macAddressesAreStableLocalUnicastAndDifferPerHostMachineAndRole() throws {
        let p = try plan(["-n"])
        let mac = try #require(p.veth?.hostMAC)
        #expect(mac.count == 6 && mac[0] & 0x01 == 0 && mac[0] & 0x02 != 0)
        #expect(try plan(["-n"]).veth?.hostMAC == mac)
        #expect(p.veth?.machineMAC != mac)
        #expect(try plan(["-n"], machine: "db").veth?.hostMAC != mac)
        #expect(try plan(["-n"], hostID: "fedcba9876543210fedcba9876543210").veth?.hostMAC != mac)
    }

    @Test func lowerLinksAndMovedInterfacesGetTheirNames() throws {
        let p = try plan(["--network-macvlan=eth0", "--network-macvlan=eth1:lan", "--network-ipvlan=eth2", "--network-interface=dummy0:inside"])
        #expect(p.lowerLinks.map(\.name) == ["mv-eth0", "lan", "iv-eth2"])
        #expect(p.lowerLinks.map(\.kind) == [.macvlan, .macvlan, .ipvlan])
        #expect(p.lowerLinks[2].mac == nil && p.lowerLinks[0].mac != p.lowerLinks[1].mac)
        #expect(p.movedInterfaces == [.init(host: "dummy0", machine: "inside")])
        #expect(p.namespace == .own && p.hasLinks && !p.addressed)
        let extra = try plan(["--network-veth-extra=side0", "--network-veth-extra=side1:in1"])
        #expect(extra.extraVeths.map(\.hostName) == ["side0", "side1"] && extra.extraVeths.map(\.machineName) == ["side0", "in1"])
    }

    @Test func dhcpServerOffersAndAcknowledgesOnlyTheMachinesOwnAddress() throws {
        let subnet = IPv4Subnet(IPv4Address(parsing: "10.1.2.16")!, prefix: 28)
        let mac: [UInt8] = [0x02, 1, 2, 3, 4, 5]
        let addressing = MachineNetwork.Addressing(
            hostLink: "ve-web", gatewayLink: "ve-web", subnet: subnet, gateway: subnet.host(1), machine: subnet.host(2), machineMAC: mac)
        func request(_ type: UInt8, mac: [UInt8] = mac, options: [UInt8] = []) -> [UInt8] {
            var m = [UInt8](repeating: 0, count: 240)
            m[0] = 1
            m[1] = 1
            m[2] = 6
            m.replaceSubrange(4..<8, with: [9, 8, 7, 6])
            m.replaceSubrange(28..<34, with: mac)
            m.replaceSubrange(236..<240, with: [99, 130, 83, 99])
            return m + [53, 1, type] + options + [255]
        }
        let answer = { (m: [UInt8]) in DHCPAnswer.reply(to: m, addressing: addressing, nameServers: [IPv4Address(parsing: "192.0.2.53")!]) }
        let offer = try #require(answer(request(1)))
        let options = DHCPAnswer.options(offer.message[240...])
        #expect(offer.message[4..<8].elementsEqual([9, 8, 7, 6]) && offer.message[16..<20].elementsEqual([10, 1, 2, 18]))
        #expect(options[53] == [2] && options[54] == [10, 1, 2, 17] && options[3] == [10, 1, 2, 17] && options[1] == [255, 255, 255, 240])
        #expect(options[6] == [192, 0, 2, 53] && offer.destination == IPv4Address(0xffff_ffff))
        #expect(DHCPAnswer.options(answer(request(3, options: [50, 4, 10, 1, 2, 18]))!.message[240...])[53] == [5])
        #expect(DHCPAnswer.options(answer(request(3, options: [50, 4, 10, 1, 2, 19]))!.message[240...])[53] == [6])
        #expect(answer(request(3, options: [54, 4, 10, 9, 9, 9])) == nil)
        #expect(answer(request(1, mac: [0x02, 9, 9, 9, 9, 9])) == nil)
        // Another zone member's renewal (ciaddr set, sent to the gateway) is answered for the MAC
        // its live lease records, and for no other.
        let other: [UInt8] = [0x02, 7, 7, 7, 7, 7]
        var renewal = request(3, mac: other)
        renewal.replaceSubrange(12..<16, with: [10, 1, 2, 20])
        let holder = { (address: IPv4Address) in address == IPv4Address(parsing: "10.1.2.20") ? other : nil }
        let renewed = try #require(DHCPAnswer.reply(to: renewal, addressing: addressing, nameServers: [], leaseHolder: holder))
        #expect(renewed.message[16..<20].elementsEqual([10, 1, 2, 20]) && renewed.destination == IPv4Address(parsing: "10.1.2.20"))
        renewal.replaceSubrange(28..<34, with: [0x02, 8, 8, 8, 8, 8])
        #expect(DHCPAnswer.reply(to: renewal, addressing: addressing, nameServers: [], leaseHolder: holder) == nil)
    }

    @Test func netlinkMessagesArePaddedAndNested() {
        var message = NetlinkMessage(type: 16, flags: NetlinkMessage.request, header: [1, 2, 3])
        message.add(3, string: "ve-a")
        message.nest(18) { $0.add(1, string: "veth") }
        let bytes = message.finished(sequence: 7)
        #expect(bytes.count == 16 + 4 + 12 + 16 && bytes.u32(at: 0) == UInt32(bytes.count) && bytes.u32(at: 8) == 7)
        // The nested attribute carries NLA_F_NESTED and its whole length.
        #expect(bytes.u16(at: 32) == 16 && bytes.u16(at: 34) == 18 | 0x8000)
        let attributes = NetlinkReply.attributes(in: bytes[20...])
        #expect(attributes[3]?.cString == "ve-a" && NetlinkReply.attributes(in: attributes[18]!)[1]?.cString == "veth")
    }

    @Test func subnetsOverlapWhenEitherHoldsTheOther() {
        let a = IPv4Subnet(IPv4Address(parsing: "10.1.0.0")!, prefix: 16)
        #expect(a.overlaps(IPv4Subnet(IPv4Address(parsing: "10.1.2.16")!, prefix: 28)))
        #expect(IPv4Subnet(IPv4Address(parsing: "10.1.2.16")!, prefix: 28).overlaps(a))
        #expect(!a.overlaps(IPv4Subnet(IPv4Address(parsing: "10.2.0.0")!, prefix: 28)))
        #expect(HostResolver.nameServers("nameserver 127.0.0.53\nnameserver 192.0.2.1\n# x\nnameserver ::1\n") == [IPv4Address(parsing: "192.0.2.1")!])
        #expect(HostResolver.reachableNameServers(host: "nameserver 127.0.0.53\n", uplink: "nameserver 192.0.2.7\n") == [IPv4Address(parsing: "192.0.2.7")!])
    }
}

/// --resolv-conf's decision, for the trees and hosts people have: auto never writes the tree.
struct ResolvConfSetupTests {
    private func decide(
        _ mode: ResolvConfMode, tree: PathEntry = .file, host: String? = "nameserver 192.0.2.1\n", uplink: String? = nil, options: [String] = ["-n"],
        readOnly: Bool = false
    ) throws -> (setup: EtcFileSetup?, note: String?) {
        var facts = ResolvConfFacts(tree: tree)
        facts.hostFiles[.host] = host
        facts.hostFiles[.uplink] = uplink
        return ResolvConfSetup.decide(mode, facts: facts, network: try PlanFixture.configuration(options).network, readOnly: readOnly)
    }

    @Test func autoBindsWhatTheMachineCanReachAndNeverWrites() throws {
        #expect(try decide(.auto).setup == .mount(.hostFile("/etc/resolv.conf"), makeMountPoint: false))
        // A local stub on the host: its upstream servers, from resolved's own file.
        #expect(
            try decide(.auto, host: "nameserver 127.0.0.53\n", uplink: "nameserver 192.0.2.7\n").setup
                == .mount(.hostFile("/run/systemd/resolve/resolv.conf"), makeMountPoint: false))
        // Some reachable, some not: a file of the reachable ones.
        let mixed = try decide(.auto, host: "nameserver 127.0.0.1\nnameserver 192.0.2.8\n").setup
        guard case .mount(.contents(let text), makeMountPoint: false)? = mixed else {
            Issue.record("\(String(describing: mixed))")
            return
        }
        #expect(text.hasSuffix("nameserver 192.0.2.8\n") && !text.contains("127.0.0.1"))
        // The host's network: its own file. No addresses of ours, no tree file, or the guest's
        // resolved owning it: nothing.
        #expect(try decide(.auto, options: ["--no-private-network"]).setup == .mount(.hostFile("/etc/resolv.conf"), makeMountPoint: false))
        #expect(try decide(.auto, options: []).setup == nil)
        #expect(try decide(.auto, options: ["--network-bridge=br0"]).setup == nil)
        #expect(try decide(.auto, tree: .missing).setup == nil)
        #expect(try decide(.auto, tree: .symlink(to: "../run/systemd/resolve/stub-resolv.conf")).setup == nil)
    }

    @Test func explicitModesDoWhatTheySay() throws {
        #expect(try decide(.bind(.host), tree: .missing).setup == .mount(.hostFile("/etc/resolv.conf"), makeMountPoint: true))
        #expect(try decide(.copy(.host)).setup == .write(.copy("/etc/resolv.conf")))
        #expect(try decide(.copy(.host), tree: .symlink(to: "x")).setup == nil)
        #expect(try decide(.replace(.host), tree: .symlink(to: "x")).setup == .write(.copy("/etc/resolv.conf")))
        #expect(try decide(.delete).setup == .write(.delete))
        #expect(try decide(.delete, readOnly: true).note?.contains("read-only") == true)
        #expect(try decide(.bind(.stub)).note == "The host has no /run/systemd/resolve/stub-resolv.conf; not updating the machine's resolv.conf.")
        #expect(try decide(.off).setup == nil)
        #expect(try ResolvConfMode.parse("bind-uplink") == .bind(.uplink))
        #expect(throws: UserError.self) { try ResolvConfMode.parse("copy-hosts") }
    }
}
