import AgentpenPolicy
import CShim
import Glibc

/// Active agentpen runs per project, outside every sandbox (owner-only, under
/// $XDG_RUNTIME_DIR/agentpen or $XDG_STATE_HOME/agentpen), so that overlapping
/// runs on one project do not report each other's findings:
///   runs/DEV-INO/active-RUNID   one per live run: its start time, flock'ed by it
///   runs/DEV-INO/written-RUNID  the run's ledger (RunLedger): `dev ino` of each
///                               file its sandbox wrote, where the kernel lets it watch
///   runs/DEV-INO/handled        fingerprints of findings a run reported as proved
///                               its own (state after it acted), and `run` lines:
///                               the start and end of each run that left
///   runs/DEV-INO/               flock'ed while a run audits, so audits never interleave
public final class RunRegistry {
    public typealias Timestamp = PersistenceAudit.Timestamp
    /// The project's registry directory, open until `leave`.
    private var dir: Descriptor?
    /// This run's entry, flock'ed while it is open (until `leave`).
    private var own: Descriptor?
    let ownName: String
    let runID: String
    /// The directory's number for the *at calls (-1 after `leave`: they then fail).
    var dirFD: Int32 { dir?.raw ?? -1 }

    /// Creates the project's directory and this run's entry. Nil if it cannot
    /// (the audit then runs without knowledge of other runs).
    /// `refuse` is asked about the directory's real path (symlinks resolved)
    /// before anything is written there: the caller refuses places the sandbox
    /// can write (an XDG variable set by a project's .envrc may point there).
    public init?(base: String, project: String, runID: String, start: Timestamp, refuse: (String) -> Bool) {
        var st = stat()
        guard stat(project, &st) == 0 else { return nil }
        let dir = base + "/runs/" + String(UInt64(st.st_dev), radix: 16) + "-" + String(UInt64(st.st_ino), radix: 16)
        // The deepest part that exists, resolved, must already be a safe place:
        // nothing is created under a symlink that leads into the sandbox's reach.
        var existing = dir
        while Host.realPath(existing) == nil && existing != "/" { existing = Paths.parent(existing) }
        guard let realExisting = Host.realPath(existing),
              !refuse(Paths.join(realExisting, String(dir.dropFirst(existing.count)).trimmingPrefixSlash)) else { return nil }
        var built = ""
        for part in dir.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o700) != 0 && errno != EEXIST { return nil }
        }
        guard let real = Host.realPath(dir), !refuse(real) else { return nil }
        let opened = open(real, O_RDONLY | AP_O_DIRECTORY | AP_O_NOFOLLOW | O_CLOEXEC)
        guard opened >= 0 else { return nil }
        let directory = Descriptor(opened)
        var dst = stat()
        guard fstat(directory.raw, &dst) == 0, dst.st_uid == getuid(), (dst.st_mode & 0o077) == 0 else { return nil }
        // Made under a temporary name and locked before it gets its real name, so
        // no other run can take it for the leftover of a dead one.
        let tmp = "tmp-" + runID
        let created = openat(directory.raw, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | AP_O_NOFOLLOW, 0o600)
        guard created >= 0 else { return nil }
        let own = Descriptor(created)
        let line = "\(start.sec) \(start.nsec)\n"
        guard flock(own.raw, LOCK_EX) == 0,
              line.withCString({ write(own.raw, $0, strlen($0)) }) == line.utf8.count,
              renameat(directory.raw, tmp, directory.raw, "active-" + runID) == 0 else {
            unlinkat(directory.raw, tmp, 0); return nil
        }
        self.dir = consume directory; self.own = consume own; ownName = "active-" + runID; self.runID = runID
    }

    /// The registry base for this user: $XDG_RUNTIME_DIR/agentpen when it is a
    /// private directory of ours, else $XDG_STATE_HOME/agentpen, else
    /// ~/.local/state/agentpen.
    public static func base(env: [String: String], home: String) -> String {
        if let r = env["XDG_RUNTIME_DIR"], r.hasPrefix("/") {
            var st = stat()
            if lstat(r, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid(), (st.st_mode & 0o077) == 0 {
                return Paths.normalize(r) + "/agentpen"
            }
        }
        return XDGPaths.agentpenState(env: env, home: home)
    }

    /// Holds the project's audit lock (a flock on the project's registry
    /// directory itself, so no lock file is left behind) while `body` runs.
    /// Its own descriptor, so that `leave()` closing `dirFD` does not drop it.
    public func withAuditLock<T>(_ body: () -> T) -> T {
        let fd = openat(dirFD, ".", O_RDONLY | AP_O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return body() }
        let lock = Descriptor(fd)
        while flock(lock.raw, LOCK_EX) != 0 && errno == EINTR {}
        let result = body()
        lock.close()
        return result
    }

    /// The other runs still alive: their IDs and start times; entries (and
    /// ledgers) of dead runs are removed.
    public func othersActive() -> [(runID: String, start: Timestamp)] {
        var out: [(String, Timestamp)] = []
        for name in names() where name.hasPrefix("active-") && name != ownName {
            let fd = openat(dirFD, name, O_RDONLY | O_CLOEXEC | AP_O_NOFOLLOW)
            guard fd >= 0 else { continue }
            let entry = Descriptor(fd)
            let id = String(name.dropFirst("active-".count))
            if flock(entry.raw, LOCK_SH | LOCK_NB) == 0 {
                unlinkat(dirFD, name, 0)      // its run ended without leaving
                unlinkat(dirFD, "written-" + id, 0)
                continue
            }
            var buf = [UInt8](repeating: 0, count: 64)
            let n = read(entry.raw, &buf, 64)
            let f = String(decoding: buf[..<max(0, n)], as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
            if f.count >= 2, let s = Int64(f[0]), let ns = Int64(f[1]) { out.append((id, Timestamp(sec: s, nsec: ns))) }
        }
        return out
    }

    /// This run's ledger file, created empty (owner-only); nil if it cannot be.
    public func createLedger() -> Descriptor? {
        let fd = openat(dirFD, "written-" + runID, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | AP_O_NOFOLLOW, 0o600)
        return fd >= 0 ? Descriptor(fd) : nil
    }

    /// The identities the ledgers of the runs `ids` hold (runs without one add nothing).
    public func written(by ids: [String]) -> Set<PersistenceWalk.FileID> {
        var out = Set<PersistenceWalk.FileID>()
        for id in ids {
            for line in readLines("written-" + id, limit: 64 << 20) {
                let f = line.split(separator: " ")
                if f.count == 2, let d = UInt64(f[0]), let i = UInt64(f[1]) { out.insert(.init(dev: d, ino: i)) }
            }
        }
        return out
    }

    /// What runs that left reported as proved their own, and when each ran.
    public func handled() -> (proved: Set<PersistenceAudit.Fingerprint>, ended: [PersistenceAudit.RunWindow]) {
        var proved = Set<PersistenceAudit.Fingerprint>(), ended: [PersistenceAudit.RunWindow] = []
        for line in readLines("handled", limit: 16 << 20) {
            if line.hasPrefix("run ") {
                let f = line.split(separator: " ").dropFirst().compactMap { Int64($0) }
                if f.count == 4 {
                    ended.append(.init(start: Timestamp(sec: f[0], nsec: f[1]), end: Timestamp(sec: f[2], nsec: f[3])))
                }
            } else if let fp = PersistenceAudit.Fingerprint(line: line) {
                proved.insert(fp)
            }
        }
        return (proved, ended)
    }

    /// Adds fingerprints this run proved its own, and its window (start to now).
    public func record(_ fingerprints: [PersistenceAudit.Fingerprint], start: Timestamp, end: Timestamp) {
        let fd = openat(dirFD, "handled", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | AP_O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        let file = Descriptor(fd)
        let text = fingerprints.map { $0.line + "\n" }.joined() + "run \(start.sec) \(start.nsec) \(end.sec) \(end.nsec)\n"
        _ = text.withCString { write(file.raw, $0, strlen($0)) }
    }

    /// Removes this run's entry and ledger; the last run to leave clears the
    /// handled list (a later run starts after everything in it, so never needs it).
    public func leave() {
        unlinkat(dirFD, "written-" + runID, 0)
        unlinkat(dirFD, ownName, 0)
        own = nil       // closes it, dropping its lock
        if othersActive().isEmpty { unlinkat(dirFD, "handled", 0) }
        dir = nil
    }

    /// The lines of a regular file of the registry, up to `limit` bytes.
    func readLines(_ name: String, limit: Int) -> [Substring] {
        let fd = openat(dirFD, name, O_RDONLY | O_CLOEXEC | AP_O_NOFOLLOW | AP_O_NONBLOCK)
        guard fd >= 0 else { return [] }
        let file = Descriptor(fd)
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while data.count < limit {
            let n = read(file.raw, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += buf[..<n]
        }
        // A line cut by the bound (or by a writer mid-append) is dropped, not misread.
        if let last = data.lastIndex(of: 0x0A) { data.removeSubrange((last + 1)...) } else { data = [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
    }

    func names() -> [String] {
        let fd = dup(dirFD)
        guard fd >= 0 else { return [] }
        let copy = Descriptor(fd)
        guard let d = fdopendir(copy.raw) else { return [] }
        _ = copy.take()    // the DIR stream owns it now: closedir closes it
        defer { closedir(d) }
        rewinddir(d)
        var out: [String] = []
        while let e = readdir(d) {
            let n = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if n != "." && n != ".." { out.append(n) }
        }
        return out
    }
}

private extension String {
    var trimmingPrefixSlash: String { String(drop(while: { $0 == "/" })) }
}
