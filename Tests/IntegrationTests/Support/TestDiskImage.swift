import Foundation
import Testing

/// A disk image made in a temporary directory without mounting anything: sfdisk writes the table
/// into the file, and mkfs.ext4 -d fills each partition from a directory at its offset. Removed
/// when the value goes away.
final class TestDiskImage {
    struct Partition {
        /// A GPT type GUID, a DPS name (root, usr, home, srv, var, tmp, esp, root-verity), or an MBR type ("83").
        var type: String
        var name = ""
        var sizeMiB = 16
        /// GPT attribute bits, e.g. [60, 63].
        var attributes: [Int] = []
        var bootable = false
        var content: Content = .empty

        enum Content {
            case empty
            case tree(String)
            /// A LUKS1 header (what libblkid recognizes), nothing else.
            case luksHeader
            case nothing
        }
    }

    static let types = [
        "root": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "usr": "8484680C-9521-48C6-9C11-B0720656F69E",
        "root-verity": "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5", "home": "933AC7E1-2EB4-4F13-B844-0E14E2AEF915",
        "srv": "3B8F8425-20E0-4F3B-907F-1A25A76F98E8", "var": "4D21B016-B534-45C2-A9FB-5C16E091FD2D", "tmp": "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1",
        "esp": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "linux": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    ]

    let directory: URL
    let path: String

    /// - Parameter table: "gpt", "dos", or nil for a bare file system made from `partitions[0]`.
    init(table: String?, _ partitions: [Partition], name: String = "image.raw") throws {
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("swift-nspawn-image-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent(name).path
        guard let table else {
            let partition = partitions[0]
            try Self.run(["/usr/bin/truncate", "-s", "\(partition.sizeMiB)M", path])
            try Self.makeFileSystem(partition.content, image: path, offset: 0, sizeKiB: partition.sizeMiB * 1024)
            return
        }
        let total = 2 + partitions.reduce(0) { $0 + $1.sizeMiB }
        try Self.run(["/usr/bin/truncate", "-s", "\(total)M", path])
        var script = "label: \(table)\n"
        for partition in partitions {
            var line = "size=\(partition.sizeMiB)MiB, type=\(Self.types[partition.type] ?? partition.type)"
            if table == "gpt" && !partition.name.isEmpty { line += ", name=\"\(partition.name)\"" }
            if !partition.attributes.isEmpty { line += ", attrs=\"GUID:\(partition.attributes.map(String.init).joined(separator: ","))\"" }
            if partition.bootable { line += ", bootable" }
            script += line + "\n"
        }
        try Self.run(["/usr/sbin/sfdisk", "-q", path], input: script)
        let listing = try Self.run(["/usr/sbin/sfdisk", "-J", path])
        let json = try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [String: Any]
        let entries = (json?["partitiontable"] as? [String: Any])?["partitions"] as? [[String: Any]] ?? []
        for (partition, entry) in zip(partitions, entries) {
            let start = entry["start"] as? Int ?? 0
            let sectors = entry["size"] as? Int ?? 0
            try Self.makeFileSystem(partition.content, image: path, offset: start * 512, sizeKiB: sectors / 2)
        }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// The image's checksum, to show a run did not change it.
    func checksum() throws -> String { try Self.run(["/usr/bin/sha256sum", path]) }

    /// The loop devices bound to the image (`losetup -j`): none once a run is over, within a bounded
    /// wait (the kernel releases them as it frees the machine's mounts, in the background).
    func loopDevicesGone(timeout: TimeInterval = 5) -> Bool {
        eventually(within: timeout) { (try? Self.run(["/usr/sbin/losetup", "-j", path]))?.isEmpty == true }
    }

    private static func makeFileSystem(_ content: Partition.Content, image: String, offset: Int, sizeKiB: Int) throws {
        switch content {
        case .nothing:
            return
        case .luksHeader:
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
            try handle.seek(toOffset: UInt64(offset))
            var header = Data([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0x00, 0x01])
            header.append(Data("aes".utf8) + Data(count: 29))  // cipher name
            header.append(Data("xts-plain64".utf8) + Data(count: 21))  // cipher mode
            header.append(Data("sha256".utf8) + Data(count: 26))  // hash
            header.append(Data([0, 0, 16, 0]) + Data([0, 0, 0, 64]))  // payload offset, key bytes
            header.append(Data(count: 20 + 32 + 4))  // digest, salt, iterations
            header.append(Data("6c1d9a2e-0000-4000-8000-000000000001".utf8) + Data(count: 4))  // UUID
            try handle.write(contentsOf: header + Data(count: 4096 - header.count))
            try handle.close()
        case .empty, .tree:
            var arguments = ["/usr/sbin/mkfs.ext4", "-q", "-F"]
            if case .tree(let tree) = content { arguments += ["-d", tree] }
            arguments += ["-E", "offset=\(offset)", image, "\(sizeKiB)k"]
            try run(arguments)
        }
    }

    @discardableResult
    static func run(_ command: [String], input: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: ["reason": "\(command.joined(separator: " ")) failed"])
        }
        return String(decoding: data, as: UTF8.self)
    }
}
