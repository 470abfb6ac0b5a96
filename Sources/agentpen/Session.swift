import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
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
/// `@unchecked Sendable`: the descriptors are set once in `init`; the watchers,
/// the refusal list and `closed` live in `state`'s Mutex.
final class Session: @unchecked Sendable {
    let id: String
    /// Real path of the session directory.
    let path: String
    var viewPath: String { path + "/" + SessionPolicy.viewDirName }
    /// Where the secret decoys are (each file is bound, never the directory).
    var decoyPath: String { path + "/" + DecoyFiles.dirName }
    private let dirFD: Int32, eventsFD: Int32, viewFD: Int32, listenFD: Int32
    private let acceptSource: any DispatchSourceRead
    private struct State: ~Copyable {
        /// The watchers' connections, owned: one dropped is closed.
        var watchers = DescriptorList()
        var refusals = RefusalList()
        var closed = false
    }
    private let state = Mutex(State())

    private init(id: String, path: String, made: (dir: Int32, events: Int32, view: Int32), listen: Int32) {
        self.id = id
        self.path = path
        dirFD = made.dir; eventsFD = made.events; viewFD = made.view; listenFD = listen
        acceptSource = DispatchSource.makeReadSource(fileDescriptor: listen, queue: DispatchQueue(label: "agentpen.session"))
        SessionStore.replaceFile(dir: viewFD, name: SessionPolicy.refusalsName, text: RefusalList().text)
        acceptSource.setEventHandler { [weak self] in self?.acceptWatchers() }
        acceptSource.setCancelHandler { close(listen) }
        acceptSource.activate()
    }

    /// Opens this run's session, or prints why there is none and returns nil
    /// (the run goes on: a session is for watching, not for confinement).
    static func open(_ p: Prepared) -> Session? {
        let stateHome = XDGPaths.stateHome(env: p.facts.callerEnv, home: p.facts.home)
        let given = stateHome + "/agentpen/sessions"
        // Never where the sandbox can see or write: the plan's bind sources, read-only too
        // (a socket on a read-only mount still accepts connections).
        let visible = WritableSet(p.plan.hostVisible + [p.project], fs: RealFileSystem())
        func exposed(_ path: String) -> String? {
            visible.container(of: path) ?? visible.container(of: SessionStore.realPathOfPrefix(path))
        }
        if let c = exposed(given) {
            printError("no session: \(stateHome) lies in \(c), which the sandbox can see; set XDG_STATE_HOME elsewhere (this run goes on without agentpen watch and suggest)")
            return nil
        }
        do throws(SessionStore.Failure) {
            let base = try SessionStore.openBase(stateHome: stateHome, create: true)
            defer { close(base.fd) }
            if let c = exposed(Host.realPath("/proc/self/fd/\(base.fd)") ?? base.path) {
                printError("no session: \(base.path) lies in \(c), which the sandbox can see; set XDG_STATE_HOME elsewhere")
                return nil
            }
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let id = SessionPolicy.makeID(epochSeconds: Int64(now.tv_sec), pid: getpid())
            let made = try SessionStore.create(base: base.fd, id: id)
            let listen: Int32
            do { listen = try SessionStore.listen(dir: made.dir) } catch {
                close(made.dir); close(made.events); close(made.view)
                throw error
            }
            SessionStore.prune(base: base.fd, now: Int64(now.tv_sec))
            return Session(id: id, path: base.path + "/" + id, made: made, listen: listen)
        } catch {
            printError("no session: \(error.message)")
            return nil
        }
    }

    /// Creates the decoy files and their watches; nil (no decoys this run) if that fails.
    func plantDecoys(_ decoys: [SecretDecoys.Decoy]) -> DecoyFiles? {
        DecoyFiles.create(sessionDir: dirFD, decoys)
    }

    private func acceptWatchers() {
        while let c = SessionStore.accept(listenFD) {
            // Only this user (or root) may watch; the directory is 0700 anyway.
            guard c.uid == getuid() || c.uid == 0 else { close(c.fd); continue }
            // Kept by the state, or (after `finish`) closed here, at once.
            var watcher: Descriptor? = Descriptor(c.fd)
            state.withLock { s in
                if !s.closed, let w = watcher.take() { s.watchers.append(w) }
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
            guard !s.closed else { return }
            _ = bytes.withUnsafeMutableBytes { TerminalText.writeAll(eventsFD, UnsafeRawBufferPointer($0)) }
            if !s.watchers.isEmpty {
                s.watchers.removeAll { fd in
                    bytes.withUnsafeBytes { ap_send_nosignal(fd, $0.baseAddress, $0.count) } != bytes.count
                }
            }
            if e.isRefusal && s.refusals.add(e) {
                SessionStore.replaceFile(dir: viewFD, name: SessionPolicy.refusalsName, text: s.refusals.text)
            }
        }
    }

    /// After the run-end event: watchers see the end of their stream, the
    /// control socket goes away, the files stay for `watch` and `suggest`.
    func finish() {
        var watchers = state.withLock { s -> DescriptorList in
            s.closed = true
            return s.watchers.takeList()
        }
        watchers.closeAll()
        acceptSource.cancel()
        _ = unlinkat(dirFD, SessionPolicy.controlName, 0)
        close(eventsFD); close(viewFD); close(dirFD)
    }
}
