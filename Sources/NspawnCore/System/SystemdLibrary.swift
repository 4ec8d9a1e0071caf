import CNspawnShim

/// libsystemd (sd-event, sd-bus, sd-daemon), opened by the supervisor when it first needs it, not
/// by the dynamic loader at every start (CNspawnShim's systemd_loader.c says why). Only the
/// supervisor opens it, and only on the host: a child calling into it unopened aborts.
enum SystemdLibrary {
    /// Opens it; once open, returns at once.
    static func open() throws(UserError) {
        guard nsp_systemd_load() == 0 else { throw UserError("Failed to load libsystemd: \(String(cString: nsp_systemd_load_error())).") }
    }
}
