#if canImport(Glibc)
    import Glibc
#endif
import CBlkid
import CNspawnShim

/// Reads a disk image's partition table and the file system signatures of its partitions with
/// libblkid, from the open image file: nothing is mounted or attached to read them. The library is
/// opened here, not at every start (see blkid_loader.c).
enum DiskImageProbe {
    struct Contents {
        var table: DiskImageLayout.Table?
        var entries: [DiskImageLayout.Entry]
        /// Without a table: the file system the whole image carries.
        var wholeFileSystem: String?
    }

    static func read(_ fd: OwnedFD, size imageSize: UInt64, image: String) throws(UserError) -> Contents {
        guard nsp_blkid_load() == 0 else { throw UserError("Failed to load libblkid: \(String(cString: nsp_blkid_load_error())).") }
        guard let probe = blkid_new_probe() else { throw UserError("Failed to allocate a libblkid probe for \(image).") }
        defer { blkid_free_probe(probe) }
        guard blkid_probe_set_device(probe, fd.raw, 0, 0) == 0 else { throw UserError("Failed to read image \(image) with libblkid.") }
        blkid_probe_enable_partitions(probe, 1)
        blkid_probe_enable_superblocks(probe, 1)
        blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_TYPE)
        switch blkid_do_safeprobe(probe) {
        case 0: break
        case 1: throw UserError("Failed to dissect image \(image): no partition table and no file system found.")
        case -2: throw UserError("Failed to dissect image \(image): it carries signatures of more than one partition table or file system.")
        default: throw UserError("Failed to dissect image \(image): libblkid could not read it.")
        }
        let tableKind = lookup(probe, "PTTYPE")
        guard let tableKind else {
            return Contents(table: nil, entries: [], wholeFileSystem: lookup(probe, "TYPE"))
        }
        guard let table = DiskImageLayout.Table(rawValue: tableKind) else {
            throw UserError("Failed to dissect image \(image): a partition table of kind \(tableKind), not GPT or MBR.")
        }
        guard let list = blkid_probe_get_partitions(probe) else {
            throw UserError("Failed to dissect image \(image): libblkid could not list its partitions.")
        }
        var entries: [DiskImageLayout.Entry] = []
        for index in 0..<max(0, blkid_partlist_numof_partitions(list)) {
            guard let partition = blkid_partlist_get_partition(list, index) else { continue }
            let start = blkid_partition_get_start(partition)
            let length = blkid_partition_get_size(partition)
            guard start >= 0, length > 0 else { continue }
            let offset = UInt64(start) * 512
            let size = UInt64(length) * 512
            guard offset + size <= imageSize else {
                throw UserError("Failed to dissect image \(image): partition \(blkid_partition_get_partno(partition)) ends beyond the end of the image.")
            }
            let type: String
            if table == .gpt {
                type = blkid_partition_get_type_string(partition).map { String(cString: $0).lowercased() } ?? ""
            } else {
                // Extended partitions hold others; their entries are not file systems.
                type = "0x" + String(blkid_partition_get_type(partition), radix: 16)
            }
            entries.append(
                DiskImageLayout.Entry(
                    number: Int(blkid_partition_get_partno(partition)), type: type,
                    label: blkid_partition_get_name(partition).map { String(cString: $0) } ?? "", offset: offset, size: size,
                    flags: UInt64(blkid_partition_get_flags(partition)), fileSystem: fileSystem(fd, offset: offset, size: size)))
        }
        return Contents(table: table, entries: entries, wholeFileSystem: nil)
    }

    /// The file system (or LUKS header, "crypto_LUKS") at this place of the image, if libblkid knows it.
    static func fileSystem(_ fd: OwnedFD, offset: UInt64, size: UInt64) -> String? {
        guard let probe = blkid_new_probe() else { return nil }
        defer { blkid_free_probe(probe) }
        guard blkid_probe_set_device(probe, fd.raw, blkid_loff_t(offset), blkid_loff_t(size)) == 0 else { return nil }
        blkid_probe_enable_partitions(probe, 0)
        blkid_probe_enable_superblocks(probe, 1)
        blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_TYPE)
        guard blkid_do_safeprobe(probe) == 0 else { return nil }
        return lookup(probe, "TYPE")
    }

    /// The image's size in bytes: a file's length or a block device's.
    static func size(_ fd: OwnedFD) -> UInt64? {
        let end = lseek(fd.raw, 0, SEEK_END)
        return end < 0 ? nil : UInt64(end)
    }

    private static func lookup(_ probe: blkid_probe, _ name: String) -> String? {
        var value: UnsafePointer<CChar>?
        var length = 0
        guard blkid_probe_lookup_value(probe, name, &value, &length) == 0, let value else { return nil }
        return String(cString: value)
    }
}
