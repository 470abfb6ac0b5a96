import AgentpenPolicy
import Glibc

/// The cgroup v2 edge: reads what `CgroupPlan.decide` needs, creates the
/// run's child cgroup with its limits, and moves the exec helper into it.
public enum Cgroup {
    public static let mountPoint = "/sys/fs/cgroup"

    /// Facts about this process's cgroup and its ancestors (a few stats and
    /// small reads, no walk of the hierarchy). Nil when there is no cgroupfs.
    public static func facts(uid: uid_t) -> CgroupPlan.Facts? {
        guard access(mountPoint, F_OK) == 0 else { return nil }
        // Only the unified hierarchy's root has cgroup.controllers.
        let unified = access(mountPoint + "/cgroup.controllers", F_OK) == 0
        let own = (Host.readFile("/proc/self/cgroup", limit: 65536) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
        var ancestors: [CgroupPlan.Facts.Level] = []
        if unified, let own, own.hasPrefix("/") {
            var p = Paths.normalize(own)
            while p != "/" {
                p = Paths.parent(p)
                let dir = Paths.normalize(mountPoint + "/" + p)
                let controls = (Host.readFile(dir + "/cgroup.subtree_control", limit: 4096) ?? "")
                    .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
                ancestors.append(.init(path: p, delegated: owned(dir, uid) && owned(dir + "/cgroup.procs", uid),
                                       subtreeControl: controls))
                if ancestors.count > 64 { break }
            }
        }
        return CgroupPlan.Facts(mountPoint: mountPoint, unified: unified, ownPath: own, ancestors: ancestors, pid: getpid())
    }

    private static func owned(_ path: String, _ uid: uid_t) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_uid == uid && access(path, W_OK) == 0
    }

    /// Creates `directory` and writes each limit; on failure removes it again.
    public static func create(_ directory: String, writes: [CgroupPlan.Write]) throws(SystemError) {
        if mkdir(directory, 0o755) != 0 {
            // Left by an agentpen that was killed and whose PID came round again:
            // its sandbox died with it, so the directory is empty or emptied here.
            guard errno == EEXIST else { throw SystemError("mkdir", directory, errno: errno) }
            remove(directory)
            if mkdir(directory, 0o755) != 0 { throw SystemError("mkdir", directory, errno: errno) }
        }
        for w in writes {
            let path = directory + "/" + w.file
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            var e: Int32 = 0
            if fd < 0 { e = errno } else {
                let file = Descriptor(fd)
                let n = w.value.withCString { write(file.raw, $0, strlen($0)) }
                if n < 0 { e = errno }
                file.close()
            }
            if e != 0 {
                rmdir(directory)
                throw SystemError("write", "\(path) (\(w.value))", errno: e)
            }
        }
    }

    /// cgroup.procs of `directory`, for the exec helper to write itself into.
    /// The kernel checks a migration against the opener's credentials and
    /// cgroup namespace, so the helper can use it from inside the sandbox.
    public static func openProcs(_ directory: String) throws(SystemError) -> Int32 {
        let fd = open(directory + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open", directory + "/cgroup.procs", errno: errno) }
        return fd
    }

    /// Moves the calling process into the cgroup whose cgroup.procs is `fd`.
    /// Returns 0 or an errno.
    public static func enter(_ fd: Int32) -> Int32 {
        let n = write(fd, "0", 1)
        return n == 1 ? 0 : errno
    }

    /// Empties and removes the run's cgroup: whatever is still inside (the
    /// sandbox's processes are dying with its pid namespace) is killed, and
    /// the directory goes once cgroup.events says nothing is left.
    public static func remove(_ directory: String) {
        if rmdir(directory) == 0 || errno == ENOENT { return }
        let kill = open(directory + "/cgroup.kill", O_WRONLY | O_CLOEXEC)
        if kill >= 0 { let file = Descriptor(kill); _ = write(file.raw, "1", 1); file.close() }
        let opened = open(directory + "/cgroup.events", O_RDONLY | O_CLOEXEC)
        // Without cgroup.events there is nothing to wait on: one more try.
        guard opened >= 0 else { _ = rmdir(directory); return }
        let events = Descriptor(opened)
        var buf = [UInt8](repeating: 0, count: 256)
        for _ in 0..<100 {
            if rmdir(directory) == 0 || errno != EBUSY { return }
            // Reading arms the notification; the file signals POLLPRI when
            // "populated" changes.
            let n = pread(events.raw, &buf, buf.count, 0)
            if n > 0, String(decoding: buf[..<n], as: UTF8.self).contains("populated 0") { continue }
            var pfd = pollfd(fd: events.raw, events: Int16(POLLPRI), revents: 0)
            _ = poll(&pfd, 1, 20)
        }
    }
}
