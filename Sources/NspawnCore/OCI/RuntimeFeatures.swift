/// What `swift-nspawn-runc features` prints (runtime-spec features.md): what this runtime takes,
/// fixed when it is built. Only what is really honoured is listed; what it refuses is not.
enum RuntimeFeatures {
    static var json: JSONValue {
        let mountOptions = (OCIBundle.apiMountOptions.union(OCIBundle.propagationOptions).union(["bind", "rbind", "idmap", "ridmap"])).sorted()
        return .object([
            "ociVersionMin": .string("1.0.0"),
            "ociVersionMax": .string(RuntimeInvocation.specVersion),
            "hooks": .array(RuntimeHooks.Phase.allCases.map { .string($0.rawValue) }),
            "mountOptions": .array(mountOptions.map(JSONValue.string)),
            "linux": .object([
                "namespaces": .array(["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"].map(JSONValue.string)),
                "capabilities": .array(CapabilitySet.all.numbers.map { .string(CapabilitySet.name(of: $0).uppercased()) }),
                "cgroup": .object(["v1": .bool(false), "v2": .bool(true), "systemd": .bool(true), "systemdUser": .bool(false), "rdma": .bool(false)]),
                // A profile goes on top of swift-nspawn's own filter, which is always installed.
                "seccomp": .object([
                    "enabled": .bool(true),
                    "actions": .array(SeccompProfile.actions.map { .string($0.0) }),
                    "operators": .array(SeccompProfile.operators.map { .string($0.0) }),
                    "archs": .array(SeccompProfile.architectureNames.map { .string("SCMP_ARCH_" + $0.uppercased()) }),
                    "knownFlags": .array(SeccompProfile.flagBits.map { .string($0.0) }),
                    "supportedFlags": .array(SeccompProfile.flagBits.map { .string($0.0) }),
                ]),
                "apparmor": .object(["enabled": .bool(false)]),
                "selinux": .object(["enabled": .bool(false)]),
                "intelRdt": .object(["enabled": .bool(false)]),
                "mountExtensions": .object(["idmap": .object(["enabled": .bool(true)])]),
            ]),
            "annotations": .object(["io.github.swift-nspawn.version": .string(Version.number)]),
        ])
    }
}
