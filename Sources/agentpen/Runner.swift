import AgentpenConfig
import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import CShim
import Glibc

/// A failure of agentpen itself, with the exit status it maps to.
struct Failure: Error, CustomStringConvertible {
    var status: Int32
    var message: String
    var description: String { message }

    static func usage(_ m: String) -> Failure { Failure(status: 2, message: m) }
    /// A failure whose cause a helper has already printed.
    static let alreadyReported = Failure(status: 125, message: "")
    static func internalError(_ m: String) -> Failure { Failure(status: 125, message: m) }
}

/// Everything decided before anything starts.
struct Prepared {
    /// The flags merged with the config files.
    var options: Options
    var facts: HostFacts
    var project: String
    var preset: Preset?
    var allowlist: Allowlist
    var plan: SandboxPlan
    /// Host paths the sandbox can write (its read-write binds).
    var writable: WritableSet
    /// bwrap, pasta and nft by absolute path, resolved once here.
    var programs: HostPrograms
    /// The config files and where each value came from.
    var config: Configured
}

enum Runner {
    static func gatherFacts() -> HostFacts {
        let env = Host.environment
        let uid = getuid(), gid = getgid()
        let user = Host.userName(uid: uid) ?? env["USER"] ?? "user"
        let home = env["HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? Host.passwdHome(uid: uid) ?? "/"
        var facts = HostFacts(uid: uid, gid: gid, user: user, home: Paths.normalize(home),
                              shell: env["SHELL"], isNixOS: RealFileSystem().kind("/etc/NIXOS") != .missing,
                              callerEnv: env, selfBinary: Host.selfExecutable,
                              selfLibraryDirs: Host.loadedLibraryDirs())
        facts.memoryTotal = Host.memoryTotal
        facts.cgroup = Cgroup.facts(uid: uid)
        return facts
    }

    /// Parses what was asked into a complete plan, or the reason it cannot run.
    /// `flags` is the command line; the config files are merged in here
    /// (Configure), and their warnings printed before anything starts. `network`
    /// decides from the merged options (a config file's keys count, not only flags).
    static func prepare(_ flags: Options, network: (Allowlist, Options) -> NetworkMode) throws(Failure) -> Prepared {
        let facts = gatherFacts()
        let config = try Configure.load(flags, facts: facts)
        for w in config.warnings { printError("\(w)") }
        var options = config.resolution.options
        let project = config.project
        let preset = config.resolution.preset
        if options.paranoid {
            options.throwaway = try Paranoid.prepare(config, preset: preset, home: facts.home, create: flags.mode == .run)
        }
        var allowlist = Allowlist(preset?.hosts ?? [])
        // A custom endpoint the caller set (ANTHROPIC_BASE_URL, …): its host, for this agent.
        do { for h in try preset?.endpointHosts(caller: facts.callerEnv) ?? [] { allowlist.add(h) } }
        catch { throw .usage("\(error.message); unset it or fix it") }
        for h in options.allow { allowlist.add(h) }
        // One view of the filesystem for the whole plan (nothing is created
        // until prepareHost, after it): each path asked of the kernel once.
        let fs = SnapshotFileSystem()
        let plan: SandboxPlan
        do {
            plan = try SandboxPlan.make(options: options, facts: facts, project: project, preset: preset,
                                        network: network(allowlist, options), fs: fs)
        } catch {
            throw Failure(status: error.kind.exitStatus, message: error.message)
        }
        let writable = WritableSet(plan.hostWritable + [project], fs: fs)
        let programs: HostPrograms
        do { programs = try HostPrograms.resolve(env: facts.callerEnv, home: facts.home, writable: writable, fs: fs) }
        catch { throw .usage(error.message) }
        return Prepared(options: options, facts: facts, project: project, preset: preset,
                        allowlist: allowlist, plan: plan, writable: writable, programs: programs, config: config)
    }

    /// Makes the host-side paths the plan binds. Returns mount points to remove afterwards.
    static func prepareHost(_ plan: SandboxPlan) throws(Failure) -> [String] {
        var transient: [String] = []
        for prep in plan.createBeforeRun {
            switch prep {
            case .directory(let p):
                var built = ""
                for part in p.split(separator: "/") {
                    built += "/" + part
                    if mkdir(built, 0o700) != 0 && errno != EEXIST {
                        throw .internalError("cannot create \(built): \(String(cString: strerror(errno)))")
                    }
                }
            case .emptyFile(let p):
                if let made = Descriptor.open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o644) { made.close() }
                else if errno != EEXIST {
                    throw .internalError("cannot create \(p): \(String(cString: strerror(errno)))")
                }
            case .transientMountPoint(let p):
                transient.append(p)
            }
        }
        if case .apply(let dir, let writes, _) = plan.cgroup {
            do { try Cgroup.create(dir, writes: writes) } catch {
                throw .internalError("cannot set up the run's cgroup limits: \(error); --no-cgroup runs without them")
            }
            transient.append(dir)
        }
        return transient
    }

    /// Descriptors for the generated files, /etc's copies, the seccomp program and the bind
    /// sources, at the numbers the plan gave bubblewrap; owned until the child has them.
    static func planDescriptors(_ plan: SandboxPlan) throws(Failure) -> ChildDescriptors {
        var fds = ChildDescriptors()
        do {
            for file in plan.dataFiles {
                fds.add(Descriptor(try memoryFile("agentpen" + file.path, Array(file.content.utf8))), at: file.fd)
            }
            fds.add(Descriptor(try SeccompFilter.exportToMemoryFile()), at: plan.seccompFD)
            if case .apply(let dir, _, _) = plan.cgroup { fds.add(Descriptor(try Cgroup.openProcs(dir)), at: plan.cgroupFD) }
        } catch {
            throw .internalError("cannot prepare the sandbox: \(error)")
        }
        // /etc's copies: the plan saw regular files it could read; one that is
        // not that any more fails the run (never an /etc with a file left out
        // unsaid or a half-read one).
        for c in plan.fileCopies {
            let fd = Host.openRegularFile(c.source)
            guard fd >= 0 else {
                throw .internalError("cannot copy \(c.source) into the sandbox: \(String(cString: strerror(-fd))); it changed after agentpen checked it")
            }
            fds.add(Descriptor(fd), at: c.fd)
        }
        // Bind sources, opened without following symlinks (the plan checked them;
        // the project may have changed since).
        for p in plan.pathFDs {
            let fd = Host.openWithoutSymlinks(p.path)
            guard fd >= 0 else {
                let why = String(cString: strerror(-fd))
                if [ELOOP, ENOENT, ENOTDIR].contains(-fd) {
                    throw .usage("refusing \(p.path): it changed after agentpen checked it (\(why)); is something else changing the project?")
                }
                throw .internalError("cannot open \(p.path) for the sandbox: \(why)")
            }
            fds.add(Descriptor(fd), at: p.fd)
        }
        return fds
    }

    /// A host program resolved at start, or why the run cannot go on without it.
    static func program(_ program: HostPrograms.Program, _ prepared: Prepared) throws(Failure) -> String {
        guard let p = prepared.programs.path(program) else {
            throw .internalError(HostPrograms.missing(program) + "; run agentpen --check")
        }
        return p
    }

    /// Runs the plan without a network (no hosts allowed): bubblewrap in its own
    /// empty network namespace.
    /// `sandboxGone`: as in `Network.run`.
    static func runOffline(_ prepared: Prepared, events: any EventSink,
                           sandboxGone: (@Sendable () -> Void)? = nil) throws(Failure) -> Int32 {
        let plan = prepared.plan
        let bwrap = try program(.bwrap, prepared)
        let transient = try prepareHost(plan)
        defer { removeTransient(transient) }
        var fds = try planDescriptors(plan)
        let statusPipe: Descriptor.Pipe
        do { statusPipe = try Descriptor.pipe() } catch { throw .internalError("pipe failed") }
        // The write end is closed once bubblewrap has it.
        let statusRead = statusPipe.read
        fds.add(statusPipe.write, at: SandboxPlan.bwrapStatusFD)
        let argv = plan.bwrapCommand(bwrap)
        let syscalls = try SyscallReporter(events: events, onSandboxGone: sandboxGone)
        fds.add(borrowing: syscalls.sandboxEnd, at: plan.syscallNotifyFD)
        let pid: pid_t
        do { pid = try Spawn.start(argv, .supervised(fds: fds.mapping, env: plan.env)) } catch {
            throw .internalError("cannot start bubblewrap: \(error)")
        }
        fds.closeAll()
        ap_forward_termination_to(pid)
        try syscalls.start()
        let status = Spawn.wait(pid)
        syscalls.finish()
        let report = readAll(statusRead.raw)
        statusRead.close()
        return try interpret(status: status, bwrapReport: report)
    }

    /// bubblewrap exits 1 both when it fails to set up and when the command
    /// exits 1; its status stream says whether the command ever started.
    static func interpret(status: Int32, bwrapReport: String) throws(Failure) -> Int32 {
        let signal = ap_received_signal()
        if signal != 0 { return 128 + signal }
        if !bwrapReport.contains("\"child-pid\"") {
            throw .internalError("the sandbox could not be set up (bubblewrap exit status \(status)); run agentpen --check")
        }
        return status
    }

    /// What the persistence audit needs from before the run.
    struct AuditSession {
        var project: String
        var state: PersistenceWalk.StartState
        var runID: String
        var registry: RunRegistry?
        var outsideGitDirs: [String]
        /// This run's ledger of written files, where the kernel allows one.
        var watch: RunWatch?
        /// Why there is none.
        var unwatched: String?
    }

    /// Before bubblewrap starts: the start time, the identity of the guarded git
    /// dirs, and this run's entry in the registry of runs on the project.
    static func beginAudit(_ p: Prepared) -> AuditSession {
        let gitDirs = PersistenceAudit.splitGitDirs(p.plan.gitDirs, project: p.project)
        let state = PersistenceWalk.begin(project: p.project, guardedGitDirs: gitDirs.guarded, home: p.facts.home,
                                          xdgConfigHome: p.facts.callerEnv["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil })
        let runID = "\(getpid())-\(state.start.sec)"
        let base = RunRegistry.base(env: p.facts.callerEnv, home: p.facts.home)
        // Never a registry the sandbox could write (the project or any read-write
        // bind), nor one holding the project; checked on the path as given and on
        // its real path.
        func exposed(_ path: String) -> Bool {
            p.writable.container(of: path) != nil || Paths.isWithin(p.project, path)
        }
        let registry = exposed(base) ? nil
            : RunRegistry(base: base, project: p.project, runID: runID, start: state.start, refuse: exposed)
        let watch = RunWatch.start(registry: registry)
        return AuditSession(project: p.project, state: state, runID: runID, registry: registry,
                            outsideGitDirs: gitDirs.outside, watch: watch.watch, unwatched: watch.reason)
    }

    /// After the run, whatever it left: walks the project, disarms what git would
    /// run, records every finding as an event and returns them for the exit report.
    static func finishAudit(_ s: AuditSession, events: EventLog) -> [PersistenceAudit.Finding] {
        let ledger = s.watch?.finish()
        var input = PersistenceWalk.Input(project: s.project, state: s.state, runID: s.runID,
                                          outsideGitDirs: s.outsideGitDirs)
        input.wrote = ledger?.wrote ?? []
        var result: PersistenceWalk.Result
        if let registry = s.registry {
            result = registry.withAuditLock {
                // Under the lock: a run still listed as active audits after this one.
                let active = registry.othersActive()
                let handled = registry.handled()
                input.othersWrote = registry.written(by: active.map(\.runID))
                input.othersProved = handled.proved
                input.others = active.map { PersistenceAudit.RunWindow(start: $0.start) }
                    + handled.ended.filter { $0.end.map { $0 >= s.state.start } ?? true }
                let r = PersistenceWalk.run(input)
                // The end a little after the clock says: a fine-grained ctime may run ahead of the coarse clock.
                var end = PersistenceWalk.now()
                end.nsec += 20_000_000
                if end.nsec >= 1_000_000_000 { end.sec += 1; end.nsec -= 1_000_000_000 }
                registry.record(r.handled, start: s.state.start, end: end)
                registry.leave()
                return r
            }
        } else {
            result = PersistenceWalk.run(input)
        }
        // Where runs overlapped, say what the attribution rested on.
        if !input.others.isEmpty, let why = s.unwatched ?? ledger?.note {
            result.findings.append(.init(path: s.project, action: .report,
                reason: "another agentpen run on this project overlapped this one, and this run kept no record of the files it wrote (\(why)): changes made while both ran are listed by each", isNotice: true))
        }
        for f in result.findings {
            let kind: Event.Kind = f.action == .remove ? .persistenceRemoved : f.action == .quarantine ? .persistenceMoved : .persistenceFound
            var details = ["action": f.action.rawValue]
            if let to = f.movedTo { details["moved-to"] = to }
            if let e = f.error { details["error"] = e }
            events.record(Event(kind, subject: f.path, reason: f.reason, details: details))
        }
        return result.findings
    }

    /// One byte from a readiness pipe; false on EOF (the writer died).
    static func readByte(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        var n: Int
        repeat { n = read(fd, &byte, 1) } while n < 0 && errno == EINTR
        return n == 1
    }

    static func removeTransient(_ paths: [String]) {
        for p in paths {
            if p.hasPrefix(Cgroup.mountPoint + "/") { Cgroup.remove(p) } else { rmdir(p) }   // only succeeds while still empty
        }
    }

    static func readAll(_ fd: Int32) -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buf[..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
