import Foundation
import Testing

@testable import NspawnCore

/// config.json's linux.seccomp: read, checked field by field, compiled.
struct SeccompProfileTests {
    private func profile(_ text: String) throws -> SeccompProfile {
        try SeccompProfile(try JSONValue.parse(Array(text.utf8)), read: OCIBundle.Reader(path: "config.json"))
    }

    static let sample = """
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
         "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
         "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"],
         "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
         "syscalls": [
           {"names": ["read", "write", "exit_group", "no_such_call_anywhere"], "action": "SCMP_ACT_ALLOW"},
           {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
           {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
           {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_NE"}, {"index": 1, "value": 0, "op": "SCMP_CMP_NE"}]},
           {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
           {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "comment": "as the default: no rule"}
         ]}
        """

    @Test func readsEveryField() throws {
        let p = try profile(Self.sample)
        #expect(p.defaultAction == .errno(38) && p.architectures == ["x86_64", "x86", "x32"])
        #expect(p.flags == 1 << 2 | 1 << 1 && p.listenerPath == "/run/agent.sock" && p.listenerMetadata == "m" && p.notifies)
        #expect(p.rules.count == 6 && p.rules[3].action == .errno(1) && p.rules[3].comparisons.count == 2)
        #expect(p.rules[2].comparisons == [.init(index: 0, value: 2_114_060_288, valueTwo: 0, op: 7)])
        // Without errnoRet, ERRNO is EPERM, as with runc.
        #expect(try profile(#"{"defaultAction": "SCMP_ACT_ERRNO"}"#).defaultAction == .errno(UInt16(EPERM)))
        #expect(try profile(#"{"defaultAction": "SCMP_ACT_KILL"}"#).defaultAction == .killThread)
    }

    /// libseccomp compiles it: a call it does not know is skipped, a rule that does what the default
    /// does is left out, two conditions on one argument become two rules.
    @Test func compiles() throws {
        let code = try SeccompFilter.context(try profile(Self.sample)).exportPFC()
        // The native architecture's part of libseccomp's pseudo filter code: one part per system
        // call, each starting with a comment naming it.
        let native = code.components(separatedBy: "# filter for arch ").dropFirst().first ?? ""
        func rules(for name: String) -> String {
            native.components(separatedBy: "# filter for syscall \"").filter { $0.hasPrefix(name + "\"") }.joined()
        }
        #expect(native.hasPrefix("x86_64") && rules(for: "mkdir").contains("action 0x7fc00000"), "\(code)")  // SECCOMP_RET_USER_NOTIF
        #expect(rules(for: "uname").isEmpty && !code.contains("no_such_call_anywhere"), "\(code)")
        // kill: a rule per comparison of argument 1, either one returning EPERM (errnoRet 1).
        let kill = rules(for: "kill")
        #expect(kill.contains("$a1.lo32 == 9") && kill.contains("$a1.lo32 == 0") && kill.contains("action ERRNO(1)"), "\(kill)")
        #expect(rules(for: "personality").contains("$a0.lo32 == 8") && code.contains("action ERRNO(38)"), "\(code)")
        let filter = try SeccompFilter.compile(try profile(Self.sample))
        #expect(filter.programs.count == 1 && filter.programs[0].count % 8 == 0 && !filter.programs[0].isEmpty)
        let loaded = try SeccompFilter.load(try profile(Self.sample))
        #expect(loaded.listens && loaded.flags == 1 << 1 | 1 << 2 | SeccompFilter.newListener)
        // Killable waits only with a listener: the kernel refuses the flag without.
        let plain = try SeccompFilter.load(try profile(#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#))
        #expect(!plain.listens && plain.flags == 0)
    }

    @Test func cacheKeyFollowsEveryInput() throws {
        let base = try profile(Self.sample).cacheKey
        for (old, new) in [
            (#""errnoRet": 1"#, #""errnoRet": 2"#), (#""value": 8"#, #""value": 9"#), (#""SCMP_CMP_NE"}]"#, #""SCMP_CMP_GT"}]"#),
            (#""defaultErrnoRet": 38"#, #""defaultErrnoRet": 1"#), (#""index": 1, "value": 0"#, #""index": 2, "value": 0"#),
        ] {
            #expect(Self.sample.contains(old))
            #expect(try profile(Self.sample.replacingOccurrences(of: old, with: new)).cacheKey != base, "\(new)")
        }
        #expect(SeccompFilter.cacheKey(base, architectures: ["x86"]) != SeccompFilter.cacheKey(base, architectures: ["x86", "x32"]))
    }

    /// Every field is checked, and a refusal names it.
    @Test func refusalsNameTheField() throws {
        let cases = [
            (#"{}"#, "linux.seccomp.defaultAction: missing."),
            (#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#, "SCMP_ACT_NOTIFY cannot be the default action."),
            (#"{"defaultAction": "SCMP_ACT_DROP"}"#, "linux.seccomp.defaultAction: unknown action SCMP_ACT_DROP."),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}"#, "linux.seccomp.defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE"),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#, "linux.seccomp.architectures[0]: unknown architecture"),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}"#, "linux.seccomp.flags[0]: unknown flag"),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_KILL"}]}"#, "linux.seccomp.syscalls[0].names: missing."),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}"#, "linux.seccomp.syscalls[0].action: missing."),
            (
                #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]}]}"#,
                "linux.seccomp.syscalls[0].args[0].index: expected an integer from 0 to 5."
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"index": 0, "op": "EQ"}]}]}"#,
                "linux.seccomp.syscalls[0].args[0].op: expected one of"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_LOG", "errnoRet": 1}]}"#,
                "linux.seccomp.syscalls[0].errnoRet: only SCMP_ACT_ERRNO"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#,
                "linux.seccomp.listenerPath: SCMP_ACT_NOTIFY needs"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a", "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}"#,
                "linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY is not supported for sendmsg."
            ),
            (#"{"defaultAction": "SCMP_ACT_ALLOW", "bogus": 1}"#, "linux.seccomp.bogus: not supported by swift-nspawn."),
        ]
        for (text, expected) in cases {
            do {
                _ = try profile(text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }

    /// config.json's profile reaches the configuration; SCMP_ACT_NOTIFY only for swift-nspawn-runc,
    /// which hands the listener to the agent (--oci-bundle has nobody to hand it to).
    @Test func throughTheBundle() throws {
        let config = OCIBundleTests.config.replacingOccurrences(of: #""maskedPaths""#, with: #""seccomp": \#(Self.sample), "maskedPaths""#)
        func configuration(runtime: Bool) throws -> Configuration {
            var options = CommandLineOptions()
            try CommandLineParser.read(["--oci-bundle=/b"], into: &options)
            let assignments = try OCIBundle.assignments(try JSONValue.parse(Array(config.utf8)), bundle: "/b", path: "/b/config.json", runtime: runtime)
            let file = SettingsFile(path: "/b/config.json", trusted: true, assignments: assignments, warnings: [])
            return try file.configuration(commandLine: options, override: false, environment: { _ in nil }).configuration
        }
        #expect(try configuration(runtime: true).seccompProfile == (try profile(Self.sample)))
        #expect(throws: UserError.self) { try configuration(runtime: false) }
        do {
            _ = try configuration(runtime: false)
        } catch {
            #expect("\(error)" == "/b/config.json: linux.seccomp: SCMP_ACT_NOTIFY is supported by swift-nspawn-runc only.")
        }
    }
}
