import Foundation
import Testing
@testable import NspawnCore

/// The system call filter and the other options of the security policy, seen from inside.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct SeccompTests {
    @Test func twoFiltersAreLoadedByDefaultAndNoneWithSystemdSeccompZero() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("grep '^Seccomp:' /proc/self/status").stdout == "Seccomp:\t2\n")
        let process = try runNspawn(
            ["-D", machine.path, "-P", "-q", "/bin/sh", "-c", "grep '^Seccomp:' /proc/self/status"], environment: ["SYSTEMD_SECCOMP": "0"])
        #expect(process.stdout == "Seccomp:\t0\n")
    }

    @Test func systemCallFilterDenialsWin() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("hostname renamed; echo $?").stdout == "0\n")
        let denied = try machine.shell("hostname renamed; echo $?", options: ["--system-call-filter=~sethostname"])
        #expect(denied.stdout == "1\n", "\(denied.stderr)")
        #expect(denied.stderr.contains("Operation not permitted"))
        let both = try machine.shell("hostname renamed; echo $?", options: ["--system-call-filter=~sethostname", "--system-call-filter=sethostname"])
        #expect(both.stdout == "1\n")
    }

    @Test func unknownSystemCallNamesAreRefused() throws {
        let result = try runNspawn(["--system-call-filter=~frobnicate", "true"])
        #expect(result.status == 1)
        #expect(result.stderrLines == ["Unknown system call or group in --system-call-filter=: frobnicate (see --system-call-filter=help)."])
        let help = try runNspawn(["--system-call-filter=help"])
        #expect(help.status == 0 && help.stdout.contains("@system-service") && help.stdout.contains("    @basic-io"))
    }

    @Test func nestedUserNamespacesFollowThePolicy() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("unshare -U true && echo made").stdout == "made\n")
        let refused = try machine.shell("unshare -U true && echo made", options: ["--nested-user-namespaces=no"])
        #expect(refused.stdout.isEmpty)
        #expect(refused.stderr.contains("No space left on device"))
    }

    @Test(.enabled(if: !FileManager.default.fileExists(atPath: "/run/systemd/system"), "this host runs systemd"))
    func registerYesNeedsMachined() throws {
        let machine = try TestMachine()
        let result = try machine.run(["--register=yes"], ["true"])
        #expect(result.status == 1)
        #expect(result.stderrLines.first?.hasPrefix("--register=yes: this host does not run systemd") == true)
        #expect(try machine.run(["--register=auto"], ["true"]).status == 0)
    }
}

/// The device policy: only swift-nspawn's nodes can be opened or made, whatever the image ships.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct DevicePolicyTests {
    /// The first block device of the host, as "major minor".
    private var hostDisk: (UInt32, UInt32)? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/dev/block")) ?? []
        return entries.compactMap { entry -> (UInt32, UInt32)? in
            let parts = entry.split(separator: ":").compactMap { UInt32(String($0)) }
            return parts.count == 2 && parts[0] != 7 ? (parts[0], parts[1]) : nil
        }.first
    }

    @Test func aRootWithoutUserNamespaceCannotMakeOrOpenAHostDisk() throws {
        let (major, minor) = try #require(hostDisk)
        let machine = try TestMachine()
        let result = try machine.shell(
            "mknod /dev/disk b \(major) \(minor); echo mknod=$?; cat /dev/null && echo null-ok",
            options: ["--private-users=no"])
        #expect(result.lines == ["mknod=1", "null-ok"], "\(result.stdout) \(result.stderr)")
    }

    /// fdatasync() of a pipe fails with EINVAL; with --suppress-sync=yes it succeeds without doing anything.
    @Test func suppressSyncMakesTheSyncCallsSucceedAtOnce() throws {
        let machine = try TestMachine()
        #expect(try machine.shell("echo | sync -d /dev/stdin 2>/dev/null; echo $?").stdout == "1\n")
        #expect(try machine.shell("echo | sync -d /dev/stdin; echo $?", options: ["--suppress-sync=yes"]).stdout == "0\n")
    }

    /// The image's device node on the root mount: nodev refuses it; and where the machine's root
    /// takes nodev away (it may, without a user namespace), the cgroup's device filter still does.
    @Test func aDeviceNodeInTheImageCannotBeOpened() throws {
        let (major, minor) = try #require(hostDisk)
        let node = { (root: URL) in
            let made = mknod(
                root.appendingPathComponent("opt-disk").path, S_IFBLK | 0o600, dev_t(DeviceNode(name: "disk", major: major, minor: minor).deviceNumber))
            #expect(made == 0)
        }
        let picked = try TestMachine(extraSetup: node)
        #expect(try picked.shell("head -c 1 /opt-disk >/dev/null && echo OPENED; echo done").lines == ["done"])
        let privileged = try TestMachine(extraSetup: node)
        let script = """
            mount -o remount,bind,dev / && grep -c ' / / [^ ]*nodev' /proc/self/mountinfo
            head -c 1 /opt-disk >/dev/null 2>/tmp/err && echo OPENED; cat /tmp/err
            """
        let result = try privileged.shell(script, options: ["--private-users=no"])
        #expect(result.lines.first == "0", "nodev is still on the root: \(result.stdout) \(result.stderr)")
        #expect(!result.stdout.contains("OPENED") && result.stdout.contains("Operation not permitted"), "\(result.stdout)")
    }
}

/// The allow-list the kernel gets is SeccompRangeProgram's compaction of libseccomp's: the kernel
/// must answer as libseccomp's program would, for each ABI.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct SeccompRangeProgramKernelTests {
    @Test func theKernelRefusesWhatLibseccompsProgramRefusesWithTheSameErrno() throws {
        let (machine, i386) = try Self.machineWithFixture()
        // The policy of a machine started with no options (a user namespace of its own).
        guard case .run(let configuration) = CommandLineParser.parse(["-D", machine.path, "true"]) else { throw UserError("unparsed") }
        let policy = try #require(try MachinePlan.confinement(configuration, userNamespace: true, held: CapabilitySet()).1)
        let libseccomps = try #require(SeccompRangeProgram.decode(try SeccompFilter.allowList(policy).export()))
        // The machine compiles its filter with this build: a cache file of the same key may be from
        // an earlier build of the same SeccompFilter.compilerRevision.
        unlink(SeccompFilter.cachePath(key: SeccompFilter.cacheKey(policy)))
        // Only numbers the filter refuses (SECCOMP_RET_ERRNO): an allowed call would run.
        var expected: [String: UInt32] = [:]
        for (abi, architecture, base): (String, UInt32, UInt32) in [("64", 0xc000_003e, 0), ("x32", 0xc000_003e, 0x4000_0000), ("32", 0x4000_0003, 0)]
        where abi != "32" || i386 {
            // uretprobe and uprobe (335, 336) never meet a filter: the kernel lets them through
            // (kernel/seccomp.c), and called from outside a probe they raise SIGILL or fail ENXIO.
            for number in UInt32(0)..<600 where abi != "64" || !(335...336).contains(number) {
                let answer = try #require(SeccompRangeProgram.evaluate(libseccomps, architecture: architecture, number: base + number))
                if answer & 0xffff_0000 == 0x0005_0000 { expected["\(abi):\(number)"] = answer & 0xffff }
            }
        }
        #expect(Set(expected.values) == [UInt32(EPERM), UInt32(ENOSYS)])
        try Self.expectAnswers(expected, in: machine)
    }

    /// The emitted program with each of the first 300 numbers a range of its own (so that lower
    /// halves outgrow a conditional jump) and each refusing range given an errno of its own (1000
    /// and up), loaded by the fixture itself in a machine (whose own filter refuses less): the
    /// kernel must answer the numbers at both ends of every range as SeccompRangeProgram.evaluate
    /// does, for each ABI.
    @Test func theKernelWalksEveryRangeOfTheEmittedProgram() throws {
        let (machine, i386) = try Self.machineWithFixture()
        let policy = try SeccompPolicy(capabilities: CapabilitySet.nspawnDefault)
        let libseccomps = try #require(SeccompRangeProgram.decode(try SeccompFilter.allowList(policy).export()))
        var table = try #require(SeccompRangeProgram.decisionTable(libseccomps))
        var errno: UInt32 = 1000
        for a in table.indices {
            let numbers = table[a].answer
            func answer(_ number: UInt32) -> UInt32 { numbers.last { $0.start <= number }?.answer ?? 0 }
            table[a].answer = (UInt32(0)...300).map { ($0, answer($0)) } + numbers.filter { $0.start > 300 }
            for n in table[a].answer.indices where table[a].answer[n].answer >> 16 == 0x0005 {
                table[a].answer[n].answer = 0x0005_0000 | errno
                errno += 1
            }
        }
        #expect(errno > 1100 && errno < 4096, "\(errno)")  // what syscall(2) returns as an error
        let program = SeccompRangeProgram.emit(table)
        #expect(program.contains { $0.code == SeccompRangeProgram.Instruction.jump } && program.count < 4096)  // BPF_MAXINSNS
        try Data(program.flatMap(\.bytes)).write(to: URL(fileURLWithPath: machine.path + "/ranges.bpf"))
        var expected: [String: UInt32] = [:]
        for (abi, architecture): (String, UInt32) in [("64", 0xc000_003e), ("x32", 0xc000_003e), ("32", 0x4000_0003)]
        where abi != "32" || i386 {
            let numbers = try #require(table.last { $0.start <= architecture }).answer
            let ends = numbers.indices.flatMap { i in [numbers[i].start, i + 1 < numbers.count ? numbers[i + 1].start - 1 : UInt32.max] }
            for number in Set(ends) {
                // x32's numbers carry bit 30 (the fixture sets it); uretprobe and uprobe meet no filter.
                let x32 = number & 0xc000_0000 == 0x4000_0000
                guard abi == "32" || (abi == "x32") == x32, abi != "64" || !(335...336).contains(number),
                    let answer = SeccompRangeProgram.evaluate(program, architecture: architecture, number: number), answer >> 16 == 0x0005
                else { continue }
                expected["\(abi):\(x32 && abi == "x32" ? number & 0x3fff_ffff : number)"] = answer & 0xffff
            }
        }
        #expect(expected.count > 150)
        try Self.expectAnswers(expected, in: machine, options: ["--filter", "/ranges.bpf"])
    }

    /// A busybox machine with the fixture, and whether this kernel runs i386 system calls (int 0x80)
    /// at all: without IA-32 emulation (CONFIG_IA32_EMULATION, ia32_emulation=) the instruction
    /// faults, and that ABI is not tested.
    private static func machineWithFixture() throws -> (TestMachine, i386: Bool) {
        let machine = try TestMachine()
        try machine.installFixture("syscall-answers")
        let getpid = try machine.run([], ["/usr/bin/syscall-answers", "32:20"])
        if getpid.status != 0 { print("int 0x80 faults on this kernel (\(getpid.stderr)): the i386 ABI is not tested") }
        return (machine, getpid.status == 0)
    }

    /// Runs the fixture in the machine on every number of `expected` ("ABI:NUMBER"), each of which
    /// must get its errno.
    private static func expectAnswers(_ expected: [String: UInt32], in machine: TestMachine, options: [String] = []) throws {
        let result = try machine.run([], ["/usr/bin/syscall-answers"] + options + expected.keys.sorted())
        #expect(result.status == 0, "\(result.stderr)")
        var answers: [String: UInt32] = [:]
        for line in result.lines {
            let fields = line.split(separator: " ")
            if fields.count == 2 { answers[String(fields[0])] = UInt32(fields[1]) }
        }
        let wrong = expected.keys.sorted().filter { answers[$0] != expected[$0] }
        #expect(
            answers.count == expected.count && wrong.count == 0,
            "\(wrong.prefix(10).map { "\($0)=\(answers[$0].map(String.init) ?? "-") not \(expected[$0] ?? 0)" })")
    }
}
