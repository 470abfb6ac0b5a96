import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import AgentpenProxy
import CShim
import Dispatch
import Glibc
import Synchronization

/// This run's session (README "Sessions"): `STATE/agentpen/sessions/ID/` with
/// `events.jsonl` (every event of the run's one EventLog, numbered), the
/// control socket `agentpen watch` attaches to (each new event line is sent to
/// every watcher as it is written), and `view/refusals`, which the sandbox
/// reads at `SessionPolicy.refusalsFile`. Nothing of it is reachable from
/// inside but that read-only view: the session is refused where the plan binds
/// anything above it.
/// `@unchecked Sendable`: the descriptors and `acceptWatch` are set once in `init`; the watchers,
/// the refusal list and `closed` live in `state`'s Mutex.
final class Session: @unchecked Sendable {
    let id: String
    /// Real path of the session directory.
    let path: String
    var viewPath: String { Self.viewPath(path) }
    /// Where the secret decoys are (a directory of the decoy files alone, bound read-only inside).
    var decoyPath: String { Self.decoyPath(path) }
    static func viewPath(_ dir: String) -> String { dir + "/" + SessionPolicy.viewDirName }
    static func decoyPath(_ dir: String) -> String { dir + "/" + DecoyFiles.dirName }
    /// The listening socket: owned by `acceptWatch`, whose cancel handler closes it.
    private let listenFD: Int32
    /// Set once, at the end of `init`.
    private var acceptWatch: AgentpenProxy.Watch?
    private struct State: ~Copyable {
        /// The session directory, its events file and view, open until `finish`.
        var files: SessionStore.Made?
        var watchers: [Int32] = []
        /// Each connection's read source (its commands) and unfinished line.
        var readers: [Int32: Reader] = [:]
        var refusals = RefusalList()
        var closed = false
    }
    private struct Reader {
        var watch: AgentpenProxy.Watch
        var pending: [UInt8] = []
    }
    private let state: Mutex<State>
    private let commandQueue = DispatchQueue(label: "agentpen.session.commands")
    /// The pruning of old sessions (`prune(base:now:)`), waited for in `finish`.
    private let pruning = DispatchGroup()
    /// `--ask`: answers a control line's command with a reply line (set before
    /// the run starts; nil: commands are refused).
    private let commands = Mutex<(@Sendable (ControlCommand) -> String)?>(nil)

    func onCommand(_ handler: @escaping @Sendable (ControlCommand) -> String) { commands.withLock { $0 = handler } }

    private init(id: String, path: String, made: consuming SessionStore.Made, listen: consuming Descriptor) {
        self.id = id
        self.path = path
        SessionStore.replaceFile(dir: made.view.raw, name: SessionPolicy.refusalsName, text: RefusalList().text)
        state = Mutex(State(files: made))
        // The accept watch owns it from here: closed once the watch is cancelled.
        listenFD = listen.raw
        let w = AgentpenProxy.Watch.read(owning: listen, queue: DispatchQueue(label: "agentpen.session"), group: nil) {
            [weak self] in self?.acceptWatchers()
        }
        acceptWatch = w
        w.enable()
    }

    /// Where a session of `p` would be, for --dry-run, which creates nothing:
    /// nil where `open` would refuse the state home as visible inside. The ID
    /// is made as a run makes its own (the run's will differ).
    static func plannedPath(_ p: Prepared) -> String? {
        let place = placement(p)
        guard place.exposed(place.sessions) == nil else { return nil }
        return SessionStore.realPathOfPrefix(place.sessions) + "/" + newID().id
    }

    /// The state home, its sessions directory, and the directory the sandbox can
    /// see that holds a path, if one does: never a session there. The plan's
    /// bind sources count, read-only ones too (a socket on a read-only mount
    /// still accepts connections).
    private static func placement(_ p: Prepared) -> (stateHome: String, sessions: String, exposed: (String) -> String?) {
        let stateHome = XDGPaths.stateHome(env: p.facts.callerEnv, home: p.facts.home)
        let visible = WritableSet(p.plan.hostVisible + [p.project], fs: RealFileSystem())
        return (stateHome, stateHome + "/agentpen/sessions",
                { visible.container(of: $0) ?? visible.container(of: SessionStore.realPathOfPrefix($0)) })
    }

    /// A new session's ID, and the time (seconds since the epoch) it was made at.
    private static func newID() -> (id: String, now: Int64) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (SessionPolicy.makeID(epochSeconds: Int64(now.tv_sec), pid: getpid()), Int64(now.tv_sec))
    }

    /// Opens this run's session, or prints why there is none and returns nil
    /// (the run goes on: a session is for watching, not for confinement).
    static func open(_ p: Prepared) -> Session? {
        let (stateHome, given, exposed) = placement(p)
        if let c = exposed(given) {
            printError("no session: \(stateHome) lies in \(c), which the sandbox can see; set XDG_STATE_HOME elsewhere (this run goes on without agentpen watch and suggest)")
            return nil
        }
        do throws(SessionStore.Failure) {
            let base = try SessionStore.openBase(stateHome: stateHome, create: true)
            if let c = exposed(Host.realPath("/proc/self/fd/\(base.fd.raw)") ?? base.path) {
                printError("no session: \(base.path) lies in \(c), which the sandbox can see; set XDG_STATE_HOME elsewhere")
                return nil
            }
            let (id, now) = newID()
            let made = try SessionStore.create(base: base.fd.raw, id: id)
            let listen = try SessionStore.listen(dir: made.dir.raw)    // a throw closes what `made` holds
            let session = Session(id: id, path: base.path + "/" + id, made: made, listen: listen)
            session.prune(base: base.fd.raw, now: now)
            return session
        } catch {
            printError("no session: \(error.message)")
            return nil
        }
    }

    /// Old sessions are removed (`SessionStore.prune`) on another thread while
    /// the run starts: unlinking is file-system work (on this machine's ext4
    /// with online discard 0.3-50 ms, once 1.5 s) that nothing of the run
    /// waits for; `finish` waits for it. This session is the newest, never
    /// pruned; `base` is duplicated, so the caller may close its own.
    private func prune(base: Int32, now: Int64) {
        let dup = fcntl(base, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0 else { SessionStore.prune(base: base, now: now); return }
        DispatchQueue.global().async(group: pruning) {
            let dir = Descriptor(dup)    // closed when this ends
            SessionStore.prune(base: dir.raw, now: now)
        }
    }

    /// Creates the decoy files and their watches; nil (no decoys this run) if that fails.
    func plantDecoys(_ decoys: [SecretDecoys.Decoy]) -> DecoyFiles? {
        state.withLock { s in
            guard let dir = s.files?.dir.raw else { return nil }
            return DecoyFiles.create(sessionDir: dir, decoys)
        }
    }

    private func acceptWatchers() {
        while let c = SessionStore.accept(listenFD) {
            // Only this user (or root) may watch; the directory is 0700 anyway.
            guard c.uid == getuid() || c.uid == 0 else { continue }    // dropping `c` closes it
            // The read watch owns it from here: closed once the watch is cancelled.
            let fd = c.fd.raw
            let watch = AgentpenProxy.Watch.read(owning: c.fd, queue: commandQueue, group: nil) { [weak self] in self?.readCommands(fd) }
            let kept = state.withLock { s -> Bool in
                guard !s.closed else { return false }
                s.watchers.append(fd)
                s.readers[fd] = Reader(watch: watch)
                watch.enable()
                return true
            }
            // Its cancel handler closes the connection.
            if !kept { watch.cancel() }
        }
    }

    /// Drops a connection: its watch's cancel handler closes it, on the command
    /// queue after any read in progress (so from any thread, under the lock).
    private static func drop(_ fd: Int32, _ s: inout State) {
        s.watchers.removeAll { $0 == fd }
        if let r = s.readers.removeValue(forKey: fd) { r.watch.cancel() }
    }

    /// Lines from a watcher or `agentpen allow`: `allow HOST CHOICE`, each
    /// answered with one line, "ok …" or "error …" (after any event lines).
    private func readCommands(_ fd: Int32) {
        var buf = [UInt8](repeating: 0, count: 1024)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        var lines: [String] = []
        let open = state.withLock { s -> Bool in
            guard var r = s.readers[fd] else { return false }
            if n <= 0 { Self.drop(fd, &s); return false }
            r.pending += buf[0..<n]
            while let nl = r.pending.firstIndex(of: 0x0a) {
                lines.append(String(decoding: r.pending[..<nl], as: UTF8.self))
                r.pending.removeSubrange(...nl)
            }
            // A line longer than any command: the peer is not speaking the protocol.
            if r.pending.count > ControlCommand.maxLine { Self.drop(fd, &s); return false }
            s.readers[fd] = r
            return true
        }
        guard open else { return }
        let handler = commands.withLock { $0 }
        for line in lines {
            let reply: String
            switch ControlCommand.parse(line) {
            case .invalid(let why): reply = "error " + why
            case .command(let c): reply = handler.map { $0(c) } ?? "error this run does not ask (start it with --ask)"
            }
            let bytes = Array((reply + "\n").utf8)
            state.withLock { s in
                guard s.readers[fd] != nil else { return }
                let sent = bytes.withUnsafeBytes { ap_send_nosignal(fd, $0.baseAddress, $0.count) }
                if sent != bytes.count { Self.drop(fd, &s) }
            }
        }
    }

    /// Each event, in order (called under the EventLog's lock): appended to
    /// events.jsonl, sent to the watchers (one that cannot take it at once is
    /// dropped: it reconnects and rereads the file), and a new refusal rewrites
    /// the sandbox's refusals file.
    func record(_ e: Event, _ line: String) {
        var bytes = Array(line.utf8)
        state.withLock { s in
            guard !s.closed, let eventsFD = s.files?.events.raw else { return }
            _ = bytes.withUnsafeMutableBytes { TerminalText.writeAll(eventsFD, UnsafeRawBufferPointer($0)) }
            for fd in s.watchers {
                let n = bytes.withUnsafeBytes { ap_send_nosignal(fd, $0.baseAddress, $0.count) }
                if n != bytes.count { Self.drop(fd, &s) }
            }
            if e.isRefusal && s.refusals.add(e), let viewFD = s.files?.view.raw {
                SessionStore.replaceFile(dir: viewFD, name: SessionPolicy.refusalsName, text: s.refusals.text)
            }
        }
    }

    /// After the run-end event: watchers see the end of their stream, the
    /// control socket goes away, the files stay for `watch` and `suggest`.
    func finish() {
        pruning.wait()
        state.withLock { s in
            s.closed = true
            for fd in s.watchers { Self.drop(fd, &s) }
        }
        acceptWatch?.cancel()
        state.withLock { s in
            if let dir = s.files?.dir.raw { _ = unlinkat(dir, SessionPolicy.controlName, 0) }
            s.files = nil    // closes the directory, the events file and the view
        }
    }
}
