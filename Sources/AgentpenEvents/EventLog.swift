import Synchronization

/// Writes JSON lines to a file descriptor (the event log) and keeps counts for
/// the summary printed at exit.
/// Invariant (under `state`'s lock): `blocked` holds at most `summaryLimit`
/// subjects, the blocked events beyond them are counted in `blockedElsewhere`,
/// and each event's line is written whole before the next one starts.
/// Sendable without `@unchecked`: the counts live in a Mutex.
public final class EventLog: EventSink, Sendable {
    private let fd: Int32?
    private struct Key: Hashable, Comparable {
        var kind: String
        var subject: String
        static func < (a: Key, b: Key) -> Bool { (a.kind, a.subject) < (b.kind, b.subject) }
    }
    private struct State {
        var blocked: [Key: Int] = [:]
        var allowedCount = 0
        var blockedElsewhere = 0
        var seq = 0
        /// Events per kind (a fixed set of keys).
        var kinds: [String: Int] = [:]
        /// `--audit`: names let through that a normal run refuses (bounded like `blocked`).
        var wouldBlock: [String: Int] = [:]
        var wouldBlockElsewhere = 0
        /// Secret paths opened (a fixed, small set: the decoys), with how often.
        var secrets: [String: Int] = [:]
    }
    private let state = Mutex(State())
    /// Called for each blocked event, e.g. to tell the user at once.
    private let onBlock: (@Sendable (Event) -> Void)?
    /// Called for every event with its numbered line, under the log's lock (so
    /// in `seq` order): the session's events.jsonl, watchers, refusals file.
    private let onRecord: (@Sendable (Event, String) -> Void)?

    /// The measurement switch of `make bench`'s eventcost case: allowed
    /// connections and their tunnels are not recorded at all (no seq, no JSON,
    /// no write, no watcher, no count). Never set in a normal run.
    private let dropsAllowed: Bool

    public init(fd: Int32? = nil, onBlock: (@Sendable (Event) -> Void)? = nil,
                onRecord: (@Sendable (Event, String) -> Void)? = nil, dropsAllowed: Bool = false) {
        self.fd = fd
        self.onBlock = onBlock
        self.onRecord = onRecord
        self.dropsAllowed = dropsAllowed
    }

    /// The variable that sets `dropsAllowed` (bench/bench.py's eventcost case).
    public static let benchDropAllowedVariable = "AGENTPEN_BENCH_DROP_ALLOWED_EVENTS"

    /// Distinct blocked subjects kept for the summary; the rest are only counted,
    /// so a sandbox asking for endless random names cannot grow agentpen's memory.
    public static let summaryLimit = 1000

    public func record(_ event: Event) {
        if dropsAllowed && (event.kind == .connectionAllowed || event.kind == .tunnelClosed) { return }
        var event = event
        state.withLock { s in
            s.seq += 1
            event.seq = s.seq
            let line = event.jsonLine() + "\n"
            let counted = event.isBlock || event.kind == .secretRead ? Self.attempts(event) : 1
            s.kinds[event.kind.rawValue, default: 0] = Self.add(s.kinds[event.kind.rawValue] ?? 0, counted)
            if event.isBlock {
                let key = Key(kind: event.kind.rawValue, subject: event.subject)
                let n = Self.attempts(event)
                if s.blocked[key] != nil || s.blocked.count < Self.summaryLimit { s.blocked[key] = Self.add(s.blocked[key] ?? 0, n) }
                else { s.blockedElsewhere = Self.add(s.blockedElsewhere, n) }
            } else if event.kind == .connectionAllowed { s.allowedCount += 1 }
            else if event.kind == .wouldBlock {
                if s.wouldBlock[event.subject] != nil || s.wouldBlock.count < Self.summaryLimit { s.wouldBlock[event.subject, default: 0] += 1 }
                else { s.wouldBlockElsewhere += 1 }
            }
            else if event.kind == .secretRead, s.secrets[event.subject] != nil || s.secrets.count < Self.summaryLimit {
                s.secrets[event.subject] = Self.add(s.secrets[event.subject] ?? 0, Self.attempts(event))
            }
            if let fd {
                var bytes = Array(line.utf8)
                _ = bytes.withUnsafeMutableBytes { TerminalText.writeAll(fd, UnsafeRawBufferPointer($0)) }
            }
            onRecord?(event, line)
        }
        if event.isBlock { onBlock?(event) }
    }

    /// How many attempts one event stands for: its `attempts` detail (a tally of
    /// repeats sent once, e.g. by the refused-flow reporter), else 1.
    static func attempts(_ event: Event) -> Int {
        guard let text = event.details["attempts"], let n = Int(text), n > 0 else { return 1 }
        return min(n, 1 << 40)
    }

    static func add(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : sum
    }

    /// How many decisions of each kind were recorded (kinds with none are absent);
    /// a refusal sent once for many repeats counts its `attempts`, as the summary does.
    public func counts() -> [String: Int] {
        state.withLock { $0.kinds }
    }

    /// The exit summary's counts line: "3 allowed, refused: dns-refused 2,
    /// connection-blocked 1; 1 persistence finding" (the kinds other layers add
    /// appear under their own names).
    public func countsLine() -> TerminalText {
        let k = counts()
        let refusals = k.filter { kind, _ in
            kind != Event.Kind.connectionAllowed.rawValue && kind != Event.Kind.dnsAnswered.rawValue
                && kind != Event.Kind.tunnelClosed.rawValue && kind != Event.Kind.runStart.rawValue
                && kind != Event.Kind.runEnd.rawValue && kind != Event.Kind.setup.rawValue
                && kind != Event.Kind.wouldBlock.rawValue && kind != Event.Kind.connectionHeld.rawValue
                && kind != Event.Kind.secretRead.rawValue && !kind.hasPrefix("persistence-")
        }.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        let findings = k.filter { $0.key.hasPrefix("persistence-") }.values.reduce(0, +)
        var t: TerminalText = "\(k[Event.Kind.connectionAllowed.rawValue] ?? 0) allowed, "
        t += refusals.isEmpty ? "nothing refused" : "refused: " + refusals.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        t += "; \(findings) persistence finding" + (findings == 1 ? "" : "s")
        if let w = k[Event.Kind.wouldBlock.rawValue] { t += "; \(w) would-block (--audit)" }
        if let h = k[Event.Kind.connectionHeld.rawValue] { t += "; \(h) held for a decision (--ask)" }
        if let n = k[Event.Kind.secretRead.rawValue] { t += "; \(n) secret read" + (n == 1 ? "" : "s") }
        return t
    }

    /// "would block 2 (--audit, let through): a.example ×3, b.example", or nil.
    public func wouldBlockSummary() -> TerminalText? {
        let (names, elsewhere) = state.withLock { ($0.wouldBlock, $0.wouldBlockElsewhere) }
        guard !names.isEmpty else { return nil }
        var items: [TerminalText] = names.sorted { $0.key < $1.key }.map {
            $0.value > 1 ? "\($0.key) ×\($0.value)" : "\($0.key)"
        }
        if elsewhere > 0 { items.append("\(elsewhere) more (see --log)") }
        return "would block \(names.count + elsewhere) (--audit, let through): " + items.joined(separator: ", ")
    }

    /// "secrets reached for: /home/u/.ssh/id_rsa ×2, /home/u/.netrc (…)" or nil
    /// when no decoy was opened. One line: every path is escaped.
    public func secretsLine() -> TerminalText? {
        let secrets = state.withLock { $0.secrets }
        guard !secrets.isEmpty else { return nil }
        let items: [TerminalText] = secrets.sorted { $0.key < $1.key }.map {
            $0.value > 1 ? "\($0.key) ×\($0.value)" : "\($0.key)"
        }
        return "secrets reached for: " + items.joined(separator: ", ")
            + " (empty decoys: the real files are not in the sandbox)"
    }

    /// "blocked 3: connection-blocked evil.example ×2, dns-refused x.test" or nil
    /// when nothing was blocked. One line: every subject is escaped.
    public func summary() -> TerminalText? {
        let (blocked, blockedElsewhere) = state.withLock { ($0.blocked, $0.blockedElsewhere) }
        guard !blocked.isEmpty else { return nil }
        let total = blocked.values.reduce(blockedElsewhere, Self.add)
        var items: [TerminalText] = blocked.sorted { $0.key < $1.key }.map {
            $0.value > 1 ? "\($0.key.kind) \($0.key.subject) ×\($0.value)" : "\($0.key.kind) \($0.key.subject)"
        }
        if blockedElsewhere > 0 { items.append("\(blockedElsewhere) more (see --log)") }
        return "blocked \(total): " + items.joined(separator: ", ")
    }
}
