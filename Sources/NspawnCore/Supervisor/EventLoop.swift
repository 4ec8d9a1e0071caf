#if canImport(Glibc)
    import Glibc
#endif
import CSystemd

/// The supervisor's one event loop: sd-event, single-threaded, driven from main. Handlers are Swift
/// closures kept alive by the source objects that own them.
final class EventLoop {
    let event: OpaquePointer

    init() throws {
        try SystemdLibrary.open()
        var event: OpaquePointer?
        let r = sd_event_new(&event)
        guard r >= 0, let event else { throw SyscallError("sd_event_new", errno: .init(rawValue: -r)) }
        self.event = event
    }

    deinit { sd_event_unref(event) }

    /// Runs until `exit()` is called from a handler.
    func run() throws(SyscallError) {
        let r = sd_event_loop(event)
        if r < 0 { throw SyscallError("sd_event_loop", errno: .init(rawValue: -r)) }
    }

    func exit() { sd_event_exit(event, 0) }

    func addIO(_ fd: Int32, events: UInt32, _ handler: @escaping (UInt32) -> Void) throws(SyscallError) -> EventSource {
        let box = EventSource.Box(io: handler)
        var source: OpaquePointer?
        let r = sd_event_add_io(
            event, &source, fd, events,
            { _, _, revents, userdata in
                guard let userdata else { return 0 }
                Unmanaged<EventSource.Box>.fromOpaque(userdata).takeUnretainedValue().io?(revents)
                return 0
            }, Unmanaged.passUnretained(box).toOpaque())
        guard r >= 0, let source else { throw SyscallError("sd_event_add_io", errno: .init(rawValue: -r)) }
        return EventSource(source, box: box, events: events)
    }

    /// Calls the handler once, after the given number of seconds (CLOCK_MONOTONIC).
    func addTimer(after seconds: Double, _ handler: @escaping () -> Void) throws(SyscallError) -> EventSource {
        let box = EventSource.Box(timer: handler)
        var source: OpaquePointer?
        let r = sd_event_add_time_relative(
            event, &source, CLOCK_MONOTONIC, UInt64(seconds * 1_000_000), 0,
            { _, _, userdata in
                guard let userdata else { return 0 }
                Unmanaged<EventSource.Box>.fromOpaque(userdata).takeUnretainedValue().timer?()
                return 0
            }, Unmanaged.passUnretained(box).toOpaque())
        guard r >= 0, let source else { throw SyscallError("sd_event_add_time_relative", errno: .init(rawValue: -r)) }
        return EventSource(source, box: box)
    }

    /// The signal must already be blocked (the supervisor blocks its signals before it clones).
    func addSignal(_ signal: Int32, _ handler: @escaping (Int32) -> Void) throws(SyscallError) -> EventSource {
        let box = EventSource.Box(signal: handler)
        var source: OpaquePointer?
        let r = sd_event_add_signal(
            event, &source, signal,
            { _, info, userdata in
                guard let userdata, let info else { return 0 }
                Unmanaged<EventSource.Box>.fromOpaque(userdata).takeUnretainedValue().signal?(Int32(info.pointee.ssi_signo))
                return 0
            }, Unmanaged.passUnretained(box).toOpaque())
        guard r >= 0, let source else { throw SyscallError("sd_event_add_signal", path: SignalName.name(signal), errno: .init(rawValue: -r)) }
        return EventSource(source, box: box)
    }
}

/// An sd_event_source and the handler it calls; the source is removed when this goes away.
final class EventSource {
    final class Box {
        let io: ((UInt32) -> Void)?
        let signal: ((Int32) -> Void)?
        let timer: (() -> Void)?
        init(io: ((UInt32) -> Void)? = nil, signal: ((Int32) -> Void)? = nil, timer: (() -> Void)? = nil) {
            self.io = io
            self.signal = signal
            self.timer = timer
        }
    }

    let source: OpaquePointer
    private let box: Box
    /// An I/O source's events, as epoll has them.
    private var events: UInt32

    init(_ source: OpaquePointer, box: Box, events: UInt32 = 0) {
        self.source = source
        self.box = box
        self.events = events
    }

    /// An I/O source's events from now on. Only a change reaches epoll_ctl: sd-event would repeat an
    /// edge-triggered one, and with it the event, on every call. One it refuses leaves the old
    /// events, and is tried again on the next call.
    func setEvents(_ events: UInt32) {
        guard events != self.events, sd_event_source_set_io_events(source, events) >= 0 else { return }
        self.events = events
    }

    /// A timer source fires once more, `seconds` from now: one source serves a repeating timer.
    func rearm(after seconds: Double) {
        sd_event_source_set_time_relative(source, UInt64(seconds * 1_000_000))
        sd_event_source_set_enabled(source, Int32(SD_EVENT_ONESHOT))
    }
    func disable() { sd_event_source_set_enabled(source, Int32(SD_EVENT_OFF)) }

    deinit {
        sd_event_source_disable_unref(source)
    }
}
