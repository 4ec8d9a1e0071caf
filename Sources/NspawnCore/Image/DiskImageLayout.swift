/// What a disk image holds, as its partition table (or its bare file system) says, and which of its
/// file systems make the machine's tree: the UAPI Discoverable Partitions Specification for GPT,
/// one Linux partition for GPT or MBR, or the whole file. Pure: the entries are read (libblkid,
/// DiskImageProbe) before, the file systems mounted (DiskImage) after.
struct DiskImageLayout: Equatable, Sendable {
    enum Table: String, Equatable, Sendable {
        case gpt, mbr = "dos"
    }

    /// One partition as the table describes it.
    struct Entry: Equatable, Sendable {
        var number: Int
        /// The GPT type GUID in lower case, or the MBR type byte as "0x83".
        var type: String
        /// The GPT partition name (empty for MBR).
        var label = ""
        /// In bytes from the start of the image.
        var offset: UInt64
        var size: UInt64
        /// GPT attribute bits; for MBR, 0x80 marks the bootable partition.
        var flags: UInt64 = 0
        /// The file system (or LUKS header) its first blocks carry, as libblkid names it.
        var fileSystem: String?
    }

    /// A file system to mount and where: the first of `mountPoints` that the tree has (the ESP's
    /// place depends on the tree). The root's mount point is "/".
    struct Mount: Equatable, Sendable {
        var designator: ImagePolicy.Designator
        /// nil for a bare file system (the whole image).
        var partition: Int?
        var offset: UInt64
        var size: UInt64
        var fileSystem: String
        var readOnly: Bool
        var mountPoints: [String]
        /// The GPT read-only flag (bit 60); nil where the table has none (MBR, the ESP, a bare file system).
        var flaggedReadOnly: Bool? = nil
    }

    /// The root first, then the others in mount order (/usr before /var before /var/tmp).
    var mounts: [Mount]

    // MARK: GPT partition types (x86-64 for root and /usr)

    static let rootType = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
    static let usrType = "8484680c-9521-48c6-9c11-b0720656f69e"
    static let rootVerityType = "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5"
    static let rootVeritySignatureType = "41092b05-9fc8-4523-994f-2def0408b176"
    static let usrVerityType = "77ff5f63-e7b6-4633-acf4-1565b864c0e6"
    static let usrVeritySignatureType = "e7bb33fb-06cf-4e81-8273-e543b413e2e2"
    static let genericLinuxType = "0fc63daf-8483-4772-8e79-3d69d8477de4"
    static let types: [String: ImagePolicy.Designator] = [
        rootType: .root, usrType: .usr, rootVerityType: .rootVerity, rootVeritySignatureType: .rootVeritySignature, usrVerityType: .usrVerity,
        usrVeritySignatureType: .usrVeritySignature,
        "933ac7e1-2eb4-4f13-b844-0e14e2aef915": .home, "3b8f8425-20e0-4f3b-907f-1a25a76f98e8": .srv,
        "4d21b016-b534-45c2-a9fb-5c16e091fd2d": .var, "7ec6f557-3bc5-4aca-b293-16ef5df639d1": .tmp,
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": .esp, "bc13c2ff-59e6-4262-a352-b275fd6f7172": .xbootldr,
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": .swap,
    ]
    /// GPT attribute bits of the specification.
    static let noAutoFlag: UInt64 = 1 << 63
    static let readOnlyFlag: UInt64 = 1 << 60

    /// The file systems swift-nspawn mounts from an image (systemd's list, less f2fs).
    static let fileSystems: Set<String> = ["ext4", "ext3", "ext2", "btrfs", "xfs", "erofs", "squashfs", "vfat"]

    /// - Parameters:
    ///   - table: the partition table's kind; nil for an image without one.
    ///   - wholeFileSystem: without a table, the file system the whole image carries.
    ///   - size: the image's size in bytes.
    ///   - readOnly: the whole image is used read-only (--read-only, -x, --volatile, a read-only file).
    init(
        table: Table?, entries: [Entry], wholeFileSystem: String?, size: UInt64, policy: ImagePolicy, readOnly: Bool, image: String
    ) throws(UserError) {
        guard let table else {
            guard let wholeFileSystem else {
                throw UserError("Failed to dissect image \(image): no partition table and no file system found.")
            }
            let mount = Mount(designator: .root, partition: nil, offset: 0, size: size, fileSystem: wholeFileSystem, readOnly: readOnly, mountPoints: ["/"])
            mounts = [try Self.checked(mount, policy: policy, protection: .unprotected, image: image)].compactMap { $0 }
            guard !mounts.isEmpty else { throw UserError("Image \(image) is a bare file system, which the image policy leaves unused: nothing to boot.") }
            return
        }
        var found: [ImagePolicy.Designator: Entry] = [:]
        var genericLinux: [Entry] = []
        for entry in entries {
            switch table {
            case .mbr:
                // As with systemd-nspawn, a single Linux partition, or the one marked bootable.
                if entry.type == "0x83" { genericLinux.append(entry) }
            case .gpt:
                // No-auto (bit 63) keeps any partition but the ESP (where the bit means nothing) out.
                if Self.types[entry.type] != .esp && entry.flags & Self.noAutoFlag != 0 { continue }
                if entry.type == Self.genericLinuxType { genericLinux.append(entry) }
                guard let designator = Self.types[entry.type] else { continue }
                if let previous = found[designator] {
                    // A/B updates: of several root or /usr partitions, the newest by label version wins.
                    guard designator == .root || designator == .usr, VersionOrder.isNewer(entry.label, than: previous.label) else { continue }
                }
                found[designator] = entry
            }
        }
        if found[.root] == nil && found[.usr] == nil {
            let bootable = genericLinux.filter { $0.flags & 0x80 != 0 }
            if genericLinux.count == 1 {
                found[.root] = genericLinux[0]
            } else if table == .mbr && bootable.count == 1 {
                found[.root] = bootable[0]
            } else if genericLinux.count > 1 {
                throw UserError(
                    "Failed to dissect image \(image): \(genericLinux.count) Linux partitions and none marked as the root (Discoverable Partitions); cannot tell which is the root."
                )
            }
        }

        var result: [Mount] = []
        for designator in [ImagePolicy.Designator.root, .usr, .home, .srv, .var, .tmp, .xbootldr, .esp] {
            guard let entry = found[designator] else {
                if !policy.flags(for: designator).contains(.absent) {
                    throw UserError("Image \(image) has no \(designator.rawValue) partition, which the image policy requires.")
                }
                if designator == .root {
                    throw UserError("Failed to dissect image \(image): no root partition found (nor a single Linux partition).")
                }
                continue
            }
            var protection = ImagePolicy.Flags.unprotected
            if designator == .root { protection = found[.rootVeritySignature] != nil ? .signed : found[.rootVerity] != nil ? .verity : .unprotected }
            if designator == .usr { protection = found[.usrVeritySignature] != nil ? .signed : found[.usrVerity] != nil ? .verity : .unprotected }
            if entry.fileSystem == "crypto_LUKS" { protection = .encrypted }
            let mountPoints: [String]
            switch designator {
            case .root: mountPoints = ["/"]
            case .tmp: mountPoints = ["/var/tmp"]
            case .esp: mountPoints = found[.xbootldr] != nil ? ["/efi"] : ["/efi", "/boot"]
            case .xbootldr: mountPoints = ["/boot"]
            default: mountPoints = ["/\(designator.rawValue)"]
            }
            let mount = Mount(
                designator: designator, partition: entry.number, offset: entry.offset, size: entry.size, fileSystem: entry.fileSystem ?? "",
                readOnly: readOnly || (designator != .esp && entry.flags & Self.readOnlyFlag != 0), mountPoints: mountPoints,
                flaggedReadOnly: table == .gpt && designator != .esp ? entry.flags & Self.readOnlyFlag != 0 : nil)
            if let checked = try Self.checked(mount, policy: policy, protection: protection, image: image) { result.append(checked) }
        }
        guard result.first?.designator == .root else {
            throw UserError("Image \(image) has no root partition the image policy lets swift-nspawn use: nothing to boot.")
        }
        mounts = result
    }

    /// The mount as the policy has it (nil: left unused), or why it cannot be.
    private static func checked(_ mount: Mount, policy: ImagePolicy, protection: ImagePolicy.Flags, image: String) throws(UserError) -> Mount? {
        let flags = policy.flags(for: mount.designator)
        let name = "\(mount.designator.rawValue) partition\(mount.partition.map { " (partition \($0))" } ?? "") of \(image)"
        let refusal = UserError("The \(name) is \(Self.describe(protection)), which the image policy does not allow.")
        switch protection {
        case .encrypted:
            guard flags.contains(.encrypted) else { throw refusal }
            throw UserError("The \(name) is LUKS-encrypted, which swift-nspawn cannot unlock here (the kernel has no device-mapper). Refusing.")
        case .verity, .signed:
            // Where the policy asks for it plain only, the file system is used and its Verity data left alone.
            if flags.contains(.unprotected) && flags.isDisjoint(with: [.verity, .signed]) { break }
            guard flags.isDisjoint(with: [.verity, .signed]) else {
                throw UserError(
                    "The \(name) is protected by dm-verity, which swift-nspawn cannot set up here (the kernel has no device-mapper). Refusing; --image-policy=\(Self.unverifiedPolicy) boots it unverified."
                )
            }
            if flags.contains(.unused) { return nil }
            throw refusal
        default:
            guard flags.contains(.unprotected) else { if flags.contains(.unused) { return nil } else { throw refusal } }
        }
        guard fileSystems.contains(mount.fileSystem) else {
            throw UserError(
                mount.fileSystem.isEmpty
                    ? "The \(name) holds no file system swift-nspawn recognizes."
                    : "The \(name) holds a \(mount.fileSystem) file system, which swift-nspawn does not mount (\(fileSystems.sorted().joined(separator: ", ")))."
            )
        }
        // read-only-on and read-only-off ask for the partition's flag to be so (both: either way).
        if flags.contains(.readOnlyOn) != flags.contains(.readOnlyOff), let flagged = mount.flaggedReadOnly,
            flagged != flags.contains(.readOnlyOn)
        {
            throw UserError("The \(name) is \(flagged ? "" : "not ")flagged read-only, which the image policy does not allow.")
        }
        return mount
    }

    /// The policy that boots an image whose root and /usr have Verity data, without it: everything
    /// the default allows, unprotected.
    static let unverifiedPolicy = "root=unprotected+absent:usr=unprotected+absent:=unprotected+unused+absent"

    private static func describe(_ protection: ImagePolicy.Flags) -> String {
        switch protection {
        case .encrypted: "LUKS-encrypted"
        case .verity: "protected by dm-verity"
        case .signed: "protected by signed dm-verity"
        default: "unprotected"
        }
    }
}

/// Orders partition labels such as "debian_12.4" and "debian_12.10" as versions: runs of digits by
/// their value, everything else by character (the way systemd picks the newest of A/B partitions).
enum VersionOrder {
    static func isNewer(_ a: String, than b: String) -> Bool { compare(a, b) > 0 }

    static func compare(_ a: String, _ b: String) -> Int {
        var left = Substring(a).unicodeScalars[...]
        var right = Substring(b).unicodeScalars[...]
        func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }
        while let l = left.first, let r = right.first {
            if isDigit(l) && isDigit(r) {
                let ld = left.prefix(while: isDigit)
                let rd = right.prefix(while: isDigit)
                left = left.dropFirst(ld.count)
                right = right.dropFirst(rd.count)
                let lv = String(String.UnicodeScalarView(ld.drop { $0 == "0" }))
                let rv = String(String.UnicodeScalarView(rd.drop { $0 == "0" }))
                if lv.count != rv.count { return lv.count < rv.count ? -1 : 1 }
                if lv != rv { return lv < rv ? -1 : 1 }
                continue
            }
            if l != r { return l.value < r.value ? -1 : 1 }
            left = left.dropFirst()
            right = right.dropFirst()
        }
        return left.isEmpty ? (right.isEmpty ? 0 : -1) : 1
    }
}
