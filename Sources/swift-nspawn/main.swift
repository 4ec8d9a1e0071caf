#if canImport(Glibc)
    import Glibc
#endif
import NspawnCore

// Installed a second time as swift-nspawn-runc, it is the OCI runtime command line that
// containerd and Podman drive as they drive runc.
let invokedAs = CommandLine.arguments.first.map { $0.split(separator: "/").last.map(String.init) ?? $0 } ?? ""
if invokedAs == RuntimeInvocation.name {
    exit(Runtime.main(Array(CommandLine.arguments.dropFirst())))
}

switch CommandLineParser.parse(Array(CommandLine.arguments.dropFirst())) {
case .exit(let text, let status):
    if status == 0 { print(text) } else { printError(text) }
    exit(status)
case .run(let configuration):
    exit(Launcher.run(configuration))
}
