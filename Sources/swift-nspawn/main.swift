#if canImport(Glibc)
    import Glibc
#endif
import NspawnCore

// No variable at the top level: in Swift 6 it would belong to the main actor, and that alone links
// the Swift concurrency runtime and libdispatch into the binary (64 KiB more relocated data at
// every start, for nothing: the supervisor is single-threaded).

// Installed a second time as swift-nspawn-runc, it is the OCI runtime command line that
// containerd and Podman drive as they drive runc.
if CommandLine.arguments.first?.split(separator: "/").last.map(String.init) == RuntimeInvocation.name {
    exit(Runtime.main(Array(CommandLine.arguments.dropFirst())))
}

switch CommandLineParser.parse(Array(CommandLine.arguments.dropFirst())) {
case .exit(let text, let status):
    if status == 0 { print(text) } else { printError(text) }
    exit(status)
case .run(let configuration):
    exit(Launcher.run(configuration))
}
