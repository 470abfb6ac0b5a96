import AgentpenPolicy
import CShim
import Glibc

/// The persistence audit's walk of the project after a run: getdents64 and
/// openat relative to directory descriptors opened O_NOFOLLOW, stat only for
/// directories and candidate names, no descent into git object stores, bounded
/// in depth and entries. It asks PersistenceAudit what each candidate is and
/// carries out the decision (rename within the same directory descriptor, or
/// unlink); it decides nothing itself.
public enum PersistenceWalk {
    public typealias Timestamp = PersistenceAudit.Timestamp
    public typealias Fingerprint = PersistenceAudit.Fingerprint

    public struct FileID: Hashable, Sendable {
        public var dev: UInt64
        public var ino: UInt64
        public init(dev: UInt64, ino: UInt64) { self.dev = dev; self.ino = ino }
    }

    /// What is recorded before the run: cheap (a clock read and a few stats).
    public struct StartState: Sendable {
        public var start: Timestamp
        /// The project's `.git` directory as it was, if it was one.
        public var projectGit: FileID?
        /// Git dirs the plan guarded, as they were.
        public var guarded: Set<FileID>
        /// Directories inside the project that `core.hooksPath` names in the
        /// project's config or the user's: hooks there run like .git/hooks.
        public var hooksDirs: [String] = []
    }

    public struct Limits: Sendable {
        public var maxEntries = 1_000_000
        public var maxDepth = 100
        /// Findings kept for the report (every one is still acted on).
        public var maxFindings = 10_000
        public init() {}
    }

    public struct Input {
        public var project: String
        public var state: StartState
        public var runID: String
        /// Git dirs outside the project the plan bound (a worktree's own and its parent's).
        public var outsideGitDirs: [String]
        /// Files this run's sandbox wrote (its RunLedger), by identity.
        public var wrote: Set<FileID> = []
        /// Files the sandboxes of other runs still active wrote (their ledgers).
        public var othersWrote: Set<FileID> = []
        /// Fingerprints runs that ended meanwhile reported as proved their own.
        public var othersProved: Set<Fingerprint> = []
        /// Other runs on this project whose time overlapped this one's.
        public var others: [PersistenceAudit.RunWindow] = []
        public var limits = Limits()
        public init(project: String, state: StartState, runID: String, outsideGitDirs: [String] = []) {
            self.project = project; self.state = state; self.runID = runID; self.outsideGitDirs = outsideGitDirs
        }
    }

    public struct Result {
        public var findings: [PersistenceAudit.Finding] = []
        /// Fingerprints of what this run reported as proved its own (its
        /// ledger), in the state it left them, for other runs to skip.
        public var handled: [Fingerprint] = []
        public var entries = 0
    }

    public static func now() -> Timestamp {
        var s: Int64 = 0, n: Int64 = 0
        _ = ap_realtime_coarse(&s, &n)
        return Timestamp(sec: s, nsec: n)
    }

    static func fileID(_ path: String) -> FileID? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return FileID(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
    }

    /// Before bubblewrap starts: the coarse clock file timestamps come from, and
    /// the identity of the git dirs whose own entries the run may legitimately change.
    public static func begin(project: String, guardedGitDirs: [String], home: String? = nil,
                             xdgConfigHome: String? = nil) -> StartState {
        let start = now()
        var state = StartState(start: start, projectGit: fileID(project + "/.git"),
                               guarded: Set(guardedGitDirs.compactMap(fileID)))
        if let home {
            // git's order: system, global (XDG, then ~/.gitconfig), the repository's.
            let files = ["/etc/gitconfig", (xdgConfigHome ?? home + "/.config") + "/git/config", home + "/.gitconfig",
                         project + "/.git/config"]
            state.hooksDirs = PersistenceAudit.hooksDirsInProject(
                configs: files.compactMap { readRegularFile($0, limit: 1 << 20) }, project: project, home: home)
        }
        return state
    }

    /// Up to `limit` bytes of a regular file, opened O_NOFOLLOW|O_NONBLOCK (a
    /// FIFO planted in its place cannot block us); nil if it is not one.
    static func readRegularFile(_ path: String, dirFD: Int32 = AT_FDCWD, limit: Int) -> [UInt8]? {
        let opened = openat(dirFD, path, O_RDONLY | AP_O_NOFOLLOW | O_CLOEXEC | AP_O_NONBLOCK)
        guard opened >= 0 else { return nil }
        let file = Descriptor(opened)
        var st = stat()
        guard fstat(file.raw, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        // Sized from the file (plus one byte to see it grew), never past `limit`.
        var out = [UInt8](repeating: 0, count: min(limit, max(0, Int(st.st_size)) + 1))
        var got = 0
        while got < limit {
            if got == out.count { out += [UInt8](repeating: 0, count: min(limit - got, max(4096, got))) }
            let n = out.withUnsafeMutableBytes { read(file.raw, $0.baseAddress! + got, $0.count - got) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            got += n
        }
        return Array(out[..<got])
    }

    public static func run(_ input: Input) -> Result {
        var w = Walker(input: input)
        w.walk()
        return w.result
    }
}

private let dtUnknown: UInt8 = 0, dtDir: UInt8 = 4, dtReg: UInt8 = 8, dtLnk: UInt8 = 10
private let dirFlags = O_RDONLY | AP_O_DIRECTORY | AP_O_NOFOLLOW | O_CLOEXEC | AP_O_NONBLOCK

private struct Walker: ~Copyable {
    typealias Timestamp = PersistenceAudit.Timestamp
    let input: PersistenceWalk.Input
    var result = PersistenceWalk.Result()
    var stoppedAt: String?
    var unlisted = 0
    /// Git dirs reached through a `.git` link the run created: audited after the walk.
    /// Their descriptors are owned by `linkedGitFDs`, in the same order.
    var linkedGitDirs: [(fd: Int32, path: String, place: PersistenceAudit.GitDirPlace)] = []
    var linkedGitFDs = DescriptorList()
    var auditedForced = Set<PersistenceWalk.FileID>()
    var movedSeen = Set<String>()
    var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)

    init(input: PersistenceWalk.Input) { self.input = input }

    /// `raw` is the name's exact bytes (NUL-terminated) for openat: a name that
    /// is not UTF-8 must still be entered, not lost in a lossy String.
    struct Entry { var name: String; var raw: [CChar]; var type: UInt8 }
    struct Frame {
        var fd: Int32
        var path: String
        var name: String
        var depth: Int
        var inGitTree: Bool
        var children: [Entry]
        var next = 0
    }

    var start: Timestamp { input.state.start }

    static func stamp(_ st: stat) -> Timestamp { Timestamp(sec: Int64(st.st_ctim.tv_sec), nsec: Int64(st.st_ctim.tv_nsec)) }
    static func fingerprint(_ st: stat) -> PersistenceAudit.Fingerprint {
        .init(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), ctime: stamp(st))
    }

    func lstatAt(_ fd: Int32, _ name: String) -> stat? {
        var st = stat()
        return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }
    func lstatAt(_ fd: Int32, _ raw: [CChar]) -> stat? {
        var st = stat()
        return fstatat(fd, raw, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    /// Names the walk needs to see as strings besides directories (everything
    /// else is counted and skipped on its raw bytes: most of a tree is ordinary files).
    static let wanted: [[UInt8]] = [".git", ".envrc", "HEAD", "objects", "refs", "commondir", "mise.toml",
                                    ".mise.toml", "mise.local.toml", ".mise.local.toml", ".rtx.toml",
                                    "tasks.json", "settings.json"].map { Array($0.utf8) }
    static let marker = Array(PersistenceAudit.quarantineMarker.utf8)
    static let wantedByLength: [[[UInt8]]] = {
        var t = [[[UInt8]]](repeating: [], count: 32)
        for w in wanted { t[w.count].append(w) }
        return t
    }()

    /// The directories and candidate names of an open directory (getdents64),
    /// bounded by the entry limit. With `all`, every name (activation script dirs).
    mutating func list(_ fd: Int32, all: Bool = false) -> [Entry]? {
        var out: [Entry] = []
        while true {
            let n = ap_getdents64(fd, buffer.baseAddress, buffer.count)
            if n < 0 { return out.isEmpty ? nil : out }
            if n == 0 { return out }
            var off = 0
            while off < n {
                let base = buffer.baseAddress! + off
                let reclen = Int(base.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
                let type = base.load(fromByteOffset: 18, as: UInt8.self)
                let namePtr = (base + 19).assumingMemoryBound(to: UInt8.self)
                off += reclen
                if namePtr[0] == 46 && (namePtr[1] == 0 || (namePtr[1] == 46 && namePtr[2] == 0)) { continue }
                result.entries += 1
                if result.entries >= input.limits.maxEntries { return out }
                var keep = all || type == dtDir || type == dtUnknown
                if !keep {
                    let len = strlen(UnsafeRawPointer(namePtr).assumingMemoryBound(to: CChar.self))
                    if len < 32 {
                        for w in Self.wantedByLength[len] where memcmp(namePtr, w, len) == 0 { keep = true; break }
                    }
                    // Files another run's audit moved aside (listed by the walk of this run too).
                    if !keep && len > Self.marker.count {
                        keep = Self.marker.withUnsafeBytes { ap_memmem(namePtr, len, $0.baseAddress, $0.count) == 1 }
                    }
                }
                if keep {
                    let c = UnsafeRawPointer(namePtr).assumingMemoryBound(to: CChar.self)
                    let raw = Array(UnsafeBufferPointer(start: c, count: strlen(c) + 1))
                    out.append(Entry(name: String(cString: c), raw: raw, type: type))
                }
            }
        }
    }

    mutating func walk() {
        defer { buffer.deallocate() }
        let rootOpened = open(input.project, dirFlags)
        guard rootOpened >= 0 else {
            result.findings.append(.init(path: input.project, action: .report,
                                         reason: "the persistence audit could not open the project (\(String(cString: strerror(errno)))); nothing was checked", isNotice: true))
            return
        }
        let root = Descriptor(rootOpened)
        let rootFD = root.raw
        for dir in input.outsideGitDirs {
            let fd = open(dir, dirFlags)
            if fd >= 0 {
                let gitDir = Descriptor(fd)
                let place = PersistenceAudit.place(isProjectGit: false, parentName: Paths.basename(Paths.parent(dir)))
                auditGitDir(gitDir.raw, path: dir, place: place, forced: false)
            }
        }
        var stack: [Frame] = []
        // The descriptors of the frames above the root (which `root` owns), in stack order.
        var opened = DescriptorList()
        stack.append(visit(fd: rootFD, path: input.project, name: "", parentName: "", depth: 0,
                           inGitTree: false, rootFD: rootFD))
        while !stack.isEmpty {
            if result.entries >= input.limits.maxEntries {
                stoppedAt = stoppedAt ?? stack[stack.count - 1].path
                break
            }
            let top = stack.count - 1
            if stack[top].next >= stack[top].children.count {
                stack.removeLast()
                if !stack.isEmpty { opened.removeLast().close() }
                continue
            }
            let child = stack[top].children[stack[top].next]
            let name = child.name
            stack[top].next += 1
            let parent = stack[top]
            let path = parent.path + "/" + name
            if parent.depth + 1 > input.limits.maxDepth {
                stoppedAt = stoppedAt ?? path
                continue
            }
            let raw = openat(parent.fd, child.raw, dirFlags)
            if raw >= 0 { opened.append(Descriptor(raw)) }
            else if errno == EACCES, let again = reopenUnreadable(parent.fd, child.raw, path: path) { opened.append(again) }
            else { continue }          // swapped for a symlink since the listing, or unreadable
            let fd = opened.raw[opened.count - 1]
            stack.append(visit(fd: fd, path: path, name: name, parentName: parent.name,
                               depth: parent.depth + 1, inGitTree: parent.inGitTree || name == ".git",
                               rootFD: rootFD))
        }
        opened.closeAll()
        for g in linkedGitDirs {
            auditGitDir(g.fd, path: g.path, place: g.place, forced: true)
        }
        linkedGitFDs.closeAll()
        for dir in input.state.hooksDirs {
            guard let comps = PersistenceAudit.componentsInside(project: input.project, linkDir: input.project, target: dir)
            else { continue }
            guard let parentDir = openInside(Array(comps.dropLast()), rootFD: rootFD) else { continue }
            let pfd = parentDir.raw
            guard let last = comps.last, let st = lstatAt(pfd, last) else { continue }
            if (st.st_mode & S_IFMT) != S_IFDIR {
                // A symlink or file in place of the hooks directory, made by the run.
                if attributed(st, forced: false) {
                    act(pfd, Paths.parent(dir), last, st, .quarantine,
                        "core.hooksPath names it, and it was replaced inside the sandbox; git would run hooks from where it leads")
                }
                continue
            }
            let fd = openat(pfd, last, dirFlags)
            guard fd >= 0 else { continue }
            let hooks = Descriptor(fd)
            // A hooks directory the run created, renamed or changed: each hook in it counts as the run's.
            auditHooks(hooks.raw, path: dir, place: .other, forced: Self.stamp(st) >= start, note: "in core.hooksPath (\(dir)), ")
        }
        if unlisted > 0 {
            result.findings.append(.init(path: input.project, action: .report,
                reason: "\(unlisted) more findings were acted on but not listed (more than \(input.limits.maxFindings))", isNotice: true))
        }
        if let stoppedAt {
            result.findings.append(.init(path: stoppedAt, action: .report,
                reason: "the persistence audit stopped here (more than \(input.limits.maxEntries) entries or \(input.limits.maxDepth) levels deep); what lies beyond was not checked", isNotice: true))
        }
    }

    /// A directory the run made unreadable (mode 0100 still lets the user cd
    /// into what it holds): agentpen, its owner, adds u+rx through an O_PATH
    /// descriptor (never a path a symlink could redirect) and audits it.
    mutating func reopenUnreadable(_ parentFD: Int32, _ raw: [CChar], path: String) -> Descriptor? {
        let opened = openat(parentFD, raw, AP_O_PATH | AP_O_NOFOLLOW | AP_O_DIRECTORY | O_CLOEXEC)
        guard opened >= 0 else { return nil }
        let pathFD = Descriptor(opened)
        let pfd = pathFD.raw
        var st = stat()
        guard fstat(pfd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, attributed(st, forced: false) else { return nil }
        var f = PersistenceAudit.Finding(path: path, action: .report,
                                         reason: "a directory made unreadable inside the sandbox; agentpen made it readable (u+rx) to audit what it holds",
                                         isNotice: true)
        var fd: Descriptor?
        if st.st_uid == getuid(), chmod("/proc/self/fd/\(pfd)", (st.st_mode & 0o7777) | 0o500) == 0 {
            let again = openat(parentFD, raw, dirFlags)
            if again >= 0 {
                let candidate = Descriptor(again)
                var st2 = stat()
                // Not the directory made readable (swapped meanwhile): dropped, so closed.
                if fstat(candidate.raw, &st2) == 0 && st2.st_ino == st.st_ino && st2.st_dev == st.st_dev { fd = consume candidate }
            }
        }
        let audited: Bool
        switch fd { case .some: audited = true; case .none: audited = false }
        if !audited {
            f.reason = "a directory made unreadable inside the sandbox; what it holds was not audited"
        }
        result.findings.append(f)
        return fd
    }

    /// Lists one directory, audits what it holds, and returns its frame with
    /// the subdirectories to enter.
    mutating func visit(fd: Int32, path: String, name: String, parentName: String, depth: Int,
                        inGitTree: Bool, rootFD: Int32) -> Frame {
        let entries = list(fd, all: name == "bin" || name == "Scripts" || name == "activate.d") ?? []
        var hasHEAD = false, hasObjects = false, hasRefs = false, hasCommondir = false
        var dirs: [Entry] = []
        var candidates: [Entry] = []
        var movedAside: [Entry] = []
        for var e in entries {
            if e.type == dtUnknown {
                guard let s = lstatAt(fd, e.raw) else { continue }
                switch s.st_mode & S_IFMT {
                case S_IFDIR: e.type = dtDir
                case S_IFREG: e.type = dtReg
                case S_IFLNK: e.type = dtLnk
                default: e.type = 1
                }
            }
            switch e.name {
            case "HEAD": hasHEAD = true
            case "objects": hasObjects = true
            case "refs": hasRefs = true
            case "commondir": hasCommondir = true
            default: break
            }
            // A quarantined file is never read by git; a directory with such a
            // name is entered like any other (the name hides nothing).
            if PersistenceAudit.isQuarantined(e.name) && e.type != dtDir { movedAside.append(e); continue }
            if e.type == dtDir { dirs.append(e) }
            if e.name == ".git" && e.type != dtDir { candidates.append(e) }
            else if e.type != dtDir, PersistenceAudit.projectFileRole(e.name, dirName: name, parentName: parentName) != nil {
                candidates.append(e)
            }
        }
        let isGitDir = PersistenceAudit.isGitDir(name: name, hasHEAD: hasHEAD, hasObjects: hasObjects, hasRefs: hasRefs,
                                                 hasCommondir: hasCommondir)
        if isGitDir, let st = lstatAt(fd, ".") {
            let id = PersistenceWalk.FileID(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
            let place = PersistenceAudit.place(isProjectGit: path == input.project + "/.git" && id == input.state.projectGit,
                                               parentName: parentName)
            let forced = PersistenceAudit.gitDirIsTheRuns(ctime: Self.stamp(st), start: start, place: place,
                                                          guarded: input.state.guarded.contains(id))
            auditGitDir(fd, path: path, place: place, forced: forced)
            if id == input.state.projectGit && place != .projectGit {
                result.findings.append(.init(path: path, action: .report,
                    reason: "this is the project's .git, moved here during the run; move it back to \(input.project)/.git", isNotice: true))
            }
        }
        for e in movedAside { movedByOther(fd, path, e) }
        for e in candidates {
            if e.name == ".git" { gitLink(dirFD: fd, dirPath: path, rootFD: rootFD) }
            else if let role = PersistenceAudit.projectFileRole(e.name, dirName: name, parentName: parentName) {
                projectFile(dirFD: fd, dirPath: path, name: e.name, role: role)
            }
        }
        let children = dirs.filter { PersistenceAudit.enters($0.name, of: name, inGitTree: inGitTree, isGitDir: isGitDir) }
        return Frame(fd: fd, path: path, name: name, depth: depth, inGitTree: inGitTree, children: children)
    }

    static func id(_ st: stat) -> PersistenceWalk.FileID { .init(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino)) }

    func evidence(_ st: stat) -> PersistenceAudit.Evidence {
        let id = Self.id(st)
        return .init(wroteIt: input.wrote.contains(id), otherActiveWroteIt: input.othersWrote.contains(id),
                     otherReportedAsItsOwn: input.othersProved.contains(Self.fingerprint(st)))
    }

    func attributed(_ st: stat, forced: Bool) -> Bool {
        PersistenceAudit.isTheRuns(ctime: Self.stamp(st), start: start, inRunsGitDir: forced, evidence: evidence(st))
    }

    /// A file another run's audit moved aside during this run, which that run
    /// could not prove its own: listed here too (this run may have planted it).
    mutating func movedByOther(_ dirFD: Int32, _ dirPath: String, _ e: Entry) {
        guard let original = PersistenceAudit.quarantinedByOther(e.name, runID: input.runID),
              let st = lstatAt(dirFD, e.raw), (st.st_mode & S_IFMT) != S_IFDIR, Self.stamp(st) >= start,
              !input.othersProved.contains(Self.fingerprint(st)), movedSeen.insert(dirPath + "/" + e.name).inserted
        else { return }
        let f = PersistenceAudit.Finding(path: dirPath + "/" + e.name, action: .report,
                                         reason: PersistenceAudit.movedByOtherReason(original: dirPath + "/" + original),
                                         isNotice: true)
        if result.findings.count < input.limits.maxFindings { result.findings.append(f) } else { unlisted += 1 }
    }

    func readRegular(_ dirFD: Int32, _ name: String, limit: Int) -> [UInt8]? {
        PersistenceWalk.readRegularFile(name, dirFD: dirFD, limit: limit)
    }

    static let configLimit = 1 << 20

    mutating func auditGitDir(_ fd: Int32, path: String, place: PersistenceAudit.GitDirPlace, forced: Bool) {
        var st0 = stat()
        if fstat(fd, &st0) == 0 {
            let id = PersistenceWalk.FileID(dev: UInt64(st0.st_dev), ino: UInt64(st0.st_ino))
            if forced && !auditedForced.insert(id).inserted { return }
            if forced && (id == input.state.projectGit || input.state.guarded.contains(id)) { return }
        }
        for name in ["config", "config.worktree"] {
            // A directory named config is a project's own (Rails' config/): git cannot read it.
            guard let st = lstatAt(fd, name), (st.st_mode & S_IFMT) != S_IFDIR, attributed(st, forced: forced) else { continue }
            if place == .projectGit && PersistenceAudit.projectGitRedirect(name) {
                act(fd, path, name, st, .remove, "created inside the sandbox; it would redirect git's config")
                continue
            }
            let regular = (st.st_mode & S_IFMT) == S_IFREG
            var content = regular ? readRegular(fd, name, limit: Self.configLimit + 1) ?? [] : []
            if content.count > Self.configLimit { content = Array("\0 too large".utf8) }   // unparseable: fail closed
            if let (a, why) = PersistenceAudit.decide(role: .gitConfig, place: place, isRegular: regular, content: content) {
                act(fd, path, name, st, a, why)
            }
        }
        if let st = lstatAt(fd, "commondir"), attributed(st, forced: forced) {
            if place == .projectGit {
                act(fd, path, "commondir", st, .remove, "created inside the sandbox; it would redirect git's config")
            } else {
                let regular = (st.st_mode & S_IFMT) == S_IFREG
                let content = regular ? readRegular(fd, "commondir", limit: 4096) ?? [] : []
                if let (a, why) = PersistenceAudit.decide(role: .commondir, place: place, isRegular: regular, content: content) {
                    act(fd, path, "commondir", st, a, why)
                }
            }
        }
        guard let hst = lstatAt(fd, "hooks") else { return }
        if (hst.st_mode & S_IFMT) != S_IFDIR {
            if attributed(hst, forced: forced),
               let (a, why) = PersistenceAudit.decide(role: .hooksLink, place: place, isRegular: false, content: []) {
                act(fd, path, "hooks", hst, a, why)
            }
            return
        }
        let hfd = openat(fd, "hooks", dirFlags)
        guard hfd >= 0 else { return }
        let hooks = Descriptor(hfd)
        auditHooks(hooks.raw, path: path + "/hooks", place: place, forced: forced)
    }

    mutating func auditHooks(_ hfd: Int32, path: String, place: PersistenceAudit.GitDirPlace, forced: Bool, note: String = "") {
        let entries = list(hfd, all: true) ?? []
        for e in entries where e.type != dtDir && PersistenceAudit.isQuarantined(e.name) {
            movedByOther(hfd, path, e)
        }
        for e in entries where PersistenceAudit.isHookName(e.name) && e.type != dtDir {
            guard let st = lstatAt(hfd, e.raw), (st.st_mode & S_IFMT) != S_IFDIR, attributed(st, forced: forced) else { continue }
            if let (a, why) = PersistenceAudit.decide(role: .hook(e.name), place: place, isRegular: true, content: []) {
                act(hfd, path, e.name, st, a, note + why)
            }
        }
    }

    /// Opens a directory inside the project by its components, each O_NOFOLLOW.
    func openInside(_ comps: [String], rootFD: Int32) -> Descriptor? {
        let copy = dup(rootFD)
        guard copy >= 0 else { return nil }
        var current = Descriptor(copy)
        for c in comps {
            let next = openat(current.raw, c, dirFlags)
            guard next >= 0 else { return nil }
            current = Descriptor(next)
        }
        return current
    }

    /// A `.git` file or symlink: one the run made is followed when it leads to a
    /// directory inside the project (audited as the run's), moved aside otherwise.
    mutating func gitLink(dirFD: Int32, dirPath: String, rootFD: Int32) {
        guard let st = lstatAt(dirFD, ".git"), attributed(st, forced: false) else { return }
        var target: String?
        if (st.st_mode & S_IFMT) == S_IFLNK {
            var buf = [CChar](repeating: 0, count: 4097)
            let n = readlinkat(dirFD, ".git", &buf, 4096)
            if n > 0 { target = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        } else if (st.st_mode & S_IFMT) == S_IFREG {
            guard let head = readRegular(dirFD, ".git", limit: 4096),
                  let t = PersistenceAudit.gitFileTarget(head) else { return }   // git refuses such a file
            target = t
        }
        if let target, let comps = PersistenceAudit.componentsInside(project: input.project, linkDir: dirPath, target: target) {
            // Only a directory git would take for a repository is audited as one;
            // a link to anything else (the project root, a plain directory) is
            // moved aside, so that a later `git init` cannot bring it to life.
            if let dir = openInside(comps, rootFD: rootFD) {
                let fd = dir.raw
                let names = Set(["HEAD", "objects", "refs", "commondir"].filter { lstatAt(fd, $0) != nil })
                if PersistenceAudit.looksLikeGitDir(names) {
                    let path = comps.isEmpty ? input.project : input.project + "/" + comps.joined(separator: "/")
                    let place = PersistenceAudit.place(isProjectGit: false, parentName: comps.count >= 2 ? comps[comps.count - 2] : "")
                    linkedGitDirs.append((fd, path, place))
                    linkedGitFDs.append(dir)
                    return
                }
            }
        }
        let why = "a .git link created inside the sandbox pointing git at \(target ?? "a special file") (outside the project or not a plain directory)"
        act(dirFD, dirPath, ".git", st, .quarantine, why)
    }

    mutating func projectFile(dirFD: Int32, dirPath: String, name: String, role: PersistenceAudit.Role) {
        guard let st = lstatAt(dirFD, name), attributed(st, forced: false) else { return }
        let content = role == .vscodeTasks ? readRegular(dirFD, name, limit: 1 << 20) ?? [] : []
        guard let (a, why) = PersistenceAudit.decide(role: role, place: .other, isRegular: (st.st_mode & S_IFMT) == S_IFREG,
                                                     content: content) else { return }
        act(dirFD, dirPath, name, st, a, why)
    }

    /// Carries out a decision relative to the directory descriptor.
    mutating func act(_ dirFD: Int32, _ dirPath: String, _ name: String, _ st: stat,
                      _ action: PersistenceAudit.Action, _ why: String) {
        var reason = why
        let own = input.wrote.contains(Self.id(st))
        if let note = PersistenceAudit.overlapNote(findingCtime: Self.stamp(st), others: input.others, wroteIt: own) {
            reason += " (\(note))"
        }
        var f = PersistenceAudit.Finding(path: dirPath + "/" + name, action: action, reason: reason)
        switch action {
        case .remove:
            if unlinkat(dirFD, name, 0) != 0 { f.error = String(cString: strerror(errno)) }
        case .quarantine:
            var rc: Int32 = -EEXIST
            var newName = ""
            for attempt in 0..<8 where rc == -EEXIST {
                newName = PersistenceAudit.quarantineName(name, runID: input.runID) + (attempt == 0 ? "" : "-\(attempt)")
                rc = ap_rename_noreplace(dirFD, name, dirFD, newName)
            }
            if rc == 0 {
                f.movedTo = dirPath + "/" + newName
                // The rename changed its ctime: what another run will see.
                if own, let moved = lstatAt(dirFD, newName) { result.handled.append(Self.fingerprint(moved)) }
            } else {
                f.error = String(cString: strerror(-rc))
            }
        case .report:
            if own { result.handled.append(Self.fingerprint(st)) }
        }
        if result.findings.count < input.limits.maxFindings { result.findings.append(f) } else { unlisted += 1 }
    }
}
