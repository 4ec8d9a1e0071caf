import Foundation
import Testing

/// config.json's hooks (runtime-spec config.md, "POSIX-platform Hooks"): each phase in its
/// operation and order, in the namespaces it belongs to, with the state on its standard input; a
/// failing hook of create or start ends the container and leaves nothing, one of poststart or
/// poststop is only a warning.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct OCIHooksTests {
    /// A hook that runs busybox's shell (static: it runs in the container's namespaces too) on `script`.
    private func hook(_ script: String, path: String = "/bin/busybox", timeout: Int? = nil) -> [String: Any] {
        var hook: [String: Any] = ["path": path, "args": ["sh", "-c", script], "env": ["PHASE_ENV=set"]]
        if let timeout { hook["timeout"] = timeout }
        return hook
    }

    private func withHooks(_ hooks: [String: Any]) -> (inout [String: Any]) -> Void {
        { config in config["hooks"] = hooks }
    }

    /// Every phase in order: the host's ones append to a log outside the container (with the
    /// state's status, their environment), createContainer and startContainer see the container's
    /// hostname and write into its root; poststop runs once delete has removed the container.
    @Test func everyPhaseInItsOrderAndPlace() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("sn-hooks-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        // The state's status, from its JSON on standard input.
        let status = #"sed 's/.*"status":"\([a-z]*\)".*/\1/'"#
        let onHost = { (phase: String) in self.hook("echo \"\(phase) $(\(status)) $PHASE_ENV $(hostname)\" >> \(log)") }
        let inContainer = { (phase: String, path: String) in self.hook("echo \"\(phase) $(\(status)) $(hostname)\" >> /\(phase).txt", path: path) }
        let bundle = try TestBundle(["/bin/sh", "-c", "cat /createContainer.txt /startContainer.txt"]) { config in
            config["hostname"] = "hooked"
            config["hooks"] = [
                "prestart": [onHost("prestart")], "createRuntime": [onHost("createRuntime")],
                "createContainer": [inContainer("createContainer", "/bin/busybox")],
                // Found in the container: its own /bin/sh.
                "startContainer": [inContainer("startContainer", "/bin/sh")],
                "poststart": [onHost("poststart")], "poststop": [onHost("poststop")],
            ]
        }
        let result = try bundle.script(
            """
            $R create --bundle . c || exit 1
            echo "created: $(cat \(log) | tr '\\n' ,)"
            $R start c || exit 2
            i=0; while ! $R state c | grep -q '"stopped"'; do i=$((i+1)); [ $i -gt 200 ] && exit 3; sleep 0.05; done
            $R delete c || exit 4
            """)
        #expect(result.status == 0, "\(result.stderr)")
        let host = ((try? String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
        #expect(result.output.first == "created: prestart creating set \(host),createRuntime creating set \(host),", "\(result.stdout)")
        #expect(Array(result.output.dropFirst()) == ["createContainer creating hooked", "startContainer created hooked"], "\(result.stdout) \(result.stderr)")
        let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        #expect(
            lines == [
                "prestart creating set \(host)", "createRuntime creating set \(host)", "poststart running set \(host)", "poststop stopped set \(host)",
            ], "\(lines)")
    }

    /// A createRuntime hook that fails ends create: its status and output in the error, nothing
    /// left (state, cgroup, process); one that outlives its timeout is killed. A failing
    /// startContainer hook stops the container; a failing poststart hook is only a warning.
    @Test func failures() throws {
        let failing = try TestBundle(["/bin/true"], edit: withHooks(["createRuntime": [hook("echo bad hook >&2; exit 3")]]))
        let created = try failing.script("$R create --bundle . c; echo \"create $?\"; ls \(failing.stateRoot)")
        #expect(created.output == ["create 1"], "\(created.stdout) \(created.stderr)")
        #expect(created.stderr.contains("error running createRuntime hook #0 (/bin/busybox): exit status 3, output: bad hook"), "\(created.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(failing.cgroupParentPath)/c"))
        #expect(created.reaped.values.allSatisfy { $0 == 137 }, "\(created.reaped)")

        let slow = try TestBundle(["/bin/true"], edit: withHooks(["prestart": [hook("sleep 5", timeout: 1)]]))
        let timedOut = try slow.script("$R create --bundle . c; echo \"create $?\"")
        #expect(
            timedOut.output == ["create 1"] && timedOut.stderr.contains("error running prestart hook #0 (/bin/busybox): timed out after 1 s"),
            "\(timedOut.stderr)")

        let refusing = try TestBundle(
            ["/bin/sh", "-c", "echo must-not-run"],
            edit: withHooks(["startContainer": [hook("exit 4", path: "/bin/sh")], "poststart": [hook("exit 5")]]))
        let started = try refusing.script(
            """
            $R create --bundle . c || exit 1
            $R start c; echo "start $?"
            i=0; while ! $R state c | grep -q '"stopped"'; do i=$((i+1)); [ $i -gt 100 ] && exit 3; sleep 0.05; done
            $R delete c && echo deleted
            """)
        #expect(started.output == ["start 1", "deleted"], "\(started.stdout) \(started.stderr)")
        #expect(started.stderr.contains("error running startContainer hook #0 (/bin/sh): exit status 4"), "\(started.stderr)")

        let warning = try TestBundle(["/bin/true"], edit: withHooks(["poststart": [hook("exit 5")], "poststop": [hook("exit 6")]]))
        let warned = try warning.script(
            """
            $R create --bundle . c && $R start c; echo "start $?"
            i=0; while ! $R state c | grep -q '"stopped"'; do i=$((i+1)); [ $i -gt 100 ] && exit 3; sleep 0.05; done
            $R delete c; echo "delete $?"
            """)
        #expect(warned.output == ["start 0", "delete 0"], "\(warned.stdout) \(warned.stderr)")
        #expect(warned.stderr.contains("warning: error running poststart hook #0 (/bin/busybox): exit status 5"), "\(warned.stderr)")
        #expect(warned.stderr.contains("warning: error running poststop hook #0 (/bin/busybox): exit status 6"), "\(warned.stderr)")
    }
}
