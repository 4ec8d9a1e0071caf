#if canImport(Glibc)
    import Glibc
#endif

/// The host terminal in raw mode for the time the console is forwarded, and exactly as it was after.
final class TerminalMode {
    private let fd: Int32
    private var saved: termios?

    init(fd: Int32) { self.fd = fd }

    func makeRaw() {
        var attributes = termios()
        guard tcgetattr(fd, &attributes) == 0 else { return }
        saved = attributes
        cfmakeraw(&attributes)
        tcsetattr(fd, TCSANOW, &attributes)
    }

    func restore() {
        guard var attributes = saved else { return }
        tcsetattr(fd, TCSANOW, &attributes)
        saved = nil
    }

    deinit { restore() }

    static func windowSize(of fd: Int32) -> winsize? {
        var size = winsize()
        return ioctl(fd, UInt(TIOCGWINSZ), &size) == 0 ? size : nil
    }
}
