#if canImport(Glibc)
    import Glibc
#endif
import NspawnCore

switch CommandLineParser.parse(Array(CommandLine.arguments.dropFirst())) {
case .exit(let text, let status):
    if status == 0 { print(text) } else { printError(text) }
    exit(status)
case .run(let configuration):
    exit(Launcher.run(configuration))
}
