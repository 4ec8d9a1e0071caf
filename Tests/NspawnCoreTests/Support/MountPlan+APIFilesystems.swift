@testable import NspawnCore

extension MountPlan {
    /// The API file systems the plan needs from the machine's PID 1, in the plan's order.
    var apiFilesystems: [APIFilesystem] {
        var filesystems: [APIFilesystem] = []
        forEachAPIFilesystem { filesystem, _ in filesystems.append(filesystem) }
        return filesystems
    }
}
