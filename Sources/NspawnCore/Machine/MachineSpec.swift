/// Everything one boot of a machine needs, decided by the supervisor before it clones: a plain
/// value that the children receive as a copy of the supervisor's memory.
struct MachineSpec {
    var image: MachineImage
    var hostname: String
    var machineID: MachineID
    /// The host IDs the machine's 0…65535 map onto; nil without a user namespace.
    var idRange: UIDRange?
    var ownership: OwnershipMode
    var nestedUserNamespaces: Bool
    var privateNetwork: Bool
    var console: ConsoleMode
    var plan: MountPlan
    var payload: PayloadSpec
    var killSignal: Int32?
    var notifyReady: Bool
    /// --boot-test's timeout in seconds; nil without a boot test.
    var bootTestTimeout: Int?
    var keepUnit: Bool
    var register: RegisterMode
    /// The slice of the machine's scope on a systemd host.
    var slice: String
    var properties: [ResourceProperty]
    var quiet: Bool

    var namespaces: NamespaceSet {
        var set: NamespaceSet = [.mount, .pid, .uts, .ipc]
        if idRange != nil { set.insert(.user) }
        if privateNetwork { set.insert(.network) }
        return set
    }
}

/// What PID 1 (or PID 2 with --as-pid2) runs, and as whom.
struct PayloadSpec {
    var command: [String]
    var environment: [String]
    var user: String?
    var workingDirectory: String?
    var asPID2: Bool
    /// Exec the tree's init (systemd) with `command` as its arguments.
    var boot: Bool
    var capabilities: CapabilityPolicy
    /// nil only with SYSTEMD_SECCOMP=0.
    var seccomp: SeccompFilter?
    var machineID: MachineID
    var term: String?
}
