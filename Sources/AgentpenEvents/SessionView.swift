import FoundationEssentials
import Glibc

/// What `agentpen watch` shows of one session, built from its events: the run's
/// project, agent and uptime, blocks ranked by count, traffic per allowed host
/// and the recent decisions. Every string in it came from an event whose subject
/// the sandbox chose, so it is rendered only as `TerminalText` (escaped).
/// Bounded: at most `limit` distinct blocks and hosts, `recentLimit` decisions.
public struct SessionView: Sendable {
    public struct Traffic: Sendable, Equatable {
        public var connections = 0
        public var bytesUp = 0
        public var bytesDown = 0
    }

    struct BlockKey: Hashable { var kind: String; var subject: String }

    public let id: String
    public private(set) var project: String?
    public private(set) var agent: String?
    public private(set) var profile: String?
    public private(set) var hosts: String?
    public private(set) var started: Date?
    public private(set) var ended: Date?
    public private(set) var endStatus: String?
    public private(set) var allowed = 0
    public private(set) var refused = 0
    /// `--audit`: connections let through that a normal run refuses.
    public private(set) var wouldBlock = 0
    public private(set) var lastSeq = 0
    var blocks: [BlockKey: (count: Int, reason: String)] = [:]
    var blocksElsewhere = 0
    public private(set) var traffic: [String: Traffic] = [:]
    public private(set) var recent: [Event] = []
    /// `--ask`: connections held now, oldest first (a connection-held event not
    /// yet answered by an allowed or blocked event with the same hold).
    public private(set) var waiting: [Held] = []

    public struct Held: Sendable, Equatable {
        public var hold: String
        public var host: String
        public var agent: String?
        public var process: String?
        public var since: Date
        public var timeout: String?
    }

    /// The keys `agentpen watch` answers the oldest held connection with.
    public static let promptKeys: [(key: Character, choice: String, words: String)] = [
        ("o", "once", "once"), ("s", "session", "this session"), ("a", "save-agent", "save for the agent"),
        ("p", "save-project", "save for the project"), ("d", "deny", "deny"),
    ]

    public static let limit = 1000
    public static let recentLimit = 200

    public init(id: String) { self.id = id }

    public var hasEnded: Bool { ended != nil }

    public mutating func add(_ e: Event) {
        if let s = e.seq { lastSeq = max(lastSeq, s) }
        if let h = e.details["hold"] {
            if e.kind == .connectionHeld {
                if waiting.count < Self.limit {
                    waiting.append(Held(hold: h, host: e.subject, agent: e.details["agent"], process: e.details["process"],
                                        since: e.time, timeout: e.details["timeout-s"]))
                }
            } else {
                waiting.removeAll { $0.hold == h }
            }
        }
        switch e.kind {
        case .runStart:
            started = e.time
            project = e.details["project"]; agent = e.details["agent"]
            profile = e.details["profile"]; hosts = e.details["hosts"]
            return
        case .runEnd:
            ended = e.time
            endStatus = e.details["status"]
            return
        case .tunnelClosed:
            if traffic[e.subject] != nil || traffic.count < Self.limit {
                traffic[e.subject, default: Traffic()].bytesUp += Int(e.details["bytes-up"] ?? "") ?? 0
                traffic[e.subject, default: Traffic()].bytesDown += Int(e.details["bytes-down"] ?? "") ?? 0
            }
            return
        case .connectionAllowed:
            allowed += 1
            if traffic[e.subject] != nil || traffic.count < Self.limit { traffic[e.subject, default: Traffic()].connections += 1 }
        case .wouldBlock:
            wouldBlock += 1
            let key = BlockKey(kind: e.kind.rawValue, subject: e.subject)
            if let b = blocks[key] { blocks[key] = (b.count + 1, b.reason) }
            else if blocks.count < Self.limit { blocks[key] = (1, e.reason) }
            else { blocksElsewhere += 1 }
        default:
            if e.isBlock || e.isRefusal || e.isPersistence {
                refused += e.isPersistence ? 0 : 1
                let key = BlockKey(kind: e.kind.rawValue, subject: e.subject)
                if let b = blocks[key] { blocks[key] = (b.count + 1, b.reason) }
                else if blocks.count < Self.limit { blocks[key] = (1, e.reason) }
                else { blocksElsewhere += 1 }
            }
        }
        recent.append(e)
        if recent.count > Self.recentLimit { recent.removeFirst(recent.count - Self.recentLimit) }
    }

    /// Blocks, most frequent first (ties by kind and subject).
    public var rankedBlocks: [(kind: String, subject: String, count: Int, reason: String)] {
        blocks.map { ($0.key.kind, $0.key.subject, $0.value.count, $0.value.reason) }
            .sorted { ($1.count, $0.kind, $0.subject) < ($0.count, $1.kind, $1.subject) }
    }

    // MARK: Rendering

    public struct Style: Sendable {
        public var colour: Bool
        public var width: Int
        public var height: Int
        public init(colour: Bool, width: Int, height: Int) {
            self.colour = colour; self.width = max(40, width); self.height = max(12, height)
        }
    }

    /// The screen, one `TerminalText` per line, each at most `style.width` wide.
    /// `live`: agentpen still runs this session (its control socket answers).
    public func render(now: Date, style: Style, live: Bool) -> [TerminalText] {
        let w = style.width
        func paint(_ t: TerminalText, _ code: TerminalText) -> TerminalText {
            style.colour ? "\u{1b}[" + code + "m" + t.truncated(to: w) + "\u{1b}[0m" : t.truncated(to: w)
        }
        var lines: [TerminalText] = []
        let state: TerminalText
        if let ended {
            state = "ended" + (endStatus.map { " (status \($0))" } ?? "") + " " + Self.clock(ended)
        } else {
            state = live ? "running" : "ended (agentpen stopped without a run-end event)"
        }
        let upto = ended ?? (live ? now : (recent.last?.time ?? now))
        let uptime = started.map { Self.duration(upto.timeIntervalSince($0)) } ?? "?"
        lines.append(paint("agentpen watch · session \(id) · " + state + " · uptime \(uptime)", "1"))
        lines.append(paint("project \(project ?? "?") · agent \(agent ?? "?") · profile \(profile ?? "?") · \(hosts ?? "?") hosts allowed", "0"))
        if live, let w = waiting.first {
            var who: TerminalText = "agent \(w.agent ?? "?")"
            if let p = w.process { who += ", process \(p)" }
            let keys = Self.promptKeys.map { "[\($0.key)] \($0.words)" }.joined(separator: "  ")
            let more: TerminalText = waiting.count > 1 ? " (+\(waiting.count - 1) more waiting)" : ""
            lines.append(paint("WAITING " + Self.text("\(w.host)") + " wants to connect (\(who)), up to \(w.timeout ?? "?") s" + more, "1;7;33"))
            lines.append(paint("  \(keys)   or: agentpen allow " + Self.text("\(w.host)") + " --once|--session|--save agent|project|--deny", "1;33"))
        }
        lines.append(paint("\(allowed) connections allowed · \(refused) refused"
                           + (wouldBlock > 0 ? " · \(wouldBlock) would-block (--audit)" : ""), refused > 0 ? "33" : "32"))
        lines.append("")

        let ranked = rankedBlocks
        let traffic = self.traffic.sorted { ($1.value.bytesUp + $1.value.bytesDown, $0.key) < ($0.value.bytesUp + $0.value.bytesDown, $1.key) }
        // Room: the blocks and traffic take up to a third each, the rest is the stream.
        let room = style.height - lines.count - 7
        let blockRows = min(ranked.count, max(3, room / 3))
        let trafficRows = min(traffic.count, max(2, room / 4))
        lines.append(paint("BLOCKED, by count" + (ranked.isEmpty ? " (none)" : ""), "1;31"))
        for b in ranked.prefix(blockRows) {
            lines.append(paint(Self.blockRow("  ", b.count, b.kind, b.subject, b.reason), "31"))
        }
        let hidden = ranked.count - blockRows + blocksElsewhere
        if hidden > 0 { lines.append(paint("  … \(hidden) more (agentpen watch --json)", "2")) }
        lines.append("")
        lines.append(paint("TRAFFIC, allowed hosts" + (traffic.isEmpty ? " (none)" : ""), "1;32"))
        for (host, t) in traffic.prefix(trafficRows) { lines.append(paint(Self.trafficRow("  ", host, t), "32")) }
        lines.append("")
        lines.append(paint("RECENT decisions", "1"))
        let streamRows = max(1, style.height - lines.count - 1)
        for e in recent.suffix(streamRows) {
            let verdict = Self.verdict(e)
            let row: TerminalText = "  \(Self.clock(e.time))  " + verdict.padded(to: 8) + " \(e.kind.rawValue) \(e.subject): \(e.reason)"
            lines.append(paint(row, Self.colour(verdict)))
        }
        return Array(lines.prefix(style.height))
    }

    static func text(_ t: TerminalText) -> TerminalText { t }

    /// One row of the blocks table: `lead` (indent, and the session in a view of several), then count, kind, subject, reason.
    static func blockRow(_ lead: TerminalText, _ count: Int, _ kind: String, _ subject: String, _ reason: String) -> TerminalText {
        let n: TerminalText = "\(count)"
        return lead + n.padded(to: 6) + " " + text("\(kind)").padded(to: 20) + " " + text("\(subject)").padded(to: 34) + "  \(reason)"
    }

    /// One row of the traffic table: `lead` (indent, and the session in a view of several), the host, its counts.
    static func trafficRow(_ lead: TerminalText, _ host: String, _ t: Traffic) -> TerminalText {
        let conns: TerminalText = "\(t.connections) conn"
        return lead + text("\(host)").padded(to: 34) + " " + conns.padded(to: 10)
            + " up \(bytes(t.bytesUp)) · down \(bytes(t.bytesDown))"
    }

    /// The word a decision is shown with in the stream.
    static func verdict(_ e: Event) -> TerminalText {
        e.kind == .connectionAllowed || e.kind == .dnsAnswered ? "allowed" : e.isPersistence ? "finding"
            : e.kind == .secretRead ? "secret" : e.kind == .wouldBlock ? "audit" : e.kind == .connectionHeld ? "waiting" : "refused"
    }

    static func colour(_ verdict: TerminalText) -> TerminalText {
        verdict == "allowed" ? "2" : verdict == "finding" || verdict == "audit" ? "35" : verdict == "secret" ? "1;33"
            : verdict == "waiting" ? "33" : "31"
    }

    static func clock(_ d: Date) -> TerminalText {
        // The local time of day through the C library (the zone from TZ or
        // /etc/localtime), so that no calendar database is linked in.
        var t = time_t(d.timeIntervalSince1970.rounded(.down))
        var c = tm()
        guard localtime_r(&t, &c) != nil else { return "--:--:--" }
        func two(_ v: Int32) -> String { let s = String(v); return s.count < 2 ? "0" + s : s }
        return "\(two(c.tm_hour)):\(two(c.tm_min)):\(two(c.tm_sec))"
    }

    static func duration(_ t: TimeInterval) -> String {
        let s = max(0, Int(t))
        let sec = s % 60 < 10 ? "0\(s % 60)" : "\(s % 60)"
        if s >= 3600 { let m = s / 60 % 60; return "\(s / 3600):\(m < 10 ? "0" : "")\(m):\(sec)" }
        return "\(s / 60):\(sec)"
    }

    static func bytes(_ n: Int) -> String {
        if n < 1024 { return "\(n) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var v = Double(n) / 1024
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        // One decimal, rounded half up (what "%.1f" printed; no formatter linked in).
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[i])"
    }
}

/// The refusals file the sandbox reads (`SessionPolicy.refusalsFile`): each
/// distinct refusal so far, how often, why, and the flag that would permit it.
/// Its text is escaped like the terminal's: an agent may show it to its user.
public struct RefusalList: Sendable {
    struct Key: Hashable { var kind: String; var subject: String }
    private var order: [Key] = []
    private var entries: [Key: (count: Int, reason: String, permit: String?)] = [:]
    public private(set) var more = 0
    public static let limit = 200

    public init() {}

    /// Adds a refusal; true when the file's text changed enough to rewrite it
    /// (a new entry; a repeat only bumps a count, written with the next change).
    @discardableResult
    public mutating func add(_ e: Event) -> Bool {
        let key = Key(kind: e.kind.rawValue, subject: e.subject)
        if let old = entries[key] {
            entries[key] = (old.count + 1, old.reason, old.permit ?? e.details["permit"])
            return false
        }
        guard order.count < Self.limit else { more += 1; return false }
        order.append(key)
        entries[key] = (1, e.reason, e.details["permit"])
        return true
    }

    public var text: String {
        var out: TerminalText = """
            # agentpen: what this sandbox was refused so far (this file is rewritten as refusals happen;
            # nothing inside can change it). Each line: what, how often, why, and the flag for the
            # agentpen command line that would permit it. Tell the user; only they can add it.

            """
        for k in order {
            guard let e = entries[k] else { continue }
            let permit: TerminalText = e.permit.map { "\($0)" } ?? "no flag permits this"
            out += "\(k.kind) \(k.subject) (\(e.count)x): \(e.reason) -> " + permit + "\n"
        }
        if more > 0 { out += "\(more) more refusals not listed\n" }
        return out.rendered
    }
}
