#if canImport(Glibc)
    import Glibc
#endif
import CNspawnShim
import Testing

@testable import NspawnCore

/// swift-nspawn-runc's command line as containerd, conmon and people type it, and the pieces of
/// its state: /proc/PID/stat, the record, JSON out, the engines' config.json.
struct RuntimeCommandLineTests {
    private func parsed(_ line: String) -> RuntimeInvocation.Parsed { RuntimeInvocation.parse(line.split(separator: " ").map(String.init)) }

    private func command(_ line: String) -> RuntimeInvocation.Command? {
        if case .run(let invocation) = parsed(line) { return invocation.command }
        return nil
    }

    private func refusal(_ line: String) -> String? {
        if case .refused(_, let message) = parsed(line) { return message }
        return nil
    }

    @Test func whatContainerdPasses() {
        let bundle = "/run/containerd/io.containerd.runtime.v2.task/default/t1"
        guard
            case .run(let invocation) = parsed(
                "--root /run/containerd/runc/default --log \(bundle)/log.json --log-format json create --bundle \(bundle) --pid-file \(bundle)/init.pid t1")
        else {
            Issue.record("refused")
            return
        }
        #expect(invocation.global.root == "/run/containerd/runc/default")
        #expect(invocation.global.log == "\(bundle)/log.json" && invocation.global.logFormat == .json)
        #expect(invocation.command == .create(id: "t1", bundle: bundle, pidFile: "\(bundle)/init.pid", consoleSocket: nil, preserveFDs: 0))
    }

    @Test func flagsAsGoSpellsThem() {
        // -name and --name, the value after = or next, booleans with =true/=false, aliases.
        #expect(
            command("-root=/r create -b=/b --console-socket /s --no-pivot --no-new-keyring c")
                == .create(id: "c", bundle: "/b", pidFile: nil, consoleSocket: "/s", preserveFDs: 0))
        #expect(command("--systemd-cgroup --debug delete -f c") == .delete(id: "c", force: true))
        #expect(command("delete --force=false c") == .delete(id: "c", force: false))
        #expect(command("kill -a c KILL") == .kill(id: "c", signal: SIGKILL, all: true))
        #expect(command("create c") == .create(id: "c", bundle: ".", pidFile: nil, consoleSocket: nil, preserveFDs: 0))
        // A command's flags end at its first argument or at --.
        #expect(command("kill -- c 9") == .kill(id: "c", signal: SIGKILL, all: false))
        #expect(refusal("kill c --all") == "unknown signal \"--all\"")
    }

    @Test func signalsByNumberOrName() {
        #expect(command("kill c") == .kill(id: "c", signal: SIGTERM, all: false))
        for (text, signal) in [
            ("9", SIGKILL), ("KILL", SIGKILL), ("SIGKILL", SIGKILL), ("term", SIGTERM), ("USR1", SIGUSR1), ("SIGRTMIN+1", nsp_sigrtmin() + 1),
        ] {
            #expect(command("kill c \(text)") == .kill(id: "c", signal: signal, all: false), "\(text)")
        }
        for bad in ["0", "65", "NOPE", "SIG", "-1x"] {
            #expect(refusal("kill c \(bad)") == "unknown signal \"\(bad)\"", "\(bad)")
        }
    }

    @Test func refusals() {
        #expect(refusal("--log-format xml state c") == "invalid log-format: xml")
        #expect(refusal("--root relative state c") == "--root must be an absolute path: relative")
        #expect(refusal("--bogus state c") == "flag provided but not defined: -bogus")
        #expect(refusal("state") == "\"state\" requires exactly 1 argument(s)")
        #expect(refusal("state a b") == "\"state\" requires exactly 1 argument(s)")
        #expect(refusal("frobnicate c") == "No help topic for 'frobnicate'")
        #expect(refusal("create --bundle") == "flag needs an argument: -bundle")
        #expect(refusal("create --preserve-fds=x c") == "invalid value \"x\" for flag -preserve-fds")
        #expect(refusal("delete --force=maybe c") == "invalid boolean value \"maybe\" for -force")
        for id in ["..", ".", "a/b", "a b", "é"] {
            #expect(RuntimeInvocation.parse(["state", id]) == .refused(RuntimeInvocation.Global(), "invalid id format: \(id)"), "\(id)")
        }
        // The global options parsed so far still say where the error is logged.
        guard case .refused(let global, _) = parsed("--log /l --log-format json state") else {
            Issue.record("accepted")
            return
        }
        #expect(global.log == "/l" && global.logFormat == .json)
    }

    @Test func versionHelpAndWhatIsNotThere() {
        #expect(command("--version") == .version && command("-v") == .version && command("version") == .version)
        #expect(command("") == .help && command("--help") == .help && command("help") == .help)
        // Podman asks `checkpoint --help` whether a runtime can: it cannot.
        #expect(command("checkpoint c") == .unsupported("checkpoint") && command("restore c") == .unsupported("restore"))
        #expect(refusal("checkpoint --help c") != nil)
    }

    @Test func execAsContainerdAndPeopleCallIt() {
        guard case .exec(let request)? = command("exec --process /b/p.json --detach --pid-file /b/e.pid --console-socket /s c") else {
            Issue.record("not exec")
            return
        }
        #expect(request.processFile == "/b/p.json" && request.detach && request.pidFile == "/b/e.pid" && request.consoleSocket == "/s" && request.id == "c")
        guard case .exec(let typed)? = command("exec -t -e A=1 -e B=2 -u 1000:100 --cwd /tmp --cap CAP_KILL --cap CAP_CHOWN c sh -c true") else {
            Issue.record("not exec")
            return
        }
        #expect(typed.tty && typed.environment == ["A=1", "B=2"] && typed.user == "1000:100" && typed.workingDirectory == "/tmp")
        #expect(typed.capabilities == ["CAP_KILL", "CAP_CHOWN"] && typed.arguments == ["sh", "-c", "true"] && !typed.detach)
        #expect(refusal("exec c") == "exec: a command is needed, or --process")
        #expect(refusal("exec --process p.json c true") == "exec: --process and a command may not be combined")
        #expect(refusal("exec") == "\"exec\" requires a minimum of 1 argument(s)")
        #expect(refusal("exec --preserve-fds x c true") == "invalid value \"x\" for flag -preserve-fds")
    }

    @Test func processStat() {
        // The command name may hold spaces and parentheses.
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615"
        #expect(ProcessStat.parse(line) == ProcessStat(state: "S", startTime: 987654))
        #expect(ProcessStat.parse("4242 (x) Z 1") == nil)
        #expect((ProcessStat.read(getpid())?.startTime ?? 0) > 0)
    }

    @Test func recordRoundTripAndJSONText() throws {
        let record = ContainerRecord(
            id: "c", bundle: "/b", rootfs: "/b/rootfs", pid: 42, startTime: 7, created: "2026-11-30T08:00:00.000000001Z", cgroup: "/sys/fs/cgroup/c",
            annotations: ["a": .string("q\"\\é")])
        let text = record.json.text
        #expect(text.contains(#""a":"q\"\\é""#))
        #expect(ContainerRecord(try JSONValue.parse(Array(text.utf8))) == record)
        // What our parser never lets in, a log message may hold: escaped.
        #expect(JSONValue.string("a\nb\u{1}").text == #""a\nb\u0001""#)
        #expect(JSONValue.object(["b": .number(1), "a": .array([.null, .bool(true)])]).text == #"{"a":[null,true],"b":1}"#)
    }

    @Test func rfc3339() {
        let now = Clock.rfc3339Now()
        #expect(now.count == 30 && now.hasSuffix("Z") && now.dropFirst(10).first == "T", "\(now)")
    }
}
