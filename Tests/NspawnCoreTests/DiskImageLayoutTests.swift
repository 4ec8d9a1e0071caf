import Testing

@testable import NspawnCore

/// Which file systems of a disk image make the machine's tree, decided from the partition table
/// alone (the Discoverable Partitions Specification and --image-policy), without root.
struct DiskImageLayoutTests {
    typealias Entry = DiskImageLayout.Entry

    private func entry(_ number: Int, _ type: String, label: String = "", flags: UInt64 = 0, fileSystem: String? = "ext4") -> Entry {
        Entry(number: number, type: type, label: label, offset: UInt64(number) << 20, size: 1 << 20, flags: flags, fileSystem: fileSystem)
    }

    private func layout(
        _ entries: [Entry], table: DiskImageLayout.Table = .gpt, policy: ImagePolicy = .containerDefault, readOnly: Bool = false
    ) throws(UserError) -> DiskImageLayout {
        try DiskImageLayout(table: table, entries: entries, wholeFileSystem: nil, size: 64 << 20, policy: policy, readOnly: readOnly, image: "/i.raw")
    }

    private func refusal(_ body: () throws(UserError) -> DiskImageLayout) -> String {
        do {
            _ = try body()
            return ""
        } catch {
            return error.description
        }
    }

    static let home = "933ac7e1-2eb4-4f13-b844-0e14e2aef915"
    static let srv = "3b8f8425-20e0-4f3b-907f-1a25a76f98e8"
    static let esp = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    static let xbootldr = "bc13c2ff-59e6-4262-a352-b275fd6f7172"

    @Test func discoverablePartitionsInMountOrder() throws {
        let result = try layout([
            entry(1, Self.esp, fileSystem: "vfat"), entry(2, Self.home), entry(3, DiskImageLayout.rootType),
            entry(4, DiskImageLayout.usrType), entry(5, Self.srv, flags: DiskImageLayout.noAutoFlag),
        ])
        #expect(result.mounts.map(\.designator) == [.root, .usr, .home, .esp])
        #expect(result.mounts.map(\.mountPoints) == [["/"], ["/usr"], ["/home"], ["/efi", "/boot"]])
        #expect(result.mounts[0].offset == 3 << 20 && result.mounts[0].partition == 3)
    }

    @Test func readOnlyFlagAndPolicyOverride() throws {
        let flagged = [entry(1, DiskImageLayout.rootType), entry(2, Self.home, flags: DiskImageLayout.readOnlyFlag)]
        #expect(try layout(flagged).mounts.map(\.readOnly) == [false, true])
        #expect(try layout(flagged, readOnly: true).mounts.map(\.readOnly) == [true, true])
        // read-only-on and read-only-off ask for the flag to be so; both: either way.
        #expect(try layout(flagged, policy: try .parse("root=unprotected+read-only-off:home=unprotected+read-only-on")).mounts.count == 2)
        #expect(try layout(flagged, policy: try .parse("root=unprotected:home=unprotected+read-only-on+read-only-off")).mounts.count == 2)
        #expect(
            refusal { () throws(UserError) in try layout(flagged, policy: try .parse("root=unprotected+read-only-on:home=unprotected")) }
                == "The root partition (partition 1) of /i.raw is not flagged read-only, which the image policy does not allow.")
    }

    @Test func newestRootByLabelVersion() throws {
        let result = try layout([
            entry(1, DiskImageLayout.rootType, label: "os_1.9"), entry(2, DiskImageLayout.rootType, label: "os_1.10"),
            entry(3, DiskImageLayout.rootType, label: "os_1.10", flags: DiskImageLayout.noAutoFlag),
        ])
        #expect(result.mounts.map(\.partition) == [2])
        #expect(VersionOrder.compare("a_10", "a_9") > 0 && VersionOrder.compare("1.0", "1.0") == 0 && VersionOrder.compare("1.0", "1.0.1") < 0)
        #expect(VersionOrder.compare("1.02", "1.2") == 0 && VersionOrder.compare("b", "a") > 0)
    }

    @Test func singleLinuxPartitionIsTheRoot() throws {
        #expect(try layout([entry(1, DiskImageLayout.genericLinuxType)]).mounts.map(\.partition) == [1])
        #expect(
            try layout([entry(1, DiskImageLayout.genericLinuxType, flags: DiskImageLayout.noAutoFlag), entry(2, DiskImageLayout.genericLinuxType)]).mounts
                .map(\.partition) == [2])
        #expect(try layout([entry(1, "0x83")], table: .mbr).mounts.map(\.partition) == [1])
        #expect(try layout([entry(1, "0x83"), entry(2, "0x83", flags: 0x80)], table: .mbr).mounts.map(\.partition) == [2])
        // A Discoverable root wins over generic Linux partitions.
        #expect(try layout([entry(1, DiskImageLayout.genericLinuxType), entry(2, DiskImageLayout.rootType)]).mounts.map(\.partition) == [2])
        #expect(
            refusal { () throws(UserError) in try layout([entry(1, DiskImageLayout.genericLinuxType), entry(2, DiskImageLayout.genericLinuxType)]) }
                .contains("cannot tell which is the root"))
    }

    @Test func bareFileSystem() throws {
        let result = try DiskImageLayout(
            table: nil, entries: [], wholeFileSystem: "squashfs", size: 4096, policy: .containerDefault, readOnly: false, image: "/i.raw")
        #expect(result.mounts == [.init(designator: .root, partition: nil, offset: 0, size: 4096, fileSystem: "squashfs", readOnly: false, mountPoints: ["/"])])
    }

    @Test func xbootldrTakesBootAndTheESPGoesToEFI() throws {
        let result = try layout([entry(1, DiskImageLayout.rootType), entry(2, Self.esp, fileSystem: "vfat"), entry(3, Self.xbootldr, fileSystem: "vfat")])
        #expect(result.mounts.map(\.mountPoints) == [["/"], ["/boot"], ["/efi"]])
    }

    @Test func protectionAndPolicy() throws {
        let verity = [entry(1, DiskImageLayout.rootType), entry(2, DiskImageLayout.rootVerityType, fileSystem: nil)]
        #expect(refusal { () throws(UserError) in try layout(verity) }.contains("--image-policy=\(DiskImageLayout.unverifiedPolicy) boots it unverified"))
        #expect(try layout(verity, policy: try .parse(DiskImageLayout.unverifiedPolicy)).mounts.map(\.partition) == [1])
        #expect(try layout(verity, policy: try .parse("root=unprotected")).mounts.map(\.partition) == [1])
        let luks = [entry(1, DiskImageLayout.rootType, fileSystem: "crypto_LUKS")]
        #expect(refusal { () throws(UserError) in try layout(luks) }.contains("is LUKS-encrypted, which swift-nspawn cannot unlock here"))
        #expect(refusal { () throws(UserError) in try layout(luks, policy: try .parse("root=unprotected")) }.contains("which the image policy does not allow"))
        #expect(
            refusal { () throws(UserError) in try layout(luks, policy: try .parse("root=unprotected+unused")) }.contains(
                "which the image policy does not allow"))
        // Unused: the home partition is there and left alone; absent-only: it may not be there.
        let withHome = [entry(1, DiskImageLayout.rootType), entry(2, Self.home)]
        #expect(try layout(withHome, policy: try .parse("root=unprotected:home=unused")).mounts.map(\.designator) == [.root])
        #expect(refusal { () throws(UserError) in try layout(withHome, policy: try .parse("root=unprotected:home=absent")) }.contains("does not allow"))
        #expect(
            refusal { () throws(UserError) in try layout([entry(1, DiskImageLayout.rootType)], policy: try .parse("root=unprotected:home=unprotected")) }
                .contains("has no home partition, which the image policy requires"))
        #expect(refusal { () throws(UserError) in try layout([entry(1, Self.home)]) }.contains("no root partition found"))
        #expect(refusal { () throws(UserError) in try layout([entry(1, DiskImageLayout.rootType, fileSystem: "ntfs")]) }.contains("holds a ntfs file system"))
        #expect(refusal { () throws(UserError) in try layout(withHome, policy: try .parse("-")) }.contains("no root partition the image policy lets"))
    }

    @Test func imagePolicyParsing() throws {
        #expect(try ImagePolicy.parse("*").flags(for: .home) == .open)
        #expect(try ImagePolicy.parse("-").flags(for: .root) == .ignore)
        #expect(try ImagePolicy.parse("~").flags(for: .root) == .absent)
        let policy = try ImagePolicy.parse("root=verity+unprotected:=absent:usr=read-only-on")
        #expect(policy.flags(for: .root) == [.verity, .unprotected])
        #expect(policy.flags(for: .home) == .absent)
        #expect(policy.flags(for: .usr) == ImagePolicy.Flags.open.union(.readOnlyOn))
        // Kinds no rule names are ignored.
        #expect(try ImagePolicy.parse("root=unprotected").flags(for: .home) == .ignore)
        for bad in ["root", "root=bogus", "bogus=open", "root=open:root=open", "=open:=absent"] {
            #expect(throws: UserError.self, "\(bad)") { try ImagePolicy.parse(bad) }
        }
    }
}
