import Foundation
import Testing

/// -i: disk images (GPT with Discoverable Partitions, one Linux partition of GPT or MBR, a bare
/// file system) mounted from loop devices in the supervisor's own mount namespace; nothing is
/// left on the host, and the image is never written unless the machine writes it.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct ImageTests {
    typealias Partition = TestDiskImage.Partition

    /// A busybox tree in a GPT image as its root partition.
    private func busyboxImage(_ extra: [Partition] = [], rootAttributes: [Int] = []) throws -> (TestMachine, TestDiskImage) {
        let machine = try TestMachine()
        let image = try TestDiskImage(table: "gpt", [Partition(type: "root", attributes: rootAttributes, content: .tree(machine.path))] + extra)
        return (machine, image)
    }

    private func run(_ image: TestDiskImage, _ options: [String] = [], _ script: String) throws -> RunResult {
        try runNspawn(["-i", image.path, "-P", "-q"] + options + ["/bin/sh", "-c", script])
    }

    /// The host as a run leaves it: no mount, cgroup or entry in /run/swift-nspawn's directories, no loop device.
    private func expectClean(_ image: TestDiskImage, since host: HostState) {
        #expect(image.loopDevicesGone())
        #expect(HostState.capture() == host)
    }

    @Test func debianImageBootsWithAndWithoutEphemeral() throws {
        let tree: String
        switch DebianMachine.cached {
        case .success(let path): tree = path
        case .failure(let reason):
            Issue.record("no Debian tree: \(reason)")
            return
        }
        let image = try TestDiskImage(table: "gpt", [Partition(type: "root", name: "debian", sizeMiB: 400, content: .tree(tree))], name: "debian.raw")
        let host = HostState.capture()
        // An ephemeral boot (its journal, its machine-id, its units' state all written to /) leaves
        // the image's bytes as they were.
        let pristine = try image.checksum()
        let ephemeral = try runNspawn(["-i", image.path, "-x", "--boot-test"], timeout: 120)
        #expect(ephemeral.status == 0, "\(ephemeral.stderr.suffix(2000))")
        #expect(ephemeral.stderr.contains("Boot test of debian: running"), "\(ephemeral.stderr.suffix(500))")
        #expect(try image.checksum() == pristine)
        let booted = try runNspawn(["-i", image.path, "--boot-test"], timeout: 120)
        #expect(booted.status == 0, "\(booted.stderr.suffix(2000))")
        expectClean(image, since: host)

        // An ephemeral run that writes all over / leaves the image's bytes as they were.
        let before = try image.checksum()
        let writer = try runNspawn(
            ["-i", image.path, "-x", "-P", "-q", "/bin/sh", "-c", "echo x > /written && rm -rf /usr/share/doc /etc/os-release && cat /written"])
        #expect(writer.lines == ["x"], "\(writer.stderr)")
        #expect(try image.checksum() == before)
        expectClean(image, since: host)
    }

    /// The Discoverable Partitions: home, srv and var found by type and mounted in the root; the
    /// no-auto flag leaves a partition alone; the read-only flag makes its mount read-only. Owners
    /// are ID-mapped like a tree's.
    @Test func discoverablePartitionsAreMountedWhereTheySay() throws {
        let home = try TestMachine()  // its directory is a scratch place for the partitions' contents
        let homeContent = home.directory.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: homeContent.appendingPathComponent("alice"), withIntermediateDirectories: true)
        try "hello\n".write(to: homeContent.appendingPathComponent("alice/file"), atomically: false, encoding: .utf8)
        _ = chown(homeContent.appendingPathComponent("alice").path, 1000, 1000)
        let (_, image) = try busyboxImage([
            Partition(type: "home", content: .tree(homeContent.path)),
            Partition(type: "srv", attributes: [63], content: .empty),
            Partition(type: "var", attributes: [60], content: .empty),
        ])
        let host = HostState.capture()
        let result = try run(
            image, [],
            "cat /home/alice/file; stat -c %u /home/alice; grep -c ' /srv ' /proc/self/mountinfo; "
                + "touch /var/x 2>/dev/null || echo var-read-only; touch /home/y && echo home-writable")
        #expect(result.lines == ["hello", "1000", "0", "var-read-only", "home-writable"], "\(result.stdout) \(result.stderr)")
        expectClean(image, since: host)

        // -x: each file system gets a throw-away overlay; the image stays as it was.
        let before = try image.checksum()
        let ephemeral = try run(image, ["-x"], "echo z > /home/alice/file && cat /home/alice/file && touch /var/z && echo var-writable")
        #expect(ephemeral.lines == ["z", "var-writable"], "\(ephemeral.stdout) \(ephemeral.stderr)")
        #expect(try image.checksum() == before)
        #expect(try run(image, [], "cat /home/alice/file").lines == ["hello"])
        expectClean(image, since: host)
    }

    /// A/B updates: of two root partitions, the one whose label is the newer version boots.
    @Test func newestRootByLabelVersionBoots() throws {
        let old = try TestMachine { try "1.9\n".write(to: $0.appendingPathComponent("etc/version"), atomically: false, encoding: .utf8) }
        let new = try TestMachine { try "1.10\n".write(to: $0.appendingPathComponent("etc/version"), atomically: false, encoding: .utf8) }
        let image = try TestDiskImage(
            table: "gpt",
            [
                Partition(type: "root", name: "os_1.10", content: .tree(new.path)),
                Partition(type: "root", name: "os_1.9", content: .tree(old.path)),
            ])
        #expect(try run(image, [], "cat /etc/version").lines == ["1.10"])
    }

    /// One Linux partition (GPT's generic type, or MBR's 0x83) and a bare file system are roots too.
    @Test func singleLinuxPartitionAndBareFileSystem() throws {
        let machine = try TestMachine()
        for image in [
            try TestDiskImage(table: "gpt", [Partition(type: "linux", content: .tree(machine.path))]),
            try TestDiskImage(table: "dos", [Partition(type: "83", bootable: true, content: .tree(machine.path))]),
            try TestDiskImage(table: nil, [Partition(type: "", content: .tree(machine.path))]),
        ] {
            let result = try run(image, [], "grep -c ID=busybox /etc/os-release")
            #expect(result.lines == ["1"], "\(result.stderr)")
        }
    }

    /// --read-only makes the loop device and the mounts read-only; a read-write run locks the image
    /// for itself, ephemeral runs share it.
    @Test func readOnlyAndTheImageLock() throws {
        let (_, image) = try busyboxImage()
        #expect(try run(image, ["--read-only"], "touch /x 2>/dev/null || echo read-only").lines == ["read-only"])
        let first = try BackgroundRun(["-i", image.path, "-P", "-q", "-M", "one", "/bin/sleep", "3"])
        #expect(first.waitUntil { !HostState.capture().cgroups.isEmpty })
        let second = try run(image, ["-x", "-M", "two"], "true")
        #expect(second.status == 1 && second.stderr.contains("Disk image \(image.path) is currently busy."), "\(second.stderr)")
        #expect(first.finish().status == 0)
        // Ephemeral runs share it.
        let one = try BackgroundRun(["-i", image.path, "-P", "-q", "-x", "-M", "one", "/bin/sleep", "3"])
        #expect(one.waitUntil { !HostState.capture().cgroups.isEmpty })
        let two = try run(image, ["-x", "-M", "two"], "true")
        #expect(two.status == 0, "\(two.stderr)")
        #expect(one.finish().status == 0)
    }

    /// --volatile's modes take the image read-only below their tmpfs layers; an image file that
    /// cannot be opened for writing (here on a read-only bind, in a mount namespace of the test's
    /// own) makes a read-only machine. The image's bytes stay as they were.
    @Test func volatileModesAndReadOnlyImageFile() throws {
        let (_, image) = try busyboxImage()
        let before = try image.checksum()
        let script = "touch /x 2>/dev/null && echo root-writable || echo root-ro; mkdir -p /var/y && echo var-writable"
        for (mode, expected) in [
            ("yes", ["root-writable", "var-writable"]), ("state", ["root-ro", "var-writable"]), ("overlay", ["root-writable", "var-writable"]),
        ] {
            let result = try run(image, ["--volatile=\(mode)"], script)
            #expect(result.lines == expected, "\(mode): \(result.stdout) \(result.stderr)")
        }
        let readOnly = "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && exec \"$@\""
        let result = try runNspawn(
            ["-i", image.path, "-P", "-q", "/bin/sh", "-c", "touch /x 2>/dev/null || echo read-only"],
            prefix: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", readOnly, image.directory.path])
        #expect(result.lines == ["read-only"], "\(result.stdout) \(result.stderr)")
        #expect(try image.checksum() == before)
    }

    /// Mount points are the image's own directories: a symbolic link on the way (here /home to
    /// var/h, where the var partition's h leads to the host's /) is refused, never followed.
    @Test func symlinkedMountPointIsRefused() throws {
        let root = try TestMachine {
            try FileManager.default.removeItem(at: $0.appendingPathComponent("home"))
            try FileManager.default.createSymbolicLink(atPath: $0.appendingPathComponent("home").path, withDestinationPath: "var/h")
        }
        let varContent = root.directory.appendingPathComponent("var-content")
        try FileManager.default.createDirectory(at: varContent, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: varContent.appendingPathComponent("h").path, withDestinationPath: "/")
        let image = try TestDiskImage(
            table: "gpt",
            [
                Partition(type: "root", content: .tree(root.path)), Partition(type: "home", content: .empty),
                Partition(type: "var", content: .tree(varContent.path)),
            ])
        let host = HostState.capture()
        for options in [["-x"], []] {
            let result = try runNspawn(["-i", image.path, "-P", "-q"] + options + ["true"])
            #expect(result.status == 1 && result.stderrLines.count == 1, "\(result.stderr)")
            #expect(result.stderr.contains("Cannot mount the home partition of \(image.path) on /home"), "\(result.stderr)")
            expectClean(image, since: host)
        }
    }

    /// A killed supervisor leaves no mount and no loop device (they lived in its namespace, the loop
    /// devices clear themselves); its empty directory in /run/swift-nspawn/image is removed by the
    /// next run.
    @Test func aKilledRunLeavesNothingTheNextRunKeeps() throws {
        let (_, image) = try busyboxImage()
        let host = HostState.capture()
        let run = try BackgroundRun(["-i", image.path, "-P", "-q", "-x", "/bin/sleep", "30"])
        #expect(run.waitUntil { !HostState.capture().cgroups.isEmpty })
        kill(run.pid, SIGKILL)
        _ = run.finish()
        #expect(image.loopDevicesGone())
        #expect(HostState.capture().mounts == host.mounts)
        #expect(try self.run(image, [], "true").status == 0)
        expectClean(image, since: host)
    }

    /// -M NAME finds NAME.raw in the search path where no directory NAME is (here in a mount
    /// namespace of the test's own with an empty /var/lib).
    @Test func machineNameFindsRawImage() throws {
        let (_, image) = try busyboxImage()
        let script = "mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/machines && ln -s \"$0\" /var/lib/machines/found.raw && exec \"$@\""
        let result = try runNspawn(
            ["-M", "found", "-P", "/bin/sh", "-c", "hostname; grep -c '^[^ ]* [^ ]* [^ ]* / / .* - ext4 /dev/loop' /proc/self/mountinfo"],
            prefix: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, image.path])
        #expect(result.status == 0 && result.lines == ["found", "1"], "\(result.stdout) \(result.stderr)")
    }

    /// Bad images get one line and status 1, with no loop device, mount or directory left.
    @Test func badImagesAreRefused() throws {
        let machine = try TestMachine()
        let cases: [(TestDiskImage, [String], String)] = [
            (try TestDiskImage(table: nil, [Partition(type: "", content: .nothing)]), [], "no partition table and no file system found"),
            (try TestDiskImage(table: "gpt", [Partition(type: "home", content: .empty)]), [], "no root partition found"),
            (try TestDiskImage(table: "gpt", [Partition(type: "root", content: .luksHeader)]), [], "is LUKS-encrypted, which swift-nspawn cannot unlock here"),
            (
                try TestDiskImage(table: "gpt", [Partition(type: "root", content: .tree(machine.path)), Partition(type: "root-verity", content: .nothing)]),
                [], "is protected by dm-verity, which swift-nspawn cannot set up here"
            ),
            (
                try TestDiskImage(table: "gpt", [Partition(type: "root", content: .tree(machine.path))]), ["--image-policy=root=encrypted"],
                "is unprotected, which the image policy does not allow"
            ),
            (
                try TestDiskImage(
                    table: "gpt", [Partition(type: "linux", content: .tree(machine.path)), Partition(type: "linux", content: .tree(machine.path))]),
                [], "cannot tell which is the root"
            ),
        ]
        for (image, options, expected) in cases {
            let host = HostState.capture()
            let result = try runNspawn(["-i", image.path] + options + ["true"])
            #expect(result.status == 1, "\(expected): \(result.stderr)")
            #expect(result.stderrLines.count == 1 && result.stderr.contains(expected), "\(result.stderr)")
            expectClean(image, since: host)
        }
        // The Verity data left alone where the policy asks for the root unprotected.
        let verity = cases[3].0
        #expect(try runNspawn(["-i", verity.path, "--image-policy=root=unprotected", "-P", "-q", "true"]).status == 0)

        // A corrupt table: the GPT header's checksum broken, its backup gone.
        let corrupt = try TestDiskImage(table: "gpt", [Partition(type: "root", content: .tree(machine.path))])
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: corrupt.path))
        try handle.seek(toOffset: 512 + 16)
        try handle.write(contentsOf: Data([0xde, 0xad, 0xbe, 0xef]))
        let end = try handle.seekToEnd()
        try handle.seek(toOffset: end - 512)
        try handle.write(contentsOf: Data(count: 512))
        try handle.close()
        let result = try runNspawn(["-i", corrupt.path, "true"])
        #expect(result.status == 1 && result.stderrLines.count == 1, "\(result.stderr)")
        #expect(corrupt.loopDevicesGone())
    }
}
