import SystemPackage
import Testing
@testable import NspawnCore

/// The outer child's mount namespace, built against a recording kernel: the calls, in order,
/// with their flags. The integration tests run the same code against the real kernel.
@Suite struct MountNamespaceBuilderTests {
    /// The tree at /m (so its machine's root is /m/root in the workspace), with what a busybox tree and
    /// a kernel's procfs and sysfs have.
    private static let tree: Set<String> = Set(["/", "/m", "/m/root"])
        .union(["dev", "proc", "sys", "run", "tmp", "etc", "usr", "sys/fs", "sys/fs/cgroup"].map { "/m/root/\($0)" })
        .union(["sys", "sys/net", "kallsyms", "keys", "timer_list", "sysrq-trigger", "bus", "fs", "irq"].map { "/m/root/proc/\($0)" })

    private struct Built {
        var kernel: RecordingKernel
        var calls: [String] { kernel.calls }
        func index(_ prefix: String) -> Int { kernel.index(prefix) ?? -1 }
        func has(_ prefix: String) -> Bool { kernel.index(prefix) != nil }
    }

    private func build(
        _ args: [String], failure: @escaping (String) -> Errno? = { _ in nil }, kernel: RecordingKernel = RecordingKernel(existing: tree),
        pivot: RootMount.Pivot? = nil
    ) throws -> Built {
        var plan = try PlanFixture.plan(args + ["-P"])
        plan.mounts.root.path = "/m"
        plan.mounts.root.pivot = pivot
        kernel.failure = failure
        let userNamespace = plan.idRange == nil ? nil : kernel.descriptor("machine userns")
        let builder = MountNamespaceBuilder(kernel: kernel, plan: plan.mounts, machineRoot: plan.idRange?.base ?? 0, quiet: true)
        _ = try builder.build(userNamespace: userNamespace) {
            APIMounts(plan.mounts.apiFilesystems.map { kernel.descriptor($0.rawValue) }, plan: plan.mounts)
        }
        return Built(kernel: kernel)
    }

    @Test func theTreeIsIDMappedNodevInAWorkspaceOnlyThisNamespaceSees() throws {
        let built = try build([])
        // The tree's directory is looked up once; the rest goes by descriptor.
        #expect(
            Array(built.calls.prefix(10)) == [
                "mount(/, MS_SLAVE|MS_REC)", "open(/m)", "open_tree(/m, recursive)", "mount_setattr(clone of /m, set nodev, idmap, recursive)",
                "fsmount(tmpfs: mode=0755,size=64k,nr_inodes=1k; nosuid|nodev|noexec)", "move_mount(tmpfs → /m)", "mkdir(/m/root, 755)",
                "mkdir(/m/stage, 755)", "open(/m/root)", "move_mount(clone of /m → /m/root)",
            ], "\(built.calls)")
        #expect(built.calls.filter { $0 == "open(/m)" }.count == 1)
    }

    /// --pivot-root's directory is found in the tree at every build (the machine may have turned
    /// its path into a link between two boots), never by its path on the host.
    @Test func thePivotRootIsFoundInTheTreeNotByItsPath() throws {
        let built = try build([], pivot: RootMount.Pivot(tree: "/", relative: "m"))
        #expect(Array(built.calls.prefix(4)) == ["mount(/, MS_SLAVE|MS_REC)", "open(/)", "openat2(/m, inRoot)", "open_tree(/m, recursive)"], "\(built.calls)")
        #expect(!built.has("open(/m)"))
    }

    @Test func withAUserNamespaceTheGuestsMountsAreStagedAndBoundAfterTheCopy() throws {
        let built = try build(["--bind=/src:/srv", "--bind-ro=/ro:/opt:norbind", "--tmpfs=/var/cache"])
        // The host's mounts go into the tree; the guest's into the stage, in the plan's order.
        let proc = built.index("move_mount(proc → /m/root/proc)")
        let stagedTmp = built.index("move_mount(tmpfs → /m/stage/0)")
        let stagedOpt = built.index("move_mount(clone of /ro → /m/stage/1)")
        let stagedSrv = built.index("move_mount(clone of /src → /m/stage/2)")
        let stagedVar = built.index("move_mount(tmpfs → /m/stage/3)")
        #expect(proc > 0 && proc < stagedTmp && stagedTmp < stagedOpt && stagedOpt < stagedSrv && stagedSrv < stagedVar, "\(built.calls)")
        #expect(built.has("mount_setattr(clone of /ro, set ro|nodev, recursive)"))
        #expect(built.has("open_tree(/ro)") && built.has("open_tree(/src, recursive)"))
        // Then the copy into the machine's user namespace, as its root, the workspace found there
        // as the working directory (no lookup by name, which the machine's root might not make).
        let setns = built.index("setns(machine userns)")
        #expect(built.calls[setns - 1] == "fchdir(/m)")
        #expect(Array(built.calls[(setns + 1)...(setns + 3)]) == ["unshare(mnt)", "open(.)", "setresgid(0) setgroups(0) setresuid(0)"])
        #expect(stagedVar < setns)
        // There: the tree bound again, then each staged mount bound onto its place, then pivot_root.
        let tree = built.index("open_tree(/m/root, recursive)")
        let clones = ["open_tree(/m/stage/0)", "open_tree(/m/stage/1)", "open_tree(/m/stage/2, recursive)", "open_tree(/m/stage/3)"].map(built.index)
        let attached = [
            "move_mount(clone of /m/stage/0 → /m/root/tmp)", "move_mount(clone of /m/stage/1 → /m/root/opt)",
            "move_mount(clone of /m/stage/2 → /m/root/srv)", "move_mount(clone of /m/stage/3 → /m/root/var/cache)",
        ].map(built.index)
        #expect(setns < tree && tree < clones[0] && clones == clones.sorted() && clones[3] < attached[0] && attached == attached.sorted(), "\(built.calls)")
        #expect(built.calls.suffix(4) == ["fchdir(/m/root)", "pivot_root(/m/root)", "umount2(., MNT_DETACH)", "chdir(/)"])
        // Their mount points are made before the copy, with the host's privileges, and given away.
        let mkdirVar = built.index("mkdir(/m/root/var, 755)")
        let base = PlanFixture.range.base
        #expect(mkdirVar > 0 && mkdirVar < setns, "\(built.calls)")
        #expect(
            Array(built.calls[(mkdirVar - 2)...(mkdirVar + 1)]) == [
                "setfsuid(\(base)) setfsgid(\(base))", "capset(+dac_override,dac_read_search,fowner)", "mkdir(/m/root/var, 755)", "setfsuid(0) setfsgid(0)",
            ])
    }

    /// A guest mount inside an earlier one's place (/tmp/x in /tmp, also through a symlink) gets its
    /// mount point only once that mount is attached: never in the tree below it.
    @Test func aMountPointInsideAnEarlierGuestMountIsMadeInItAfterTheCopy() throws {
        let built = try build(["--bind=/src:/tmp/x", "--tmpfs=/srv/a/b"])
        let setns = built.index("setns(machine userns)")
        #expect(built.index("mkdir(/m/root/tmp/x, 755)") > setns, "\(built.calls)")
        #expect(!built.calls[..<setns].contains { $0.hasPrefix("mkdir(/m/root/tmp/") })
        // A missing parent of one outside is made too, before the copy.
        #expect(built.index("mkdir(/m/root/srv, 755)") < setns && built.index("mkdir(/m/root/srv/a/b, 755)") < setns)
    }

    @Test func withoutAUserNamespaceTheGuestsMountsGoStraightIntoTheTree() throws {
        let built = try build(["--private-users=no", "--bind=/src:/srv"])
        #expect(!built.has("setns") && !built.has("unshare") && !built.calls.contains { $0.contains("/m/stage/") }, "\(built.calls)")
        let tmp = built.index("move_mount(tmpfs → /m/root/tmp)")
        let srv = built.index("move_mount(clone of /src → /m/root/srv)")
        #expect(tmp > 0 && tmp < srv && srv < built.index("pivot_root"))
        #expect(!built.calls.contains { $0.contains("idmap") })
    }

    @Test func filesInTheTreeAreMadeAsTheMachinesRoot() throws {
        let built = try build([])
        let base = PlanFixture.range.base
        let symlink = built.index("symlink(/m/root/dev/fd → /proc/self/fd)")
        #expect(built.calls[symlink - 1] == "setfsuid(\(base)) setfsgid(\(base))" && built.calls[symlink + 1] == "setfsuid(0) setfsgid(0)")
        #expect(built.has("mknod(/m/root/dev/null, c 1:3)") && built.has("chown(/m/root/dev/null, \(base):\(base))"))
        #expect(built.has("fsmount(tmpfs: mode=0755,size=4m,nr_inodes=64k,uid=\(base),gid=\(base); nosuid)"))
        // The notify socket is bound as the host's root (whatever our working directory), then given away.
        let bind = built.index("bind(/m/root/run/host/notify)")
        #expect(built.calls[bind - 1] == "setfsuid(0) setfsgid(0)" && built.calls[bind + 1] == "chown(/m/root/run/host/notify, \(base):\(base))")
    }

    @Test func masksCoverWhatTheKernelHasAndSkipWhatItLacks() throws {
        let built = try build([])
        #expect(built.has("move_mount(clone of /m/root/run/.swift-nspawn-inaccessible → /m/root/proc/kallsyms)"))
        #expect(
            built.has("openat2(/m/root/proc/kcore, noSymlinks) = ENOENT")
                && !built.has("move_mount(clone of /m/root/run/.swift-nspawn-inaccessible → /m/root/proc/kcore)"))
        #expect(built.has("mount_setattr(clone of /m/root/proc/sys, set ro|nosuid|nodev|noexec)"))
        #expect(built.has("mount_setattr(clone of /m/root/proc/sys/net, set nosuid|nodev|noexec, clear ro)"))
        #expect(built.has("unlink(/m/root/run/.swift-nspawn-inaccessible)"))
    }

    @Test func nestingLeavesProcWithoutSubmounts() throws {
        let built = try build(["--nesting=yes"])
        #expect(!built.calls.contains { $0.contains("→ /m/root/proc/") }, "\(built.calls)")
    }

    @Test func aBindThatCannotBeIDMappedShowsRawOwnersOnlyWhenPreferredAndTheErrorNamesItsFileSystem() throws {
        let refuseIDMap: (String) -> Errno? = { $0.hasPrefix("mount_setattr(clone of /src") && $0.contains("idmap") ? .invalidArgument : nil }
        let preferred = try build(["-U", "--bind=/src:/srv:idmap"], failure: refuseIDMap)
        let failed = preferred.index("mount_setattr(clone of /src, set nodev, idmap, recursive)")
        #expect(preferred.calls[failed + 1] == "mount_setattr(clone of /src, set nodev, recursive)")
        let kernel = RecordingKernel(existing: Self.tree)
        kernel.fileSystems["clone of /src"] = 0x794C_7630
        #expect(
            throws: UserError(
                "ID mapped mounts are apparently not available for /src on overlayfs (mount_setattr(\"/src\"): Invalid argument), sorry. Use --private-users-ownership=off for the tree, noidmap for a bind."
            )
        ) { try build(["--bind=/src:/srv:idmap"], failure: refuseIDMap, kernel: kernel) }
        // Not asked: not tried.
        #expect(!(try build(["--bind=/src:/srv"])).calls.contains { $0.hasPrefix("mount_setattr(clone of /src") && $0.contains("idmap") })
    }

    @Test func rootidmapShowsTheSourcesOwnerAsTheMachinesRoot() throws {
        let kernel = RecordingKernel(existing: Self.tree)
        kernel.owners["/src"] = (1000, 100)
        let built = try build(["--bind=/src:/srv:rootidmap"], kernel: kernel)
        let base = PlanFixture.range.base
        let namespace = built.index("userns(uid_map 1000 \(base) 1, gid_map 100 \(base) 1)")
        #expect(namespace > 0 && built.calls[namespace + 1] == "mount_setattr(clone of /src, set nodev, idmap, recursive)", "\(built.calls)")
    }

    @Test func owneridmapShowsTheSourcesOwnerAsTheDestinationsOwner() throws {
        let kernel = RecordingKernel(existing: Self.tree.union(["/m/root/home", "/m/root/home/alice"]))
        kernel.owners["/src"] = (1000, 1000)
        let alice = PlanFixture.range.base + 1000
        kernel.owners["/m/root/home/alice"] = (alice, alice)
        let built = try build(["--bind=/src:/home/alice:owneridmap"], kernel: kernel)
        #expect(built.has("userns(uid_map 1000 \(alice) 1, gid_map 1000 \(alice) 1)"), "\(built.calls)")
    }

    @Test func aMissingBindSourceIsOneLineBeforeAnythingIsMounted() throws {
        let kernel = RecordingKernel(existing: Self.tree)
        let missing: (String) -> Errno? = { $0 == "open(/nonexistent)" ? .noSuchFileOrDirectory : nil }
        #expect(throws: UserError("Failed to resolve bind source /nonexistent: No such file or directory")) {
            try build(["--bind=/nonexistent:/x"], failure: missing, kernel: kernel)
        }
        #expect(kernel.calls == ["mount(/, MS_SLAVE|MS_REC)", "open(/nonexistent)"])
    }

    /// --inaccessible paths are covered before the copy, so that they are locked: in the tree, or
    /// inside the staged mount whose place holds them (which is then cloned with its submounts).
    @Test func inaccessiblePathsAreCoveredBeforeTheCopyWhereverTheyAre() throws {
        let kernel = RecordingKernel(existing: Self.tree.union(["/m/root/etc/hidden", "/m/stage/1/secret"]))
        kernel.files.formUnion(["/m/root/etc/hidden", "/m/stage/1/secret"])
        let built = try build(["--bind=/src:/srv", "--inaccessible=/srv/secret", "--inaccessible=/etc/hidden"], kernel: kernel)
        let setns = built.index("setns(machine userns)")
        let inSource = built.index("move_mount(clone of /m/root/run/.swift-nspawn-inaccessible → /m/stage/1/secret)")
        let inTree = built.index("move_mount(clone of /m/root/run/.swift-nspawn-inaccessible → /m/root/etc/hidden)")
        #expect(inSource > 0 && inSource < setns && inTree > 0 && inTree < setns, "\(built.calls)")
        #expect(built.has("open_tree(/m/stage/1, recursive)"))
        #expect(built.index("unlink(/m/root/run/.swift-nspawn-inaccessible)") > inTree)
    }

    @Test func aMissingInaccessiblePathIsOneLine() throws {
        #expect(throws: UserError("Failed to make /nope inaccessible: No such file or directory")) { try build(["--inaccessible=/nope"]) }
    }
}
