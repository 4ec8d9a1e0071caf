import Foundation
import Testing

/// config.json's linux.seccomp (runtime-spec config-linux.md): the profile holds the container's
/// PID 1 and what `exec` starts in it, on top of swift-nspawn's own filter; SCMP_ACT_NOTIFY hands
/// a listener to the agent at listenerPath, with the container process state.
@Suite(.serialized, .enabled(if: TestEnvironment.isRoot, TestEnvironment.rootReason))
struct OCISeccompTests {
    private func withProfile(_ profile: [String: Any]) -> (inout [String: Any]) -> Void {
        { config in
            var linux = config["linux"] as! [String: Any]
            linux["seccomp"] = profile
            config["linux"] = linux
        }
    }

    /// Actions with their errno and argument comparisons (flags and architectures accepted); a call
    /// this libseccomp does not know is skipped. kill(2) is refused only for SIGUSR2 (the shell would die
    /// of it), mkdir with EXDEV; exec's process meets the same profile.
    @Test func theProfileHoldsTheContainerAndExec() throws {
        let profile: [String: Any] = [
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [
                ["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18],
                ["names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [["index": 1, "value": 12, "op": "SCMP_CMP_EQ"]]],
                ["names": ["no_such_call_anywhere"], "action": "SCMP_ACT_KILL"],
            ],
        ]
        let bundle = try TestBundle(
            ["/bin/sh", "-c", "mkdir /tmp/x; echo \"mkdir $?\"; kill -USR2 $$; echo \"usr2 $?\"; kill -0 $$; echo \"zero $?\"; exec sleep 30"],
            edit: withProfile(profile))
        let result = try bundle.script(
            """
            $R create --bundle . --pid-file pid c && $R start c || exit 1
            # PID 1 is through its own calls once it runs sleep.
            i=0; while [ "$(cat /proc/$(cat pid)/comm)" != sleep ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
            $R exec c /bin/mkdir /tmp/y; echo "exec $?"
            $R exec c /bin/sh -c 'mkdir /tmp/z 2>/dev/null; echo "exec mkdir $?"'
            $R delete --force c
            """)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.output == ["mkdir 1", "usr2 1", "zero 0", "exec 1", "exec mkdir 1"], "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("can't create directory '/tmp/x': Invalid cross-device link"), "\(result.stderr)")
        #expect(result.stderr.contains("can't create directory '/tmp/y': Invalid cross-device link"), "\(result.stderr)")
        #expect(result.stderr.contains("Operation not permitted"), "\(result.stderr)")
    }

    /// SCMP_ACT_NOTIFY: create hands PID 1's listener to the agent before it ends, with the state
    /// ("creating", PID 1's host PID, the metadata); exec hands its process's ("running"). The
    /// agent's answer (ETXTBSY) is what the container's calls return.
    @Test func notifyHandsTheListenerToTheAgent() throws {
        let agentDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("sn-agent-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: agentDirectory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: agentDirectory) }
        let socket = agentDirectory + "/agent.sock"
        let log = agentDirectory + "/agent.log"
        let profile: [String: Any] = [
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "listenerMetadata": "test-metadata",
            "syscalls": [["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"]],
        ]
        let bundle = try TestBundle(["/bin/sh", "-c", "mkdir /tmp/n; echo \"mkdir $?\"; exec sleep 30"], edit: withProfile(profile))
        let agent = TestEnvironment.packageRoot.appendingPathComponent("Tests/IntegrationTests/Fixtures/seccomp-agent.py").path
        let result = try bundle.script(
            """
            \(agent) \(socket) \(log) 26 20 & agent=$!
            i=0; while [ ! -S \(socket) ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
            $R create --bundle . --pid-file pid c || exit 1
            $R start c || exit 2
            i=0; while ! grep -q '"notified"' \(log) && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
            $R exec c /bin/mkdir /tmp/e; echo "exec $?"
            $R delete --force c
            kill $agent; wait $agent
            echo "pid $(cat pid)"
            """)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.output.filter { !$0.hasPrefix("pid ") } == ["mkdir 1", "exec 1"], "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("can't create directory '/tmp/n': Text file busy"), "\(result.stderr)")
        #expect(result.stderr.contains("can't create directory '/tmp/e': Text file busy"), "\(result.stderr)")
        let pid1 = Int(result.output.first { $0.hasPrefix("pid ") }?.dropFirst(4) ?? "") ?? -1
        let events = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        let connections = events.filter { $0["state"] != nil }
        #expect(connections.count == 2, "\(events)")
        guard connections.count == 2 else { return }
        let created = connections[0]["state"] as? [String: Any] ?? [:]
        let createdState = created["state"] as? [String: Any] ?? [:]
        #expect(connections.allSatisfy { $0["fds"] as? Int == 1 })
        #expect(created["fds"] as? [String] == ["seccompFd"] && created["metadata"] as? String == "test-metadata" && created["pid"] as? Int == pid1)
        #expect(createdState["status"] as? String == "creating" && createdState["id"] as? String == "c" && createdState["bundle"] as? String == bundle.path)
        let exec = connections[1]["state"] as? [String: Any] ?? [:]
        let execState = exec["state"] as? [String: Any] ?? [:]
        #expect(execState["status"] as? String == "running" && execState["pid"] as? Int == pid1 && (exec["pid"] as? Int ?? pid1) != pid1, "\(exec)")
        #expect(events.filter { $0["notified"] != nil }.count == 2, "\(events)")
    }

    /// An agent that cannot be reached: create fails and leaves nothing; exec fails and leaves no
    /// process behind (it waits until the agent has its listener, and ends with exec).
    @Test func anUnreachableAgentStartsNothing() throws {
        let agentDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("sn-agent-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: agentDirectory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: agentDirectory) }
        let socket = agentDirectory + "/agent.sock"
        let profile: [String: Any] = [
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": socket, "syscalls": [["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"]],
        ]
        let bundle = try TestBundle(["/bin/sleep", "30"], edit: withProfile(profile))
        let agent = TestEnvironment.packageRoot.appendingPathComponent("Tests/IntegrationTests/Fixtures/seccomp-agent.py").path
        let result = try bundle.script(
            """
            $R create --bundle . d; echo "create $?"
            \(agent) \(socket) \(agentDirectory)/log 26 20 & agent=$!
            i=0; while [ ! -S \(socket) ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.05; done
            $R create --bundle . c && $R start c || exit 1
            kill -KILL $agent; wait $agent
            $R exec c /bin/echo must-not-run; echo "exec $?"
            echo "processes $($R ps --format json c | tr -cd , | wc -c)"
            $R delete --force c
            """)
        #expect(result.output == ["create 1", "exec 1", "processes 0"], "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("connect(\"\(socket)\")"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(bundle.stateRoot)/d") && !FileManager.default.fileExists(atPath: "\(bundle.cgroupParentPath)/d"))
    }
}
