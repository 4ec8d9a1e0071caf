import Foundation
import Testing

/// swift-nspawn on a systemd host, without a VM: a Debian machine booted by swift-nspawn is the host
/// (systemd as PID 1, dbus, machined), and swift-nspawn, bound in read-only, runs there against
/// that systemd over sd-bus. A unit in the machine runs the checks at boot and writes what it saw
/// to a directory bound from the test, then powers the machine off.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct NestedTests {
    @Test func theInnerMachineGetsADelegatedScopeAndIsRegistered() throws {
        let inner = try makeInnerTree()
        defer { try? FileManager.default.removeItem(at: inner) }
        // The inner machine shares the host machine's user namespace: that one has no IDs to spare.
        let script = """
            #!/bin/sh
            exec > /results/log 2>&1
            /usr/local/bin/swift-nspawn -D /var/lib/machines/inner --private-users=no -P -q --property=MemoryMax=64M --property=TasksMax=40 \\
                /bin/sh -c 'grep ^0:: /proc/self/cgroup; sleep 4' > /results/inner-cgroup &
            sleep 2
            systemctl show machine-inner.scope -p ActiveState -p Slice -p Delegate -p DevicePolicy > /results/scope
            systemctl show machine-inner.scope -p MemoryMax -p TasksMax > /results/limits
            machinectl list --no-legend > /results/machines
            machinectl show inner -p Leader -p RootDirectory -p Class -p Service > /results/machine
            wait
            echo $? > /results/inner-status
            sleep 1
            systemctl list-units --all --no-legend 'machine-*' > /results/scopes-after
            systemctl poweroff
            """
        let nested = try NestedHost(script: script, inner: inner, timeout: 120)
        let read = nested.read
        #expect(read("inner-status") == "0\n", "\(read("log"))")
        #expect(read("inner-cgroup") == "0::/\n", "\(read("inner-cgroup"))")
        #expect(Set(read("limits").split(separator: "\n")) == ["MemoryMax=67108864", "TasksMax=40"], "\(read("log"))")
        let scope = Set(read("scope").split(separator: "\n"))
        #expect(scope == ["ActiveState=active", "Slice=machine.slice", "Delegate=yes", "DevicePolicy=closed"], "\(read("log"))")
        #expect(read("machines").contains("inner container swift-nspawn"), "\(read("machines")) \(read("log"))")
        let machine = read("machine")
        #expect(machine.contains("Class=container") && machine.contains("Service=swift-nspawn") && machine.contains("RootDirectory=/var/lib/machines/inner"))
        #expect(machine.contains("Leader=") && !machine.contains("Leader=0"))
        #expect(read("scopes-after").isEmpty, "a scope outlived its machine: \(read("scopes-after"))")
    }

    /// Where the host's cgroup2 has the controllers to delegate, the limits bite: a memory hog is
    /// OOM-killed at MemoryMax=, a fork bomb stops at TasksMax=.
    @Test(.enabled(if: TestEnvironment.hostDelegatesMemoryAndPids, TestEnvironment.noControllersReason))
    func theInnerMachinesLimitsAreEnforced() throws {
        let inner = try makeInnerTree()
        defer { try? FileManager.default.removeItem(at: inner) }
        let script = """
            #!/bin/sh
            exec > /results/log 2>&1
            /usr/local/bin/swift-nspawn -D /var/lib/machines/inner --private-users=no -P -q --property=MemoryMax=64M --property=TasksMax=40 \\
                /bin/sh -c 'head -c 314572800 /dev/zero | tail > /dev/null; echo hog=$?; for i in $(seq 100); do sleep 6 & done 2>/dev/null; ps | grep -c "sleep 6"' > /results/inner-limits
            systemctl poweroff
            """
        let nested = try NestedHost(script: script, inner: inner, timeout: 120)
        let seen = nested.read("inner-limits").split(separator: "\n").map(String.init)
        #expect(seen.count == 2, "\(nested.read("log"))")
        #expect(seen.first == "hog=137", "the memory hog was not OOM-killed: \(seen)")
        #expect((Int(seen.last ?? "") ?? 99) < 40, "the fork bomb outgrew TasksMax: \(seen)")
    }
}

/// swift-nspawn@.service on that nested systemd host: start (Type=notify), machinectl, a reboot
/// inside restarting the unit through 133, machinectl poweroff, nothing left after.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct NestedUnitTests {
    @Test func theTemplateUnitBootsRestartsAndStopsAMachine() throws {
        let inner = try DebianMachine()
        // As make install writes the unit; the drop-in shares the host machine's user namespace (see NestedTests).
        let script = """
            #!/bin/sh
            exec > /results/log 2>&1
            sed 's|@bindir@|/usr/local/bin|g' /results/unit.in > /etc/systemd/system/swift-nspawn@.service
            mkdir -p /etc/systemd/system/swift-nspawn@inner.service.d
            printf '[Service]\\nExecStart=\\nExecStart=/usr/local/bin/swift-nspawn --quiet --keep-unit --boot --console=passive --private-users=no -M %%i\\n' \\
                > /etc/systemd/system/swift-nspawn@inner.service.d/nested.conf
            systemctl daemon-reload
            timeout 60 systemctl start swift-nspawn@inner
            systemctl is-active swift-nspawn@inner > /results/active
            sleep 2
            machinectl list --no-legend > /results/machines
            machinectl reboot inner
            for i in $(seq 60); do [ "$(systemctl show -P NRestarts swift-nspawn@inner)" = 1 ] && break; sleep 0.5; done
            sleep 2
            systemctl show swift-nspawn@inner -p NRestarts -p ActiveState > /results/after-reboot
            machinectl poweroff inner
            for i in $(seq 60); do systemctl is-active -q swift-nspawn@inner || break; sleep 0.5; done
            systemctl show swift-nspawn@inner -p ActiveState -p Result > /results/after-poweroff
            machinectl list --no-legend > /results/machines-after
            journalctl -u swift-nspawn@inner --no-pager -o cat > /results/journal 2>&1
            systemctl poweroff
            """
        let nested = try NestedHost(script: script, inner: inner.root, timeout: 240)
        let read = nested.read
        #expect(read("active") == "active\n", "\(read("log"))")
        #expect(read("machines").contains("inner container swift-nspawn"), "\(read("machines")) \(read("log"))")
        #expect(Set(read("after-reboot").split(separator: "\n")) == ["NRestarts=1", "ActiveState=active"], "\(read("journal"))")
        #expect(Set(read("after-poweroff").split(separator: "\n")) == ["ActiveState=inactive", "Result=success"], "\(read("log"))")
        #expect(read("machines-after").isEmpty)
    }
}

/// A Debian machine booted by swift-nspawn as the systemd host of a nested test: at boot a unit
/// runs `script` (as /results/run.sh), which writes what it sees to /results and powers off.
struct NestedHost {
    let host: DebianMachine
    let results: URL

    /// `machineOptions`: how the host machine itself is run (by default without a user namespace).
    init(script: String, inner: URL, timeout: TimeInterval, machineOptions: [String] = ["--private-users=no"]) throws {
        host = try DebianMachine()
        results = host.directory.appendingPathComponent("results")
        try FileManager.default.createDirectory(at: results, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: TestEnvironment.packageRoot.appendingPathComponent("units/swift-nspawn@.service.in"), to: results.appendingPathComponent("unit.in"))
        try script.write(to: results.appendingPathComponent("run.sh"), atomically: false, encoding: .utf8)
        chmod(results.appendingPathComponent("run.sh").path, 0o755)
        try host.addService("nested-test.service", "[Unit]\nAfter=multi-user.target\n\n[Service]\nType=oneshot\nExecStart=/results/run.sh")
        // By default no user namespace for the host machine: its /proc is masked and locked, so not
        // "fully visible" to the kernel, and a nested machine could not mount a procfs of its own
        // (--nesting=yes is the other way, see NestingTests).
        var options =
            ["-D", host.path, "-b"] + machineOptions + [
                "--console=passive", "-q",
                "--bind-ro=\(TestEnvironment.binary):/usr/local/bin/swift-nspawn", "--bind=\(inner.path):/var/lib/machines/inner",
                // The machine's root writes its results as the host's root: idmap where it has a user namespace.
                "--bind=\(results.path):/results\(machineOptions.contains("--private-users=no") ? "" : ":idmap")",
            ]
        // A debug build finds its Swift runtime there.
        if FileManager.default.fileExists(atPath: "/opt/swift/usr/lib/swift/linux") { options.append("--bind-ro=/opt/swift/usr/lib/swift/linux") }
        let run = try runNspawn(options, timeout: timeout)
        #expect(run.status == 0, "\(run.stderr)")
    }

    func read(_ name: String) -> String { (try? String(contentsOf: results.appendingPathComponent(name), encoding: .utf8)) ?? "" }
}

/// --nesting=yes: a machine with its own user namespace (the default) runs machines and containers
/// of its own, each with its defaults; without it the machine's locked /proc masks refuse them.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct NestingTests {
    /// Run in the host machine: an inner swift-nspawn and `crun run` of a busybox bundle, both with
    /// their defaults. The inner tree goes on a tmpfs the machine mounts itself, which it may
    /// ID-map (the tree it was booted from is an ID-mapped mount already, which cannot be mapped again).
    private static let script = """
        #!/bin/sh
        exec > /results/log 2>&1
        cat /proc/self/uid_map > /results/outer-map
        mount -t tmpfs -o mode=0755 tmpfs /srv
        cp -a /var/lib/machines/inner /srv/inner
        /usr/local/bin/swift-nspawn -D /srv/inner -q -P /bin/sh -c 'cat /proc/self/uid_map' > /results/inner-out
        echo $? > /results/inner-status
        /usr/local/bin/swift-nspawn -D /srv/inner -q -P --private-users=no /bin/true
        echo $? > /results/inner-shared-status
        mkdir -p /srv/bundle && cp -a /var/lib/machines/inner /srv/bundle/rootfs
        cd /srv/bundle && crun spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\\/bin\\/sh", "-c", "echo crun-ok"/' config.json
        crun run --bundle /srv/bundle nested > /results/crun-out
        echo $? > /results/crun-status
        systemctl poweroff
        """

    @Test func aNestingMachineRunsSwiftNspawnAndCrunWithTheirDefaults() throws {
        let inner = try makeInnerTree()
        defer { try? FileManager.default.removeItem(at: inner) }
        let nested = try NestedHost(script: Self.script, inner: inner, timeout: 120, machineOptions: ["--nesting=yes"])
        let read = nested.read
        // The machine has 16 × 64K IDs, and the inner machine picked a 64K range among them.
        #expect(read("outer-map").split(separator: " ").last == "1048576\n", "\(read("outer-map"))")
        #expect(read("inner-status") == "0\n", "\(read("log"))")
        let innerMap = read("inner-out").split(separator: "\n").first?.split(separator: " ").map(String.init) ?? []
        #expect(innerMap.count == 3 && innerMap[0] == "0" && (UInt32(innerMap[1]) ?? 0) >= 0x80000 && innerMap[2] == "65536", "\(read("inner-out"))")
        #expect(read("inner-shared-status") == "0\n", "\(read("log"))")
        #expect(read("crun-status") == "0\n" && read("crun-out") == "crun-ok\n", "\(read("log"))")
    }

    @Test func withoutNestingTheMachinesLockedMasksRefuseANestedProc() throws {
        let inner = try makeInnerTree()
        defer { try? FileManager.default.removeItem(at: inner) }
        let nested = try NestedHost(script: Self.script, inner: inner, timeout: 120, machineOptions: [])
        let read = nested.read
        #expect(read("outer-map").split(separator: " ").last == "65536\n", "\(read("outer-map"))")
        // No 64K range to pick among 64K IDs; and in the machine's own user namespace, procfs is refused.
        #expect(read("inner-status") == "1\n", "\(read("log"))")
        #expect(read("log").contains("No range of 65536 IDs"), "\(read("log"))")
        #expect(read("inner-shared-status") == "1\n", "\(read("log"))")
        #expect(read("crun-status") != "0\n" && read("crun-status") != "", "\(read("log"))")
    }
}

/// A busybox tree for a machine inside the host machine, in a temporary directory.
private func makeInnerTree() throws -> URL {
    let inner = FileManager.default.temporaryDirectory.appendingPathComponent("swift-nspawn-inner-\(UUID().uuidString.prefix(8))")
    let maker = Process()
    maker.executableURL = TestEnvironment.packageRoot.appendingPathComponent("tools/make-busybox-machine")
    maker.arguments = [inner.path]
    try maker.run()
    maker.waitUntilExit()
    return inner
}
