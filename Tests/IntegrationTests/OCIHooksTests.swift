import Foundation
import Testing

/// config.json's hooks (runtime-spec config.md, "POSIX-platform Hooks"): each phase in its
/// operation and order, in the namespaces it belongs to, with the state on its standard input; a
/// failing hook of create or start ends the container and leaves nothing, one of poststart or
/// poststop is only a warning.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct OCIHooksTests {
    /// A hook that runs a shell on `script`: the host's, but for startContainer, whose path is found
    /// in the container.
    private func hook(_ script: String, timeout: Int? = nil) -> [String: Any] {
        var hook: [String: Any] = ["path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PHASE_ENV=set"]]
        if let timeout { hook["timeout"] = timeout }
        return hook
    }

    private func withHooks(_ hooks: [String: Any]) -> (inout [String: Any]) -> Void {
        { config in config["hooks"] = hooks }
    }

    /// Every phase in order: each appends to a log outside the container (with the state's status,
    /// its environment and its hostname: createContainer's is the container's, among the host's
    /// files); startContainer runs in the container, held as its process (its bounding set), and
    /// writes into its root; poststop runs once delete has removed the container.
    @Test func everyPhaseInItsOrderAndPlace() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("sn-hooks-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        // The state's status, from its JSON on standard input.
        let status = #"sed 's/.*"status":"\([a-z]*\)".*/\1/'"#
        let logged = { (phase: String) in self.hook("echo \"\(phase) $(\(status)) $PHASE_ENV $(hostname)\" >> \(log)") }
        let inContainer = hook("echo \"startContainer $(\(status)) $(hostname) $(grep CapBnd /proc/self/status | cut -f2)\" > /startContainer.txt")
        let bundle = try TestBundle(["/bin/sh", "-c", "cat /startContainer.txt"]) { config in
            config["hostname"] = "hooked"
            config["hooks"] = [
                "prestart": [logged("prestart")], "createRuntime": [logged("createRuntime")], "createContainer": [logged("createContainer")],
                "startContainer": [inContainer], "poststart": [logged("poststart")], "poststop": [logged("poststop")],
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
        #expect(
            result.output.first == "created: prestart creating set \(host),createRuntime creating set \(host),createContainer creating set hooked,",
            "\(result.stdout)")
        // containerd's default bounding set.
        #expect(Array(result.output.dropFirst()) == ["startContainer created hooked 00000000a80425fb"], "\(result.stdout) \(result.stderr)")
        let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        #expect(
            lines == [
                "prestart creating set \(host)", "createRuntime creating set \(host)", "createContainer creating set hooked", "poststart running set \(host)",
                "poststop stopped set \(host)",
            ], "\(lines)")
    }

    /// A createRuntime hook that fails ends create: its status and output in the error, nothing left
    /// (state, cgroup, process), poststop run after. One that outlives its timeout is killed, with
    /// what it started.
    @Test func aFailingCreateHookEndsCreate() throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("sn-hook-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let failing = try TestBundle(
            ["/bin/true"], edit: withHooks(["createRuntime": [hook("echo bad hook >&2; exit 3")], "poststop": [hook("cat > \(marker)")]]))
        let created = try failing.script("$R create --bundle . c; echo \"create $?\"; ls \(failing.stateRoot)")
        #expect(created.output == ["create 1"], "\(created.stdout) \(created.stderr)")
        #expect(created.stderr.contains("error running createRuntime hook #0 (/bin/sh): exit status 3, output: bad hook"), "\(created.stderr)")
        let poststop = (try? String(contentsOfFile: marker, encoding: .utf8)) ?? ""
        #expect(poststop.contains(#""status":"stopped""#) && poststop.contains(#""id":"c""#), "\(poststop)")
        // create ended PID 1 itself (nothing was orphaned), and removed its cgroup.
        #expect(!FileManager.default.fileExists(atPath: "\(failing.cgroupParentPath)/c") && created.reaped.isEmpty, "\(created.reaped)")

        let slow = try TestBundle(["/bin/true"], edit: withHooks(["prestart": [hook("sleep 30 & echo $! > \(marker); wait", timeout: 1)]]))
        let timedOut = try slow.script("$R create --bundle . c; echo \"create $?\"")
        #expect(timedOut.output == ["create 1"], "\(timedOut.stdout) \(timedOut.stderr)")
        #expect(timedOut.stderr.contains("error running prestart hook #0 (/bin/sh): timed out after 1 s"), "\(timedOut.stderr)")
        let sleeper = Int32(((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(sleeper > 0 && eventually(within: 2) { kill(sleeper, 0) != 0 }, "the hook's sleep \(sleeper) outlived it")
    }

    /// A failing startContainer hook stops the container before its process runs; a failing
    /// poststart or poststop hook is only a warning.
    @Test func failuresOfStartAndAfter() throws {
        let refusing = try TestBundle(
            ["/bin/sh", "-c", "echo must-not-run"], edit: withHooks(["startContainer": [hook("exit 4")], "poststart": [hook("exit 5")]]))
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
        #expect(warned.stderr.contains("warning: error running poststart hook #0 (/bin/sh): exit status 5"), "\(warned.stderr)")
        #expect(warned.stderr.contains("warning: error running poststop hook #0 (/bin/sh): exit status 6"), "\(warned.stderr)")
    }
}
