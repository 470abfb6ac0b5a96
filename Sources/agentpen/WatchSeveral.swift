import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import CShim
import FoundationEssentials
import Glibc

/// `agentpen watch [--json] --all` and `agentpen watch [--json] ID ID...`:
/// several sessions followed together, as `Watch` follows one (each events
/// file is the record, each control socket says the run lives and wakes us).
/// `--all`: every session whose run answers now, and each one that starts
/// while we watch; the watch ends when none runs. Named IDs: until each has
/// ended. On a terminal one screen (SessionsView), every line naming its
/// session; `--json`: every event line with its `session`.
enum WatchSeveral {
    final class Followed {
        let id: String
        let dir: Descriptor
        let file: Descriptor
        let decoder = EventLineDecoder()
        var view: SessionView
        /// The control socket while the run answers; setting nil closes it.
        var control: Descriptor?
        var done = false
        init(id: String, dir: consuming Descriptor, file: consuming Descriptor, control: consuming Descriptor?) {
            self.id = id; self.dir = dir; self.file = file; self.control = control
            view = SessionView(id: id)
        }
        var isLive: Bool { control?.raw != nil }
    }

    static func main(ids: [String], all: Bool, json: Bool) -> Never {
        for id in ids where !SessionPolicy.isValidID(id) {
            SessionLookup.refuse("\(id) is not a session ID (YYYYMMDD-HHMMSS-PID, as the start line and agentpen watch show it)")
        }
        let sessions = SessionLookup.base()
        let base = sessions.fd.raw, shown = sessions.shown
        var followed: [Followed] = []
        var known = Set<String>()
        /// Opens a session to follow; with `liveOnly`, only one whose run answers.
        func open(_ id: String, liveOnly: Bool) -> Followed? {
            guard let dir = SessionStore.open(base: base, id: id) else { return nil }
            let control = SessionStore.connect(dir: dir.raw)
            let answers: Bool
            switch control { case .some: answers = true; case .none: answers = false }
            // A nil return drops (closes) the directory and the connection.
            guard let file = SessionStore.openFile(dir: dir.raw, name: SessionPolicy.eventsName),
                  !liveOnly || answers else { return nil }
            return Followed(id: id, dir: dir, file: file, control: control)
        }
        // A session not yet answering is looked at again on the next scan (its
        // run may be between making the directory and listening).
        func scan() {
            for id in SessionStore.list(base).sorted() where SessionPolicy.isValidID(id) && !known.contains(id) {
                if let f = open(id, liveOnly: true) { known.insert(id); followed.append(f) }
            }
        }
        if all {
            scan()
            if followed.isEmpty { SessionLookup.refuse("no session is running in \(shown) (agentpen watch ID reads an ended one)") }
        } else {
            for id in ids where !known.contains(id) {
                known.insert(id)
                guard let f = open(id, liveOnly: false) else { SessionLookup.refuse("no session \(id) in \(shown)") }
                followed.append(f)
            }
        }

        let env = Host.environment
        let tty = !json && isatty(1) == 1
        let colour = tty && (env["NO_COLOR"] ?? "").isEmpty && env["TERM"] != "dumb"
        if tty { TerminalText("\u{1b}[H\u{1b}[2J").write(to: 1) }
        func readAll(_ f: Followed) {
            for var e in SessionLookup.readNew(f.file.raw, f.decoder) {
                f.view.add(e)
                if json {
                    e.session = f.id
                    Watch.writeLine(e.jsonLine())
                }
            }
        }
        func screen(live: Bool) -> [SessionsView.Followed] {
            followed.map { SessionsView.Followed(view: $0.view, live: live && $0.isLive) }
        }
        var scratch = [UInt8](repeating: 0, count: 65536)
        while true {
            for f in followed where !f.done {
                readAll(f)
                if f.view.hasEnded || !f.isLive {
                    readAll(f)
                    f.done = true
                    f.control = nil    // closes it
                }
            }
            if all { scan() }
            let live = followed.filter { !$0.done }
            if live.isEmpty { break }
            if tty { draw(screen(live: true), colour: colour) }
            var fds = live.map { pollfd(fd: $0.control?.raw ?? -1, events: Int16(POLLIN), revents: 0) }
            let r = poll(&fds, nfds_t(fds.count), 1000)
            guard r > 0 else { continue }
            for (f, p) in zip(live, fds) where p.revents != 0 {
                let n = recv(p.fd, &scratch, scratch.count, 0)
                if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) {
                    // The run ended, or dropped us for being slow: reconnect if it lives.
                    f.control = nil    // closes it
                    f.control = SessionStore.connect(dir: f.dir.raw)
                }
            }
        }
        if tty {
            draw(screen(live: false), colour: colour)
            TerminalText("\n").write(to: 1)
        } else if !json {
            let lines = SessionsView.render(screen(live: false), now: Date(), style: .init(colour: false, width: 200, height: 80))
            (lines.joined(separator: "\n") + "\n").write(to: 1)
        }
        exit(0)
    }

    static func draw(_ sessions: [SessionsView.Followed], colour: Bool) {
        var rows: Int32 = 24, cols: Int32 = 80
        if ap_terminal_size(1, &rows, &cols) != 0 || rows <= 0 || cols <= 0 { rows = 24; cols = 80 }
        let lines = SessionsView.render(sessions, now: Date(), style: .init(colour: colour, width: Int(cols), height: Int(rows) - 2))
        var out: TerminalText = "\u{1b}[H"
        out += lines.joined(separator: "\u{1b}[K\n")
        out += "\u{1b}[K\n\u{1b}[J"
        out.write(to: 1)
    }
}
