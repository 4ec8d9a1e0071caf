import Foundation
import Testing

@testable import NspawnCore

/// Mutation fuzzing of what users (and files beside their trees) feed swift-nspawn: the command
/// line and .nspawn settings files, through the parser, the configuration and the settings merge.
/// Each input must end as a configuration or as one line of error (or a help text with status 0),
/// never as a crash, a hang or a multi-line error. Runs FUZZ_SECONDS (default 3) per target, from
/// FUZZ_SEED (default: random, printed) so that a failure can be replayed.
struct FuzzTests {
    static let seconds = Double(ProcessInfo.processInfo.environment["FUZZ_SECONDS"] ?? "") ?? 3
    static let seed = UInt64(ProcessInfo.processInfo.environment["FUZZ_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)

    /// Values that have broken parsers before: empty, help, separators, quotes, escapes, huge
    /// numbers, control characters, non-ASCII, long strings, paths with .. and //.
    static let values = [
        "", "help", "yes", "no", "0", "1", "-1", "65535", "4294967296", "18446744073709551616", "~", "+", ":", "::", "=", "a=b", "/", "//x//",
        "/../etc", "../x", "\"", "'", "\"a b\"", "\\", "a\\", "x\u{0}y", "\u{1b}[2J", "ü", "🙂", String(repeating: "a", count: 5000), "1:2:3:4",
        "tcp:80:80", "udp:0:0", "CAP_SYS_ADMIN", "all", "~@clock", "@obsolete", "SIGRTMIN+40", "SIGTERM", "RLIMIT_NOFILE=1:2", "NOFILE=infinity",
        "0-3,6", "x86", "pick", "identity", "65536:65536", "map", "auto", "state", "overlay", "copy-host", "try-guest", "ve-x", "eth0:host0",
        "/srv:/data:idmap,rbind", "/a:/b:/c", "+/usr:/x", "/tmp:mode=1777,size=1G", "MemoryMax=1G", "machine.slice", "root=unprotected+absent",
    ]

    static let settingsKeys = Array(SettingsFile.keys.keys)

    @Test func commandLine() {
        var random = SplitMix64(seed: Self.seed)
        let longs = OptionTable.all.compactMap(\.long) + UnavailableOptions.entries.map(\.long) + ["bogus"]
        let shorts = OptionTable.all.compactMap(\.short).map(String.init) + ["Z", "9"]
        let deadline = Date().addingTimeInterval(Self.seconds)
        var runs = 0
        while Date() < deadline {
            var arguments: [String] = []
            for _ in 0..<Int.random(in: 0...8, using: &random) {
                switch Int.random(in: 0..<6, using: &random) {
                case 0: arguments.append("--\(longs.randomElement(using: &random)!)=\(Self.values.randomElement(using: &random)!)")
                case 1: arguments += ["--\(longs.randomElement(using: &random)!)", Self.values.randomElement(using: &random)!]
                case 2: arguments.append("-\(shorts.randomElement(using: &random)!)\(Bool.random(using: &random) ? "" : shorts.randomElement(using: &random)!)")
                case 3: arguments.append(Self.values.randomElement(using: &random)!)
                case 4: arguments.append("--")
                default: arguments += ["-D", "/m"]
                }
            }
            switch CommandLineParser.parse(arguments, environment: { _ in nil }) {
            case .run: break
            case .exit(let text, let status):
                #expect(status == 0 || status == 1, "seed \(Self.seed): \(arguments)")
                if status == 1 { #expect(!text.contains("\n") && !text.isEmpty, "seed \(Self.seed): \(arguments) → \(text)") }
            }
            runs += 1
        }
        print("fuzz command line: \(runs) inputs in \(Self.seconds) s from seed \(Self.seed), no failure")
    }

    /// Command lines a machine might be started with: the file's keys meet these.
    static let commandLines: [[String]] = [
        [], ["-b"], ["-U"], ["-n", "-p", "80"], ["--network-zone=z"], ["--drop-capability=CAP_SYS_ADMIN"], ["--bind=/srv:/srv"],
        ["--system-call-filter=~@clock"], ["--private-users=no"], ["-a", "/bin/sh"], ["--rlimit=NOFILE=10"], ["-E", "A=1"],
    ]

    @Test func settingsFiles() throws {
        var random = SplitMix64(seed: Self.seed ^ 0x5eed)
        // Every name looks set in swift-nspawn's environment: a file must never read it.
        let environment: (String) -> String? = { $0.hasPrefix("SYSTEMD_") || $0.hasPrefix("SWIFT_NSPAWN_") ? nil : "host-secret-\($0)" }
        let deadline = Date().addingTimeInterval(Self.seconds)
        var runs = 0
        while Date() < deadline {
            var lines: [String] = []
            for _ in 0..<Int.random(in: 0...40, using: &random) {
                let key = Self.settingsKeys.randomElement(using: &random)!
                let section = String(key.prefix { $0 != "/" })
                let name = String(key.drop { $0 != "/" }.dropFirst())
                switch Int.random(in: 0..<10, using: &random) {
                case 0: lines.append("[\(section)")
                case 1: lines.append(Self.values.randomElement(using: &random)!)
                case 2: lines.append("\(name)=\(Self.values.randomElement(using: &random)!) \\")
                case 3: lines.append("# \(Self.values.randomElement(using: &random)!)")
                default:
                    if lines.isEmpty || Bool.random(using: &random) { lines.append("[\(section)]") }
                    lines.append("\(name)=\(Self.values.randomElement(using: &random)!)")
                }
            }
            var text = lines.joined(separator: "\n")
            // Byte-level damage now and then: the parser must take any bytes.
            if !text.isEmpty && Int.random(in: 0..<4, using: &random) == 0 {
                var bytes = Array(text.utf8)
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                text = String(decoding: bytes, as: UTF8.self)
            }
            var commandLine = CommandLineOptions()
            try CommandLineParser.read(["-D", "/m"] + Self.commandLines.randomElement(using: &random)!, into: &commandLine)
            let alone = try Configuration(options: commandLine, environment: environment)
            let trusted = Bool.random(using: &random)
            do {
                var file = try SettingsFile.parse(text, path: "/m.nspawn")
                file.trusted = trusted
                let (c, _) = try file.configuration(commandLine: commandLine, override: Bool.random(using: &random), environment: environment)
                #expect(!c.environment.contains { $0.contains("host-secret") }, "seed \(Self.seed): \(text)")
                #expect(Set(alone.systemCallFilters.filter { $0.hasPrefix("~") }).isSubset(of: c.systemCallFilters), "seed \(Self.seed): \(text)")
                if !trusted {
                    // What an untrusted file may never change.
                    #expect(c.binds == alone.binds && c.tmpfs == alone.tmpfs && c.overlays == alone.overlays, "seed \(Self.seed): \(text)")
                    #expect(c.inaccessible == alone.inaccessible && c.bindUsers == alone.bindUsers, "seed \(Self.seed): \(text)")
                    #expect(
                        c.network == alone.network && c.userNamespace == alone.userNamespace && c.ownership == alone.ownership, "seed \(Self.seed): \(text)")
                    #expect(c.process.resourceLimits == alone.process.resourceLimits && c.process.oomScoreAdjust == alone.process.oomScoreAdjust)
                    #expect(c.process.cpuAffinity == alone.process.cpuAffinity && c.uuid == alone.uuid && c.linkJournal == alone.linkJournal)
                    #expect(c.ephemeral == alone.ephemeral && c.capabilities.ambient == alone.capabilities.ambient)
                    #expect(c.capabilities.bounding.isSubset(of: alone.capabilities.bounding), "seed \(Self.seed): \(text)")
                }
            } catch {
                let message = "\(error)"
                #expect(!message.contains("\n") && message.hasPrefix("/m.nspawn"), "seed \(Self.seed): \(text) → \(message)")
            }
            runs += 1
        }
        print("fuzz settings files: \(runs) inputs in \(Self.seconds) s from seed \(Self.seed), no failure")
    }

    /// config.json of OCI bundles: runc's default one, damaged byte by byte, cut short, with
    /// values swapped for the fuzz values; the JSON parser and the mapping must end in settings
    /// or one line of error.
    @Test func ociConfigs() throws {
        var random = SplitMix64(seed: Self.seed ^ 0x0c1)
        let base = Array(OCIBundleTests.config.utf8)
        var commandLine = CommandLineOptions()
        try CommandLineParser.read(["--oci-bundle=/b"], into: &commandLine)
        let deadline = Date().addingTimeInterval(Self.seconds)
        var runs = 0
        while Date() < deadline {
            var bytes = base
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
                case 2:
                    // A string value replaced: the parser takes it, the mapping must judge it.
                    let text = String(decoding: bytes, as: UTF8.self)
                    let value = Self.values.randomElement(using: &random)!.replacingOccurrences(of: "\\", with: "").replacingOccurrences(of: "\"", with: "")
                    bytes = Array(text.replacingOccurrences(of: "\"sh\"", with: "\"\(value)\"").replacingOccurrences(of: "\"oci\"", with: "\"\(value)\"").utf8)
                default: bytes.insert(contentsOf: Array("[{\"".utf8), at: Int.random(in: 0...bytes.count, using: &random))
                }
                if bytes.isEmpty { break }
            }
            do {
                let document = try JSONValue.parse(bytes)
                let file = SettingsFile(
                    path: "/b/config.json", trusted: true, assignments: try OCIBundle.assignments(document, bundle: "/b", path: "/b/config.json"),
                    warnings: [])
                _ = try file.configuration(commandLine: commandLine, override: false, environment: { _ in nil })
            } catch let error as JSONValue.SyntaxError {
                #expect(error.offset <= bytes.count)
            } catch {
                let message = "\(error)"
                #expect(!message.contains("\n") && message.hasPrefix("/b/config.json"), "seed \(Self.seed): \(message)")
            }
            runs += 1
        }
        print("fuzz OCI configs: \(runs) inputs in \(Self.seconds) s from seed \(Self.seed), no failure")
    }
}
