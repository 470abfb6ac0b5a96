import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import CShim
import FoundationEssentials
import Glibc

/// Finding a session for `watch` and `suggest`: the one named (an ID, never a
/// path), or the newest in this user's sessions directory.
enum SessionLookup {
    static func refuse(_ m: TerminalText) -> Never {
        printError(m)
        exit(2)
    }

    /// This user's sessions directory, open, and how to name it to the user.
    struct Sessions: ~Copyable {
        let fd: Descriptor
        let shown: String
    }
    /// A session directory, open.
    struct Found: ~Copyable {
        let id: String
        let dir: Descriptor
    }

    /// This user's sessions directory, opened, and how to name it to the user.
    static func base() -> Sessions {
        let env = Host.environment
        let home = env["HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? Host.passwdHome(uid: getuid()) ?? "/"
        let stateHome = XDGPaths.stateHome(env: env, home: home)
        let shown = XDGPaths.sessions(env: env, home: home)
        guard let base = try? SessionStore.openBase(stateHome: stateHome, create: false) else {
            refuse("no session in \(shown) (each run of agentpen makes one; XDG_STATE_HOME must be the run's)")
        }
        return Sessions(fd: base.fd, shown: shown)
    }

    static func find(_ requested: String?) -> Found {
        if let requested, !SessionPolicy.isValidID(requested) {
            refuse("\(requested) is not a session ID (YYYYMMDD-HHMMSS-PID, as the start line and agentpen watch show it)")
        }
        let sessions = base()
        let base = sessions.fd.raw, shown = sessions.shown
        guard let id = requested ?? SessionPolicy.newest(SessionStore.list(base)) else {
            refuse("no session in \(shown) (each run of agentpen makes one; XDG_STATE_HOME must be the run's)")
        }
        guard let dir = SessionStore.open(base: base, id: id) else { refuse("no session \(id) in \(shown)") }
        return Found(id: id, dir: dir)
    }

    /// Reads what was appended to `fd` since the last call.
    static func readNew(_ fd: Int32, _ decoder: EventLineDecoder) -> [Event] {
        var events: [Event] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            events += buf.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        }
        return events.filter { $0.v == Event.schemaVersion }
    }
}

/// `agentpen watch [--json] [SESSION]`: follows a session until it ends. The
/// events file is the record; the control socket says the run is alive and
/// wakes us at each new event. On a terminal: a screen redrawn in place (colour
/// unless NO_COLOR), left standing at the end; otherwise the final view once.
/// `--json`: every event line, re-encoded, as it comes.
enum Watch {
    static func main(sessions: [String], all: Bool, json: Bool) -> Never {
        if all || sessions.count > 1 { WatchSeveral.main(ids: sessions, all: all, json: json) }
        main(session: sessions.first, json: json)
    }

    static func main(session: String?, json: Bool) -> Never {
        let found = SessionLookup.find(session)
        let id = found.id, dir = found.dir.raw
        guard let events = SessionStore.openFile(dir: dir, name: SessionPolicy.eventsName) else {
            printError("session \(id) has no events file")
            exit(2)
        }
        let env = Host.environment
        let tty = !json && isatty(1) == 1
        let colour = tty && (env["NO_COLOR"] ?? "").isEmpty && env["TERM"] != "dumb"
        let file = events.raw
        var view = SessionView(id: id)
        let decoder = EventLineDecoder()
        var control = SessionStore.connect(dir: dir)
        if tty { TerminalText("\u{1b}[H\u{1b}[2J").write(to: 1) }
        // --ask prompts: keys from the terminal answer the oldest held connection.
        let keys = tty && isatty(0) == 1 && Keys.raw()
        var scratch = [UInt8](repeating: 0, count: 65536)
        var replyLine: [UInt8] = []
        while true {
            for e in SessionLookup.readNew(file, decoder) {
                view.add(e)
                if json { writeLine(e.jsonLine()) }
            }
            guard !view.hasEnded, let controlFD = control?.raw else { break }
            if tty { draw(view, colour: colour, live: true, status: Keys.status) }
            var p = [pollfd(fd: controlFD, events: Int16(POLLIN), revents: 0), pollfd(fd: keys ? 0 : -1, events: Int16(POLLIN), revents: 0)]
            let r = poll(&p, 2, 1000)
            if r > 0 && p[1].revents & Int16(POLLIN) != 0 {
                var key: UInt8 = 0
                if read(0, &key, 1) == 1, let held = view.waiting.first,
                   let k = SessionView.promptKeys.first(where: { $0.key.asciiValue == key }),
                   let choice = ApprovalChoice(rawValue: k.choice) {
                    let line = Array(ControlCommand(host: held.host, choice: choice).line.utf8)
                    _ = line.withUnsafeBytes { ap_send_nosignal(controlFD, $0.baseAddress, $0.count) }
                    Keys.status = "sent: \(k.words) for \(held.host)"
                }
            }
            if r > 0 && p[0].revents != 0 {
                let n = recv(controlFD, &scratch, scratch.count, 0)
                if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) {
                    // The run ended, or dropped us for being slow: reconnect if it lives.
                    control = nil    // closes it
                    control = SessionStore.connect(dir: dir)
                    replyLine = []
                } else if n > 0 {
                    // Event lines wake us; an "ok"/"error" line answers a key.
                    replyLine += scratch[0..<n]
                    while let nl = replyLine.firstIndex(of: 0x0a) {
                        let text = String(decoding: replyLine[..<nl], as: UTF8.self)
                        replyLine.removeSubrange(...nl)
                        if text.hasPrefix("ok ") || text.hasPrefix("error ") { Keys.status = "\(text)" }
                    }
                    if replyLine.count > 1 << 20 { replyLine = [] }
                }
            }
        }
        if keys { Keys.restore() }
        for e in SessionLookup.readNew(file, decoder) {
            view.add(e)
            if json { writeLine(e.jsonLine()) }
        }
        control = nil
        if tty {
            draw(view, colour: colour, live: false)
            TerminalText("\n").write(to: 1)
        } else if !json {
            let lines = view.render(now: Date(), style: .init(colour: false, width: 160, height: 60), live: false)
            (lines.joined(separator: "\n") + "\n").write(to: 1)
        }
        exit(0)
    }

    /// One JSON line to stdout (jsonLine has escaped what a terminal would act on).
    static func writeLine(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { TerminalText.writeAll(1, $0) }
    }

    /// Redraws in place: home, each line cleared to its end, the rest cleared.
    /// Two rows are left free, so a shell prompt after the end scrolls nothing away.
    static func draw(_ view: SessionView, colour: Bool, live: Bool, status: TerminalText? = nil) {
        var rows: Int32 = 24, cols: Int32 = 80
        if ap_terminal_size(1, &rows, &cols) != 0 || rows <= 0 || cols <= 0 { rows = 24; cols = 80 }
        var lines = view.render(now: Date(), style: .init(colour: colour, width: Int(cols), height: Int(rows) - 2), live: live)
        // The answer to the last key, under the prompt (the prompt's two lines follow the title).
        if let status, live, status.width > 0, lines.count > 3 {
            lines.insert(status.truncated(to: Int(cols)), at: view.waiting.isEmpty ? 1 : 3)
            lines = Array(lines.prefix(Int(rows) - 2))
        }
        var out: TerminalText = "\u{1b}[H"
        out += lines.joined(separator: "\u{1b}[K\n")
        out += "\u{1b}[K\n\u{1b}[J"
        out.write(to: 1)
    }
}

/// The watch terminal's keys for `--ask` prompts: no echo, no line buffering
/// (signals still work); restored at the end and on SIGINT/SIGTERM.
enum Keys {
    nonisolated(unsafe) static var saved = termios()
    nonisolated(unsafe) static var status: TerminalText = ""

    static func raw() -> Bool {
        guard tcgetattr(0, &saved) == 0 else { return false }
        var t = saved
        t.c_lflag &= ~tcflag_t(ICANON | ECHO)
        t.c_cc.6 = 1   // VMIN
        t.c_cc.5 = 0   // VTIME
        guard tcsetattr(0, TCSANOW, &t) == 0 else { return false }
        let handler: @convention(c) (Int32) -> Void = { sig in
            tcsetattr(0, TCSANOW, &Keys.saved)
            signal(sig, SIG_DFL)
            raise(sig)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        return true
    }

    static func restore() { tcsetattr(0, TCSANOW, &saved) }
}

/// `agentpen suggest [SESSION]`: the hosts a session was refused, as the flags
/// that would permit them (as the deciding code named them) and as preset or
/// config lines.
enum Suggest {
    static func main(session: String?) -> Never {
        let found = SessionLookup.find(session)
        let id = found.id
        guard let file = SessionStore.openFile(dir: found.dir.raw, name: SessionPolicy.eventsName) else {
            printError("session \(id) has no events file")
            exit(2)
        }
        // Refusals, and what --audit let through that a normal run would refuse.
        let events = SessionLookup.readNew(file.raw, EventLineDecoder()).filter { $0.isRefusal || $0.kind == .wouldBlock }
        // A name --audit let through whose every connection was then refused with no
        // flag that permits it (it resolves to loopback, say) is not suggested: no
        // flag would make it work.
        let unpermitted = Set(events.filter { $0.isRefusal && $0.details["permit"] == nil }.map(\.subject))
        let permits = events.compactMap { e in
            e.kind == .wouldBlock && unpermitted.contains(e.subject) ? nil : e.details["permit"]
        }
        guard let s = Permit.suggestion(permits) else {
            var t: TerminalText = "# nothing was refused in session \(id) that a flag would permit"
            if !events.isEmpty { t += " (\(events.count) refusals no flag permits: agentpen watch \(id))" }
            (t + "\n").write(to: 1)
            exit(0)
        }
        var out: TerminalText = "# the hosts session \(id) was refused or (--audit) would have been, as flags for the agentpen command line:\n"
        out += "\(s.flags)\n"
        out += "# or as lines of a preset or config file:\n"
        for line in s.config { out += "\(line)\n" }
        let unpermittedCount = events.filter { $0.details["permit"] == nil }.count
        if unpermittedCount > 0 { out += "# and \(unpermittedCount) refusals no flag permits (firewall, IP literals, loopback …): agentpen watch \(id)\n" }
        out.write(to: 1)
        exit(0)
    }
}
