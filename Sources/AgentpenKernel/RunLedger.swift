import AgentpenPolicy
import CShim
import Glibc

/// Which files a run's sandbox wrote, for the persistence audit's attribution
/// between runs on one project: a fanotify group marking the sandbox's own
/// project mount(s) (each sandbox binds the project at a mount of its own, in
/// its own mount namespace, so a mount mark sees that run's writes only) for
/// FAN_CLOSE_WRITE; each event's descriptor is fstat'ed for the file's device
/// and inode, which go (once each) into the run's ledger file in the registry,
/// outside every sandbox. The identity names the file after any later rename.
///
/// What the kernel allows (Linux 6.18): a group whose events carry
/// descriptors needs CAP_SYS_ADMIN in the initial user namespace
/// (fanotify_init fails with EPERM otherwise), and a mount mark needs
/// CAP_SYS_ADMIN in the user namespace of the marked filesystem's superblock:
/// for a project on a disk filesystem mounted by the host that is the initial
/// one, so a process holding CAP_SYS_ADMIN only in a user namespace of its
/// own gets EPERM from fanotify_mark(FAN_MARK_MOUNT) (`probe`). So agentpen
/// run by root keeps a ledger; run by anyone else it keeps none, and the
/// audit falls back to time alone (and reports more).
///
/// Mount marks carry no create, rename, link, attribute or delete events (the
/// kernel refuses those masks on mount marks with EINVAL): a file made by
/// rename, link, symlink or mkdir, or only chmod'ed, is in no ledger.
public final class RunLedger {
    public typealias FileID = PersistenceWalk.FileID
    /// The fanotify group and the registry's ledger file, open until `close()`.
    private var groupFD: Descriptor?
    private var fileFD: Descriptor?
    /// The group's number, for poll and marks (-1 after `close()`).
    public var group: Int32 { groupFD?.raw ?? -1 }
    var file: Int32 { fileFD?.raw ?? -1 }
    /// What the ledger holds (this run's writes); complete once `close()` returned.
    public private(set) var wrote = Set<FileID>()
    /// Events were lost (the queue overflowed, or the bound was reached):
    /// the ledger holds less than the run wrote. Harmless for the audit (it
    /// then reports more), said in --log.
    public private(set) var incomplete = false
    static let maxEntries = 1 << 18
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// A group for this run, or -errno when the kernel refuses one.
    public static func openGroup() -> Int32 { ap_fanotify_init_fd() }

    /// `group` from `openGroup`, `file` the registry's ledger file; both owned from here on.
    public init(group: consuming Descriptor, file: consuming Descriptor) { groupFD = consume group; fileFD = consume file }

    /// Marks the mount `dirFD` is on; 0 or -errno.
    public func mark(_ dirFD: Int32) -> Int32 { ap_fanotify_mark_mount(group, dirFD) }

    /// Reads every event queued now and records the new identities.
    public func drain() {
        var lines = ""
        while true {
            let n = buffer.withUnsafeMutableBytes { read(group, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            buffer.withUnsafeBytes { raw in
                var off = 0
                while off + Int(AP_FAN_METADATA_LEN) <= n {
                    let len = Int(raw.loadUnaligned(fromByteOffset: off, as: UInt32.self))
                    let version = raw.load(fromByteOffset: off + 4, as: UInt8.self)
                    guard len >= Int(AP_FAN_METADATA_LEN), off + len <= n, Int32(version) == AP_FAN_METADATA_VERSION else {
                        incomplete = true
                        return
                    }
                    let mask = raw.loadUnaligned(fromByteOffset: off + 8, as: UInt64.self)
                    let fd = raw.loadUnaligned(fromByteOffset: off + 16, as: Int32.self)
                    off += len
                    if mask & AP_FAN_Q_OVERFLOW != 0 { incomplete = true }
                    guard fd >= 0 else { continue }
                    let event = Descriptor(fd)    // each event brings a descriptor of the file, ours to close
                    var st = stat()
                    let ok = fstat(event.raw, &st) == 0
                    event.close()
                    guard ok else { continue }
                    if wrote.count >= Self.maxEntries { incomplete = true; continue }
                    let id = FileID(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
                    if wrote.insert(id).inserted { lines += "\(id.dev) \(id.ino)\n" }
                }
            }
        }
        if !lines.isEmpty { _ = lines.withCString { write(file, $0, strlen($0)) } }
    }

    /// Blocks until events wait (true) or `stop` is readable (false).
    public func wait(stop: Int32) -> Bool {
        var fds = [pollfd(fd: group, events: Int16(POLLIN), revents: 0), pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
        while true {
            let rc = poll(&fds, 2, -1)
            if rc < 0 && errno == EINTR { continue }
            if rc < 0 || fds[1].revents != 0 { return false }
            if fds[0].revents != 0 { return true }
        }
    }

    public func close() {
        groupFD = nil
        fileFD = nil
    }

    /// What the kernel says to the calls a run would make, and to those an
    /// unprivileged user could make instead, on `dir` (the project): a group
    /// with descriptors here; where refused, a file-handle group and a mount
    /// mark on a bind mount of `dir` from a user and mount namespace of its
    /// own (this process must be single-threaded to create them).
    public static func probe(_ dir: String) -> String {
        func name(_ rc: Int32) -> String {
            rc >= 0 ? "ok" : rc == -EPERM ? "EPERM" : rc == -EINVAL ? "EINVAL" : String(cString: strerror(-rc))
        }
        var out = ""
        let rawGroup = ap_fanotify_init_fd()
        out += "fd-group=\(name(rawGroup))\n"
        if rawGroup >= 0 {
            let group = Descriptor(rawGroup)
            var rc = -EBADF
            if let d = Descriptor.open(dir, O_RDONLY | AP_O_DIRECTORY | O_CLOEXEC) { rc = ap_fanotify_mark_mount(group.raw, d.raw) }
            else { rc = -errno }
            out += "mount-mark=\(name(rc))\n"
            return out
        }
        let uid = getuid(), gid = getgid()
        var rc = ap_unshare(AP_CLONE_NEWUSER | AP_CLONE_NEWNS)
        if rc == 0 {
            for (file, text) in [("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", "0 \(uid) 1"),
                                 ("/proc/self/gid_map", "0 \(gid) 1")] {
                let fd = open(file, O_WRONLY | O_CLOEXEC)
                if fd >= 0 {
                    let f = Descriptor(fd)
                    _ = text.withCString { write(f.raw, $0, strlen($0)) }
                }
            }
            rc = ap_mount_private_root()
            if rc == 0 { rc = ap_mount_bind(dir, dir) }
        }
        out += "userns-bind=\(name(rc))\n"
        guard rc == 0 else { return out }
        let rawFid = ap_fanotify_init_fid()
        out += "userns-fid-group=\(name(rawFid))\n"
        guard rawFid >= 0 else { return out }
        let fid = Descriptor(rawFid)
        var mark = -EBADF
        if let d = Descriptor.open(dir, O_RDONLY | AP_O_DIRECTORY | O_CLOEXEC) { mark = ap_fanotify_mark_mount(fid.raw, d.raw) }
        else { mark = -errno }
        out += "mount-mark=\(name(mark))\n"
        return out
    }
}
