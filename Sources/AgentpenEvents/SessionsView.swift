import FoundationEssentials
import Glibc

/// What `agentpen watch` shows when it follows several sessions (`--all`, or
/// several IDs): one line per session (state, uptime, project, agent, counts),
/// then the blocks of all of them ranked by count, the traffic per host and the
/// merged stream of recent decisions, each line naming its session.
public enum SessionsView {
    public struct Followed: Sendable {
        public var view: SessionView
        /// agentpen still runs it (its control socket answers).
        public var live: Bool
        public init(view: SessionView, live: Bool) { self.view = view; self.live = live }
    }

    public static func render(_ sessions: [Followed], now: Date, style: SessionView.Style) -> [TerminalText] {
        let w = style.width
        func paint(_ t: TerminalText, _ code: TerminalText) -> TerminalText {
            style.colour ? "\u{1b}[" + code + "m" + t.truncated(to: w) + "\u{1b}[0m" : t.truncated(to: w)
        }
        let running = sessions.filter { $0.live && !$0.view.hasEnded }.count
        var lines: [TerminalText] = [paint("agentpen watch · \(sessions.count) sessions · \(running) running", "1")]
        for s in sessions {
            let v = s.view
            let state: TerminalText = v.hasEnded ? "ended" + (v.endStatus.map { " (status \($0))" } ?? "")
                : s.live ? "running" : "ended (agentpen stopped without a run-end event)"
            let upto = v.ended ?? (s.live ? now : (v.recent.last?.time ?? now))
            let uptime = v.started.map { SessionView.duration(upto.timeIntervalSince($0)) } ?? "?"
            let row: TerminalText = "  \(v.id)  " + state + " · uptime \(uptime) · project \(v.project ?? "?") · agent \(v.agent ?? "?")"
                + " · \(v.allowed) allowed · \(v.refused) refused"
            lines.append(paint(row, v.refused > 0 ? "33" : "32"))
        }
        lines.append("")

        var ranked: [(id: String, kind: String, subject: String, count: Int, reason: String)] = []
        var hidden = 0
        for s in sessions {
            ranked += s.view.rankedBlocks.map { (s.view.id, $0.kind, $0.subject, $0.count, $0.reason) }
            hidden += s.view.blocksElsewhere
        }
        ranked.sort { ($1.count, $0.id, $0.kind, $0.subject) < ($0.count, $1.id, $1.kind, $1.subject) }
        var traffic: [(id: String, host: String, t: SessionView.Traffic)] = []
        for s in sessions { traffic += s.view.traffic.map { (s.view.id, $0.key, $0.value) } }
        traffic.sort { ($1.t.bytesUp + $1.t.bytesDown, $0.id, $0.host) < ($0.t.bytesUp + $0.t.bytesDown, $1.id, $1.host) }

        let room = style.height - lines.count - 7
        let blockRows = min(ranked.count, max(3, room / 3))
        let trafficRows = min(traffic.count, max(2, room / 4))
        lines.append(paint("BLOCKED, by count" + (ranked.isEmpty ? " (none)" : ""), "1;31"))
        for b in ranked.prefix(blockRows) {
            lines.append(paint(SessionView.blockRow("  \(b.id)  ", b.count, b.kind, b.subject, b.reason),
                               b.kind == Event.Kind.secretRead.rawValue ? "1;33" : "31"))
        }
        hidden += ranked.count - blockRows
        if hidden > 0 { lines.append(paint("  … \(hidden) more (agentpen watch --json)", "2")) }
        lines.append("")
        lines.append(paint("TRAFFIC, allowed hosts" + (traffic.isEmpty ? " (none)" : ""), "1;32"))
        for x in traffic.prefix(trafficRows) { lines.append(paint(SessionView.trafficRow("  \(x.id)  ", x.host, x.t), "32")) }
        lines.append("")
        lines.append(paint("RECENT decisions", "1"))
        let streamRows = max(1, style.height - lines.count - 1)
        var recent: [(id: String, e: Event)] = []
        for s in sessions { recent += s.view.recent.suffix(streamRows).map { (s.view.id, $0) } }
        recent.sort { ($0.e.time, $0.id, $0.e.seq ?? 0) < ($1.e.time, $1.id, $1.e.seq ?? 0) }
        for (id, e) in recent.suffix(streamRows) {
            let verdict = SessionView.verdict(e)
            let row: TerminalText = "  \(SessionView.clock(e.time))  \(id)  " + verdict.padded(to: 8) + " \(e.kind.rawValue) \(e.subject): \(e.reason)"
            lines.append(paint(row, SessionView.colour(verdict)))
        }
        return Array(lines.prefix(style.height))
    }
}
