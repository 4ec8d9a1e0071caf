import Foundation
import Testing

/// --template=: the -D tree made from a template where it does not exist, a copy that keeps what a
/// system tree holds; an existing tree is used as it is.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct TemplateTests {
    /// Owners, modes, times, types and link targets of every entry, as find(1) prints them.
    private func listing(_ root: String) throws -> [String] {
        try TestNetwork.run(["/bin/sh", "-c", "cd \(root) && find . -printf '%p %U %G %m %s %T@ %y %l\\n' | sort"]).lines
    }

    @Test func theTreeIsMadeAsACopyAndThenUsedAsItIs() throws {
        let template = try TestMachine { root in
            let etc = root.appendingPathComponent("etc")
            try FileManager.default.linkItem(at: etc.appendingPathComponent("passwd"), to: etc.appendingPathComponent("passwd-hard"))
            let path = etc.appendingPathComponent("os-release").path
            _ = try TestNetwork.run(["/usr/bin/python3", "-c", "import os; os.setxattr('\(path)', 'user.test', b'hello')"])
            // A file capability (cap_net_raw+ep), which a chown after it would clear.
            let program = root.appendingPathComponent("usr/bin/ping-like").path
            try FileManager.default.copyItem(atPath: root.appendingPathComponent("usr/bin/busybox").path, toPath: program)
            _ = try TestNetwork.run([
                "/usr/bin/python3", "-c",
                "import os; os.setxattr('\(program)', 'security.capability', bytes([1,0,0,2, 0,0x20,0,0, 0,0,0,0, 0,0,0,0, 0,0,0,0]))",
            ])
            #expect(mkfifo(root.appendingPathComponent("run/fifo").path, 0o600) == 0)
            #expect(chmod(root.appendingPathComponent("usr/bin/busybox").path, 0o4755) == 0)
        }
        let target = template.directory.appendingPathComponent("made").path
        let first = try runNspawn(["-D", target, "--template=\(template.path)", "-q", "-P", "sh", "-c", "echo changed > /etc/motd; echo ran"])
        #expect(first.status == 0 && first.lines == ["ran"], "\(first.stderr)")
        var expected = try listing(template.path)
        expected.removeAll { $0.hasPrefix(". ") || $0.hasPrefix("./etc ") }
        var made = try listing(target)
        made.removeAll { $0.hasPrefix(". ") || $0.hasPrefix("./etc ") || $0.hasPrefix("./etc/motd ") }
        #expect(made == expected)
        var a = stat(), b = stat()
        stat(target + "/etc/passwd", &a)
        stat(target + "/etc/passwd-hard", &b)
        #expect(a.st_ino == b.st_ino && a.st_nlink == 2)
        let attribute = try TestNetwork.run(["/usr/bin/python3", "-c", "import os; print(os.getxattr('\(target)/etc/os-release', 'user.test'))"])
        #expect(attribute.lines == ["b'hello'"], "\(attribute.stderr)")
        let capability = try TestNetwork.run([
            "/usr/bin/python3", "-c", "import os; print(list(os.getxattr('\(target)/usr/bin/ping-like', 'security.capability'))[:8])",
        ])
        #expect(capability.lines == ["[1, 0, 0, 2, 0, 32, 0, 0]"], "\(capability.stderr)")
        // Made once: the next run uses the tree as it is, with what the first one wrote.
        let second = try runNspawn(["-D", target, "--template=\(template.path)", "-q", "-P", "cat", "/etc/motd"])
        #expect(second.stdout == "changed\n", "\(second.stderr)")
        #expect(!FileManager.default.fileExists(atPath: template.directory.appendingPathComponent(".#made.swift-nspawn-template").path))
    }

    /// A killed run's half copy is removed before the next copy; bad input makes nothing.
    @Test func aHalfCopyIsReplacedAndBadInputMakesNothing() throws {
        let template = try TestMachine()
        let half = template.directory.appendingPathComponent(".#made.swift-nspawn-template")
        try FileManager.default.createDirectory(at: half.appendingPathComponent("usr/junk"), withIntermediateDirectories: true)
        let target = template.directory.appendingPathComponent("made").path
        let result = try runNspawn(["-D", target, "--template=\(template.path)", "-q", "-P", "true"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: half.path) && !FileManager.default.fileExists(atPath: target + "/usr/junk"))

        for (options, message) in [
            (["--template=relative/path"], "--template= takes an absolute path"),
            (["--template=\(template.path)", "-x"], "--ephemeral and --template= may not be combined."),
            (["--template=\(template.directory.path)/none"], "No such file or directory"),
        ] {
            let other = template.directory.appendingPathComponent("other").path
            let bad = try runNspawn(["-D", other, "-q", "-P"] + options + ["true"])
            #expect(bad.status == 1 && bad.stderrLines.count == 1 && bad.stderr.contains(message), "\(bad.stderr)")
            #expect(!FileManager.default.fileExists(atPath: other))
            #expect(!FileManager.default.fileExists(atPath: template.directory.appendingPathComponent(".#other.swift-nspawn-template").path))
        }
    }
}
