import AgentpenCommandLine
import AgentpenConfig
import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import AgentpenProxy
import FoundationEssentials
import Glibc
import Synchronization

let version = "0.1.0"

/// Every message to the user goes through TerminalText: the sandbox's and the
/// project's strings in it are escaped, and it is written whole (NUL included).
func printError(_ message: TerminalText) {
    TerminalText.printError(message)
}

/// The --log file, opened for appending before anything starts; nil when not
/// asked for. Refused (exit 2) where it could be turned against the user: a
/// symlink (O_NOFOLLOW), anything but a regular file (a FIFO must not block us),
/// or a place the sandbox can write (it could plant that symlink, or rewrite the log).
func openLog(_ path: String?, writable: WritableSet) -> Int32? {
    guard let path else { return nil }
    func refuse(_ why: String) -> Never {
        printError("refusing --log \(path): \(why)")
        exit(2)
    }
    let absolute = Paths.join(Host.realPath(".") ?? "/", path)
    let name = Paths.basename(absolute)
    guard !name.isEmpty, let dir = Host.realPath(Paths.parent(absolute)) else { refuse("its directory does not exist") }
    let target = Paths.join(dir, name)
    if let w = writable.container(of: target) {
        refuse("it lies in \(w), which the sandbox can write; put the log outside it")
    }
    let fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0o600)
    if fd < 0 {
        let e = errno
        switch e {
        case ELOOP: refuse("it is a symbolic link; name the file itself")
        case EISDIR, ENXIO: refuse("not a regular file")
        default: refuse(String(cString: strerror(e)))
        }
    }
    let log = Descriptor(fd)
    var st = stat()
    guard fstat(log.raw, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
        log.close()
        refuse("not a regular file")
    }
    _ = fcntl(log.raw, F_SETFL, O_APPEND)   // blocking again
    return log.take()    // the run's log: open until the process ends
}

/// Prints blocks as they happen, up to a bound: a sandbox hammering denied names
/// must not flood the user's stderr; the exit summary still counts them all.
final class LiveBlockPrinter: Sendable {
    static let limit = 200
    private let enabled: Bool
    /// How many blocks were shown so far; only ever grows.
    private let count = Mutex(0)

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ event: Event) {
        guard enabled else { return }
        let n = count.withLock { c -> Int in c += 1; return c }
        if n <= Self.limit { printError("blocked \(event.subject): \(event.reason)") }
        if n == Self.limit { printError("further blocks are counted in the summary at exit (and in --log)") }
    }
}

// MARK: - Modes
//
// What this process is for is decided from argv alone (Invocation.parse, pure,
// in AgentpenCommandLine). Each mode's process-wide setup is stated below, in
// its own case, with why; nothing depends on the order of statements above it.

// Every mode: an empty signal mask. A blocked mask survives exec, and whoever
// started us may have left signals blocked, which would make SIGTERM and SIGHUP
// silently pending forever (in us, and in the agent the exec helper starts).
var emptySignalSet = sigset_t()
sigemptyset(&emptySignalSet)
sigprocmask(SIG_SETMASK, &emptySignalSet, nil)

let invocation: Invocation
do {
    invocation = try Invocation.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    // 2 for the user's command line (with --help after it), 125 for a helper's.
    printError("\(error.message)")
    if let usage = error.usage { _ = Array((usage + "\n").utf8).withUnsafeBytes { TerminalText.writeAll(2, $0) } }
    exit(error.exitStatus)
}

/// A helper that dies of SIGPIPE (nft exiting before reading its input) could
/// not say what failed; children get default signals back from the spawn primitive.
func ignoreSIGPIPE() { signal(SIGPIPE, SIG_IGN) }

/// Each tunnel holds six descriptors in the proxy (two sockets, two pipes); the
/// usual soft limit of 1024 would cap a busy agent at ~170 connections. The
/// agent's own limit is set separately by the exec helper.
func raiseDescriptorLimit() {
    var fileLimit = rlimit()
    if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &fileLimit) == 0, fileLimit.rlim_cur < fileLimit.rlim_max {
        fileLimit.rlim_cur = fileLimit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &fileLimit)
    }
}

let options: Options
switch invocation {
case .exec(let arguments):
    // Inside the sandbox, the last step before the agent, which it execs: no
    // SIGPIPE change (an ignored signal survives exec into the agent) and no
    // rlimit raise (it sets the agent's limits itself).
    ExecHelper.main(arguments)
case .netns(let arguments):
    // Must stay single-threaded until it has unshared its user namespace:
    // nothing here may start Dispatch or a thread.
    ignoreSIGPIPE()
    NetHelper.main(arguments)
case .probe(let words):
    ignoreSIGPIPE()
    Probe.main(words)
case .completions(let shell):
    print(shell.completionScript)
    exit(0)
case .selftest:
    // Runs agentpen itself (and the network stack) as children: same setup as a run.
    ignoreSIGPIPE()
    exit(SelftestRun.run())
case .manual:
    print(Manual.page, terminator: "")
    exit(0)
case .config(let o):
    exit(Configure.show(o))
case .trust(let o):
    exit(Configure.trust(o))
case .initialize(let o):
    exit(Configure.initialize(o))
case .review(let o):
    exit(Paranoid.review(o))
case .apply(let o):
    exit(Paranoid.apply(o))
case .subcommandHelp(let text):
    print(text)
    exit(0)
case .watch(let sessions, let all, let json):
    Watch.main(sessions: sessions, all: all, json: json)
case .suggest(let session):
    Suggest.main(session: session)
case .allow(let command, let session):
    AllowClient.main(command, session: session)
case .notAvailable(let name):
    printError("\(name.rawValue): not available yet (a reserved subcommand); agentpen -- \(name.rawValue) runs the program \(name.rawValue)")
    exit(2)
case .agentpen(let parsed):
    // A run, --check, --dry-run, --help, --version: the proxy may hold many
    // tunnels, and nft or pasta exiting early must not kill us with SIGPIPE.
    ignoreSIGPIPE()
    raiseDescriptorLimit()
    options = parsed
}

switch options.mode {
case .help:
    print(Options.usage)
    exit(0)
case .version:
    print("agentpen \(version)")
    exit(0)
case .check:
    exit(Check.run())
case .dryRun, .run:
    // The persistence audit's findings, told at exit whatever else happened
    // (printed as soon as the audit ends, before the summary or an error).
    func printFindings(_ list: [PersistenceAudit.Finding]) {
        let limit = 100
        for f in list.prefix(limit) { printError("\(f.message)") }
        if list.count > limit { printError("persistence: \(list.count - limit) more findings (see --log)") }
    }
    do throws(Failure) {
        var prepared = try Runner.prepare(options, network: { Network.mode(for: $0, options: $1) })
        if options.mode == .dryRun {
            DryRun.print(prepared)
            exit(0)
        }
        let quiet = prepared.options.quiet
        let logFD = openLog(prepared.options.logPath, writable: prepared.writable)
        let profile = prepared.config.resolution.profile.value
        // The session (events.jsonl, the control socket, the sandbox's read-only
        // refusals file); none where the sandbox could see or write it.
        let session = Session.open(prepared)
        if let session { prepared.plan.addSessionView(hostDir: session.viewPath) }
        // Empty decoys at the well-known secret paths the plan leaves unmounted,
        // files of the session bound read-only, each open reported.
        var decoyFiles: DecoyFiles?
        if let session {
            let decoys = SecretDecoys.plan(prepared.plan.bwrap, home: prepared.facts.home)
            decoyFiles = session.plantDecoys(decoys)
            if decoyFiles != nil { prepared.plan.addSecretDecoys(decoys, hostDir: session.decoyPath) }
        }
        // Each block is printed as it happens, except onto a terminal the agent's
        // TUI owns (a stray line would garble its screen): there the summary at
        // exit lists every blocked name, and --log FILE has each one with its time.
        let live = isatty(2) == 0 && !quiet
        let printed = LiveBlockPrinter(enabled: live)
        var toSession: (@Sendable (Event, String) -> Void)?
        if let session { toSession = { e, line in session.record(e, line) } }
        // make bench's eventcost case only; it says so on stderr and in the log, --quiet or not.
        let dropsAllowed = prepared.facts.callerEnv[EventLog.benchDropAllowedVariable] == "1"
        let events = EventLog(fd: logFD, onBlock: { printed.show($0) }, onRecord: toSession, dropsAllowed: dropsAllowed)
        if dropsAllowed {
            let why: TerminalText = "\(EventLog.benchDropAllowedVariable)=1: allowed connections are not recorded (a measurement switch of make bench; unset it)"
            printError(why)
            events.record(Event(.setup, subject: EventLog.benchDropAllowedVariable, reason: why.rendered))
        }
        let secretWatch = decoyFiles.map { SecretWatch($0, events: events) }
        let agent = prepared.preset?.name ?? Paths.basename(prepared.plan.command.first ?? "?")
        let hosts = prepared.allowlist.patterns.count
        events.record(Event(.runStart, subject: prepared.project, reason: "run started",
                            details: ["project": prepared.project, "agent": agent, "profile": profile,
                                      "hosts": String(hosts), "pid": String(getpid()),
                                      "unlisted": prepared.options.unlistedNames.rawValue]))
        // One line before the agent draws anything.
        if !quiet {
            let mode = prepared.options.audit ? " (--audit: every other host goes through, recorded)"
                : prepared.options.ask ? " (--ask: others wait for your decision)" : ""
            if let session {
                printError("session \(session.id): project \(prepared.project), profile \(profile), \(hosts) hosts allowed\(mode); watch it: agentpen watch \(session.id)")
            } else {
                printError("project \(prepared.project), profile \(profile), \(hosts) hosts allowed\(mode)")
            }
        }
        func end(_ status: Int32, summary: Bool = true) {
            secretWatch?.finish()
            events.record(Event(.runEnd, subject: prepared.project, reason: "run ended", details: ["status": String(status)]))
            session?.finish()
            guard !quiet, summary else { return }
            let name: TerminalText = session.map { "session \($0.id)" } ?? "run"
            var line: TerminalText = name + " ended: " + events.countsLine()
            if let session { line += "; agentpen watch \(session.id), agentpen suggest \(session.id)" }
            printError(line)
            if let summary = events.summary() { printError(summary) }
            if let secrets = events.secretsLine() { printError(secrets) }
            if let audited = events.wouldBlockSummary() {
                printError(audited + (session.map { "; agentpen suggest \($0.id) prints them as flags" } ?? ""))
            }
        }
        // --ask: the held connections, answered on the session's control socket.
        var holds: HoldQueue?
        if prepared.options.ask {
            let q = HoldQueue(events: events, timeout: prepared.options.askTimeout, agent: agent,
                              processOf: { Ask.processOf($0) }, onHold: Ask.notifier(prepared), onSave: Ask.saver(prepared, agent: agent))
            session?.onCommand { q.decide($0) }
            holds = q
        }
        defer { holds?.cancelAll() }
        let audit = Runner.beginAudit(prepared)
        func runAndAudit() throws(Failure) -> Int32 {
            defer {
                // If the agent never started (or its end was not seen): now, before the rest of the end.
                secretWatch?.sandboxEnded()
                let findings = Runner.finishAudit(audit, events: events)
                if !quiet { printFindings(findings) }
                for line in Paranoid.finish(prepared) { printError("\(line)") }
            }
            // The decoys' watches go as soon as the agent's last process has exited.
            return try Network.run(prepared, events: events, holds: holds, sandboxGone: { secretWatch?.sandboxEnded() })
        }
        let status: Int32
        do throws(Failure) { status = try runAndAudit() } catch {
            end(error.status, summary: false)
            throw error
        }
        end(status)
        exit(status)
    } catch {
        if !error.message.isEmpty { printError("\(error.message)") }
        if error.status == 2 { printError("see agentpen --help") }
        exit(error.status)
    }
}
