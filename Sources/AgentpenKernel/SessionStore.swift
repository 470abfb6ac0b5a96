import AgentpenPolicy
import CShim
import Glibc

/// Session directories on disk (`XDGPaths.sessions`): created owner-only,
/// every part agentpen makes opened without following symlinks, pruned by
/// `SessionPolicy.prune`. Sockets in them are reached as /proc/self/fd/N/NAME,
/// so neither a symlink swapped into the path nor its length matters.
public enum SessionStore {
    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        init(_ m: String) { message = m }
    }

    /// `path` with the part that exists replaced by its real path (nothing is created).
    public static func realPathOfPrefix(_ path: String) -> String {
        var existing = Paths.normalize(path)
        var rest: [String] = []
        while existing != "/" {
            if let real = Host.realPath(existing) { return rest.reversed().reduce(real) { Paths.join($0, $1) } }
            rest.append(Paths.basename(existing))
            existing = Paths.parent(existing)
        }
        return Paths.normalize(path)
    }

    /// Opens the sessions directory `STATE/agentpen/sessions`, creating what is
    /// missing (0700). The state home is the user's own (its symlinks are theirs);
    /// `agentpen` and `sessions` are opened without following symlinks, must be
    /// owned by this user, and `sessions` is made owner-only.
    @frozen public struct Base: ~Copyable {
        public let fd: Descriptor
        public let path: String
    }

    public static func openBase(stateHome: String, create: Bool) throws(Failure) -> Base {
        if create, Host.realPath(stateHome) == nil {
            var built = ""
            for part in Paths.normalize(stateHome).split(separator: "/") {
                built += "/" + part
                if mkdir(built, 0o700) != 0 && errno != EEXIST { throw Failure("cannot create \(built): \(errorText(errno))") }
            }
        }
        guard let real = Host.realPath(stateHome) else { throw Failure("\(stateHome) does not exist") }
        let opened = Glibc.open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard opened >= 0 else { throw Failure("cannot open \(real): \(errorText(errno))") }
        var fd = Descriptor(opened)
        var path = real
        for name in ["agentpen", "sessions"] {
            if create && mkdirat(fd.raw, name, 0o700) != 0 && errno != EEXIST {
                throw Failure("cannot create \(Paths.join(path, name)): \(errorText(errno))")
            }
            let raw = openat(fd.raw, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let e = errno
            path = Paths.join(path, name)
            guard raw >= 0 else {
                throw Failure(e == ENOTDIR || e == ELOOP ? "\(path) is not a directory (a symbolic link?)" : "cannot open \(path): \(errorText(e))")
            }
            let next = Descriptor(raw)
            var st = stat()
            guard fstat(next.raw, &st) == 0, st.st_uid == getuid() else {
                throw Failure("\(path) belongs to another user")
            }
            if name == "sessions" && (st.st_mode & 0o077) != 0 && fchmod(next.raw, 0o700) != 0 {
                throw Failure("cannot make \(path) owner-only: \(errorText(errno))")
            }
            fd = next     // closes the parent
        }
        return Base(fd: fd, path: path)
    }

    /// A new session directory `ID` in the sessions directory: 0700, its
    /// events file (0600, appended), and its `view` directory (what the sandbox
    /// sees, read-only). Fails if the name exists.
    @frozen public struct Made: ~Copyable, Sendable {
        public let dir: Descriptor
        public let events: Descriptor
        public let view: Descriptor
    }

    public static func create(base: Int32, id: String) throws(Failure) -> Made {
        guard SessionPolicy.isValidID(id) else { throw Failure("bad session ID \(id)") }
        guard mkdirat(base, id, 0o700) == 0 else { throw Failure("cannot create session \(id): \(errorText(errno))") }
        let rawDir = openat(base, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rawDir >= 0 else { throw Failure("cannot open session \(id): \(errorText(errno))") }
        let dir = Descriptor(rawDir)
        _ = fchmod(dir.raw, 0o700)
        let rawEvents = openat(dir.raw, SessionPolicy.eventsName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_APPEND | O_CLOEXEC, 0o600)
        guard rawEvents >= 0 else { throw Failure("cannot create the session's events: \(errorText(errno))") }
        let events = Descriptor(rawEvents)
        guard mkdirat(dir.raw, SessionPolicy.viewDirName, 0o700) == 0 else {
            throw Failure("cannot create the session's view: \(errorText(errno))")
        }
        let rawView = openat(dir.raw, SessionPolicy.viewDirName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rawView >= 0 else { throw Failure("cannot open the session's view: \(errorText(errno))") }
        return Made(dir: dir, events: events, view: Descriptor(rawView))
    }

    /// Opens an existing session directory (for watch and suggest).
    public static func open(base: Int32, id: String) -> Descriptor? {
        guard SessionPolicy.isValidID(id) else { return nil }
        let fd = openat(base, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        return fd >= 0 ? Descriptor(fd) : nil
    }

    /// Opens a file of a session for reading, not following a symlink.
    public static func openFile(dir: Int32, name: String) -> Descriptor? {
        let raw = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard raw >= 0 else { return nil }
        let fd = Descriptor(raw)
        var st = stat()
        guard fstat(fd.raw, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return fd
    }

    /// Replaces `name` in `dir` whole (a temporary beside it, then rename): a
    /// reader sees the old text or the new one, never half of either.
    @discardableResult
    public static func replaceFile(dir: Int32, name: String, text: String) -> Bool {
        let tmp = "." + name + ".new"
        _ = unlinkat(dir, tmp, 0)
        let raw = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard raw >= 0 else { return false }
        let fd = Descriptor(raw)
        var bytes = Array(text.utf8)
        let ok = bytes.withUnsafeMutableBytes { buf -> Bool in
            var done = 0
            while done < buf.count {
                let n = write(fd.raw, buf.baseAddress! + done, buf.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        fd.close()
        guard ok, renameat(dir, tmp, dir, name) == 0 else { _ = unlinkat(dir, tmp, 0); return false }
        return true
    }

    // MARK: The control socket

    static func procPath(_ dir: Int32, _ name: String) -> String { "/proc/self/fd/\(dir)/\(name)" }

    /// Listens on `dir/control` (0600), nonblocking.
    public static func listen(dir: Int32) throws(Failure) -> Descriptor {
        let raw = ap_unix_socket(1)
        guard raw >= 0 else { throw Failure("cannot make the control socket: \(errorText(-raw))") }
        let fd = Descriptor(raw)
        var rc = ap_bind_unix(fd.raw, procPath(dir, SessionPolicy.controlName))
        if rc == 0 { rc = fchmodat(dir, SessionPolicy.controlName, 0o600, 0) == 0 ? 0 : -errno }
        if rc == 0 { rc = ap_listen(fd.raw, 16) }
        guard rc == 0 else {
            throw Failure("cannot listen on the control socket: \(errorText(-rc))")
        }
        return fd
    }

    /// A connection to a session's control socket (blocking), or nil when no
    /// run answers there (ended, or agentpen was killed).
    public static func connect(dir: Int32) -> Descriptor? {
        let raw = ap_unix_socket(0)
        guard raw >= 0 else { return nil }
        let fd = Descriptor(raw)
        guard ap_connect_unix(fd.raw, procPath(dir, SessionPolicy.controlName)) == 0 else { return nil }
        return fd
    }

    /// One pending connection, with the peer's uid; nil when none is pending.
    @frozen public struct Accepted: ~Copyable {
        public let fd: Descriptor
        public let uid: UInt32
    }

    public static func accept(_ listening: Int32) -> Accepted? {
        let raw = ap_accept_unix(listening)
        guard raw >= 0 else { return nil }
        var uid: UInt32 = .max
        _ = ap_peer_uid(raw, &uid)
        return Accepted(fd: Descriptor(raw), uid: uid)
    }

    // MARK: Listing and pruning

    /// The names in a directory (not `.` and `..`).
    public static func list(_ dir: Int32) -> [String] {
        let copy = dup(dir)
        guard copy >= 0 else { return [] }
        let owned = Descriptor(copy)
        guard let d = fdopendir(owned.raw) else { return [] }
        _ = owned.take()    // the DIR stream owns it now: closedir closes it
        defer { closedir(d) }
        rewinddir(d)
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes what `SessionPolicy.prune` selects, except sessions whose run still
    /// answers on its control socket. A symlink or file is unlinked as a name;
    /// directories are descended without following symlinks.
    public static func prune(base: Int32, now: Int64) {
        for name in SessionPolicy.prune(list(base), now: now) {
            if let dir = Self.open(base: base, id: name) {
                if connect(dir: dir.raw) != nil { continue }    // closed at once: only the answer counts
            }
            removeTree(parent: base, name: name, depth: 3)
        }
    }

    static func removeTree(parent: Int32, name: String, depth: Int) {
        let raw = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard raw >= 0 else { _ = unlinkat(parent, name, 0); return }
        let fd = Descriptor(raw)
        for child in list(fd.raw) {
            if depth > 0 { removeTree(parent: fd.raw, name: child, depth: depth - 1) } else { _ = unlinkat(fd.raw, child, 0) }
        }
        fd.close()
        _ = unlinkat(parent, name, AT_REMOVEDIR)
    }

    static func errorText(_ e: Int32) -> String { String(cString: strerror(e)) }
}
