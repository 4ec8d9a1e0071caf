#if canImport(Glibc)
    import Glibc
#endif
import CCap
import CNspawnShim

/// The capabilities the payload keeps: systemd-nspawn's bounding set edited by --capability and
/// --drop-capability; inheritable and ambient sets empty unless --ambient-capability asks.
public struct CapabilityPolicy: Equatable, Sendable {
    public var bounding: CapabilitySet
    public var ambient: CapabilitySet
    public var noNewPrivileges: Bool

    /// The default: systemd-nspawn's set, and CAP_NET_ADMIN when the network is the machine's own.
    public static func standard(privateNetwork: Bool) -> CapabilityPolicy {
        var bounding = CapabilitySet.nspawnDefault
        if privateNetwork { bounding.insert(CapabilitySet([Int32(CAP_NET_ADMIN)])) }
        return CapabilityPolicy(bounding: bounding, ambient: [], noNewPrivileges: false)
    }

    private init(bounding: CapabilitySet, ambient: CapabilitySet, noNewPrivileges: Bool) {
        self.bounding = bounding
        self.ambient = ambient
        self.noNewPrivileges = noNewPrivileges
    }

    public init(retain: CapabilitySet = [], drop: CapabilitySet = [], ambient: CapabilitySet = [], privateNetwork: Bool, noNewPrivileges: Bool = false)
        throws(UserError)
    {
        let bounding = Self.standard(privateNetwork: privateNetwork).bounding.union(retain).subtracting(drop)
        guard ambient.isSubset(of: bounding) else {
            throw UserError("--ambient-capability= names capabilities outside the bounding set: \(ambient.subtracting(bounding)).")
        }
        self.bounding = bounding
        self.ambient = ambient
        self.noNewPrivileges = noNewPrivileges
    }

    /// The capabilities this process holds (its permitted set).
    static func held() -> CapabilitySet {
        guard let caps = cap_get_proc() else { return [] }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        var held = CapabilitySet()
        for number in Int32(0)...Int32(CAP_LAST_CAP) {
            var value: cap_flag_value_t = CAP_CLEAR
            if cap_get_flag(caps, cap_value_t(number), CAP_PERMITTED, &value) == 0, value == CAP_SET { held.insert(CapabilitySet([number])) }
        }
        return held
    }

    /// The policy within what a machine without a user namespace can get: the supervisor's own
    /// capabilities (a user namespace starts with all of them). Returns what had to go.
    mutating func limit(to available: CapabilitySet) -> CapabilitySet {
        let lost = bounding.subtracting(available)
        bounding.formIntersection(available)
        ambient.formIntersection(available)
        return lost
    }

    /// Applies the policy to this process, switching to `user` on the way (setgroups, then setgid
    /// before setuid), in the only order that works: the bounding set shrinks while we still hold
    /// CAP_SETPCAP, keep-caps carries ambient capabilities across setuid, then the sets are set.
    func apply(switchingTo user: (uid: UInt32, gid: UInt32, groups: [UInt32])?) throws {
        for number in Int32(0)...Int32(CAP_LAST_CAP) where !bounding.contains(number: number) {
            if cap_drop_bound(cap_value_t(number)) != 0 && errno != EINVAL {
                throw SyscallError.last("prctl(PR_CAPBSET_DROP)", path: CapabilitySet.name(of: number))
            }
        }
        if let user {
            if !ambient.isEmpty { try sys("prctl(PR_SET_KEEPCAPS)") { nsp_prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) } }
            try sys("setgroups") { user.groups.map { gid_t($0) }.withUnsafeBufferPointer { setgroups($0.count, $0.baseAddress) } }
            try sys("setresgid") { nsp_setresgid(user.gid) }
            try sys("setresuid") { nsp_setresuid(user.uid) }
        }
        // For the machine's root: all that the bounding set allows; for anyone else: the ambient set.
        let permitted = user.map { $0.uid == 0 } ?? true ? bounding : ambient
        guard let caps = cap_init() else { throw SyscallError.last("cap_init") }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        for (flag, set) in [(CAP_EFFECTIVE, permitted), (CAP_PERMITTED, permitted), (CAP_INHERITABLE, ambient)] where !set.isEmpty {
            var values = set.numbers.map { cap_value_t($0) }
            if cap_set_flag(caps, flag, Int32(values.count), &values, CAP_SET) != 0 { throw SyscallError.last("cap_set_flag") }
        }
        if cap_set_proc(caps) != 0 { throw SyscallError.last("capset") }
        for number in ambient.numbers where cap_set_ambient(cap_value_t(number), CAP_SET) != 0 {
            throw SyscallError.last("prctl(PR_CAP_AMBIENT_RAISE)", path: CapabilitySet.name(of: number))
        }
        if noNewPrivileges { try sys("prctl(PR_SET_NO_NEW_PRIVS)") { nsp_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } }
    }
}
