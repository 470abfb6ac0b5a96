import FoundationEssentials
import Glibc

/// One allow/deny decision or notable happening. Every layer that decides
/// something (proxy, DNS responder, sandbox set-up) reports through `EventSink`,
/// so logging, a live view or an audit mode need to hook in only once.
public struct Event: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case connectionAllowed = "connection-allowed"
        case connectionBlocked = "connection-blocked"
        case dnsAnswered = "dns-answered"
        case dnsRefused = "dns-refused"
        case persistenceRemoved = "persistence-removed"
        /// Something the run planted that git would run, renamed aside.
        case persistenceMoved = "persistence-moved"
        /// A file a shell or editor runs later, created or changed by the run: reported, left as it is.
        case persistenceFound = "persistence-found"
        /// A syscall the seccomp policy refused, with the process that made it.
        case syscallRefused = "syscall-refused"
        /// A well-known secret path of the private home was opened (an empty
        /// decoy of agentpen's, `SecretDecoys`); subject: the path inside.
        case secretRead = "secret-read"
        case setup = "setup"
        case failure = "failure"
        /// The run began (details: project, agent, profile, hosts, pid).
        case runStart = "run-start"
        /// The run ended (details: status), after the persistence audit.
        case runEnd = "run-end"
        /// An allowed tunnel ended (details: bytes-up, bytes-down, duration-ms, upstream).
        case tunnelClosed = "tunnel-closed"
        /// `--audit`: an unlisted name let through that a normal run would have
        /// refused (details: permit, the flag that would allow it).
        case wouldBlock = "would-block"
        /// `--ask`: a connection to an unlisted name waits for the user's decision
        /// (details: hold, agent, process, timeout-s, permit); its outcome is a
        /// connection-allowed or connection-blocked event with the same hold.
        case connectionHeld = "connection-held"
    }

    /// The version of the line format (README: "Events"). A reader skips a
    /// line whose `v` it does not know; fields are only ever added within one.
    public static let schemaVersion = 1

    public var v: Int = Event.schemaVersion
    /// Position in the run's log, from 1, given by `EventLog` (nil before that).
    public var seq: Int?

    public var time: Date
    public var kind: Kind
    /// The host name, DNS question or path the decision was about.
    public var subject: String
    /// Why: the rule that matched or the reason for refusal, in words.
    public var reason: String
    /// Extra facts (upstream address, byte counts, client port), all strings.
    public var details: [String: String]
    /// The session the event belongs to, set only where one stream carries
    /// several (`agentpen watch --json --all`); never in events.jsonl, whose
    /// directory names it.
    public var session: String?

    public init(_ kind: Kind, subject: String, reason: String,
                details: [String: String] = [:], time: Date = Date()) {
        self.kind = kind
        self.subject = subject
        self.reason = reason
        self.details = details
        self.time = time
    }

    public var isBlock: Bool {
        kind == .connectionBlocked || kind == .dnsRefused || kind == .failure || kind == .persistenceRemoved
            || kind == .syscallRefused
    }

    /// A refusal of something the sandbox asked for (a name, a flow), as listed
    /// in the refusals file and by `agentpen suggest`. The deciding code names the
    /// flag that would have permitted it in `details["permit"]`.
    /// Kinds other layers add count when named `…-refused` or `…-blocked`.
    /// A would-block event names a permit but was let through: not a refusal.
    public var isRefusal: Bool {
        kind != .wouldBlock && kind != .connectionHeld && (kind == .connectionBlocked || kind == .dnsRefused || kind == .secretRead
            || details["permit"] != nil || kind.rawValue.hasSuffix("-refused") || kind.rawValue.hasSuffix("-blocked"))
    }

    public var isPersistence: Bool {
        kind == .persistenceRemoved || kind == .persistenceMoved || kind == .persistenceFound
    }

    enum CodingKeys: String, CodingKey { case v, seq, time, kind, subject, reason, details, session }

    /// Lines without `v` (written before it existed) are version 1.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        v = try c.decodeIfPresent(Int.self, forKey: .v) ?? 1
        seq = try c.decodeIfPresent(Int.self, forKey: .seq)
        time = try c.decode(Date.self, forKey: .time)
        kind = try c.decode(Kind.self, forKey: .kind)
        subject = try c.decode(String.self, forKey: .subject)
        reason = try c.decode(String.self, forKey: .reason)
        details = try c.decodeIfPresent([String: String].self, forKey: .details) ?? [:]
        session = try c.decodeIfPresent(String.self, forKey: .session)
    }

    /// One JSON object, one line: the keys sorted, the time in ISO 8601 (UTC,
    /// whole seconds), absent optionals left out, exactly what JSONEncoder
    /// (`.sortedKeys`, `.withoutEscapingSlashes`, `.iso8601`) writes, which
    /// reads it back (EventLineDecoder; EventJSONTests compares the two byte for
    /// byte). Written by hand because every process that records an event paid
    /// for JSONEncoder's first use (~2 M instructions at start-up) and every
    /// connection for each later one.
    /// Strings escape the quote, the backslash and C0 controls as JSON does, and
    /// also DEL, C1 controls, bidi and other invisible characters
    /// (`TerminalText.isDangerous`) as `\uXXXX`, so `cat`, `tail -f` or `less` of
    /// the log cannot be turned against the user; the line decodes to the same event.
    public func jsonLine() -> String {
        var out = "{"
        out.reserveCapacity(160 + subject.utf8.count + reason.utf8.count + details.count * 32)
        out += "\"details\":{"
        var first = true
        for key in details.keys.sorted() {
            if !first { out += "," }
            first = false
            Self.appendJSON(key, to: &out)
            out += ":"
            Self.appendJSON(details[key]!, to: &out)
        }
        out += "},\"kind\":"
        Self.appendJSON(kind.rawValue, to: &out)
        out += ",\"reason\":"
        Self.appendJSON(reason, to: &out)
        if let seq { out += ",\"seq\":\(seq)" }
        if let session {
            out += ",\"session\":"
            Self.appendJSON(session, to: &out)
        }
        out += ",\"subject\":"
        Self.appendJSON(subject, to: &out)
        out += ",\"time\":\"" + Self.iso8601(time) + "\",\"v\":\(v)}"
        return out
    }

    /// `s` as a JSON string literal, quotes included (see `jsonLine`).
    static func appendJSON(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5c: out += "\\\\"
            case 0x08: out += "\\b"
            case 0x0c: out += "\\f"
            case 0x0a: out += "\\n"
            case 0x0d: out += "\\r"
            case 0x09: out += "\\t"
            case 0..<0x20: appendUnicodeEscape(UInt16(scalar.value), to: &out)
            case 0x7f...:
                if TerminalText.isDangerous(scalar) {
                    for unit in String(scalar).utf16 { appendUnicodeEscape(unit, to: &out) }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    private static func appendUnicodeEscape(_ unit: UInt16, to out: inout String) {
        let h = String(unit, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
    }

    /// `2026-12-01T23:49:37Z`: the UTC time, seconds rounded down.
    static func iso8601(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970.rounded(.down))
        var c = tm()
        guard gmtime_r(&t, &c) != nil else { return "1970-01-01T00:00:00Z" }
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let year = Int(c.tm_year) + 1900
        let y = year < 10 ? "000\(year)" : year < 100 ? "00\(year)" : year < 1000 ? "0\(year)" : "\(year)"
        return "\(y)-\(two(c.tm_mon + 1))-\(two(c.tm_mday))T\(two(c.tm_hour)):\(two(c.tm_min)):\(two(c.tm_sec))Z"
    }
}

/// Where events go. Thread-safe; called from any queue.
public protocol EventSink: Sendable {
    func record(_ event: Event)
}

/// Discards everything; for tests and helpers that have nowhere to report.
public struct NullSink: EventSink {
    public init() {}
    public func record(_ event: Event) {}
}
