/// The names of file systems by their statfs(2) magic numbers (linux/magic.h), for messages.
enum FileSystemName {
    static let known: [Int: String] = [
        0xEF53: "ext4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs", 0x0102_1994: "tmpfs", 0x794C_7630: "overlayfs",
        0x6969: "nfs", 0xFE53_4D42: "smb2", 0xFF53_4D42: "cifs", 0x6573_5546: "fuse", 0x2FC1_2FC1: "zfs", 0x7304_7305: "ocfs2",
        0x4D44: "vfat", 0x7366_7384: "ntfs", 0x5346_544E: "ntfs", 0x9FA0: "proc", 0x6265_6572: "sysfs", 0x2402_1994: "squashfs",
        0x7371_7368: "squashfs", 0x28CD_3D45: "cramfs", 0xE0F5_E1E2: "erofs", 0x0102_1997: "9p", 0xF2F5_2010: "f2fs",
    ]

    static func of(_ type: Int?) -> String {
        guard let type else { return "an unknown file system" }
        return known[type] ?? "a file system of type 0x\(String(type, radix: 16))"
    }
}
