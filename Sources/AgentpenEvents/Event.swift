import Foundation
import Synchronization

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
        case setup = "setup"
        case failure = "failure"
    }

    public var time: Date
    public var kind: Kind
    /// The host name, DNS question or path the decision was about.
    public var subject: String
    /// Why: the rule that matched or the reason for refusal, in words.
    public var reason: String
    /// Extra facts (upstream address, byte counts, client port), all strings.
    public var details: [String: String]

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
    }

    /// One JSON object, one line. JSONEncoder escapes only C0 controls, the
    /// quote and the backslash; DEL, C1 controls, bidi and other invisible
    /// characters (`TerminalText.isDangerous`) are escaped here as `\uXXXX`
    /// too, so `cat`, `tail -f` or `less` of the log cannot be turned against
    /// the user. They occur only inside JSON strings, so the line decodes to
    /// the same event.
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(self)) ?? Data("{}".utf8)
        return Self.escapeForLog(String(decoding: data, as: UTF8.self))
    }

    static func escapeForLog(_ json: String) -> String {
        guard json.unicodeScalars.contains(where: { $0.value >= 0x7f && TerminalText.isDangerous($0) }) else { return json }
        var out = ""
        out.reserveCapacity(json.utf8.count + 32)
        for s in json.unicodeScalars {
            if s.value >= 0x7f && TerminalText.isDangerous(s) {
                for unit in String(s).utf16 {
                    let h = String(unit, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                }
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }
}

/// Reads the event lines the namespace helper sends (one JSON `Event` a line).
/// The names in them came from the sandbox: a line that is not a valid event is
/// dropped and counted, a line longer than `maxLine` is dropped without being
/// held, and the work is linear in the bytes fed.
public final class EventLineDecoder {
    public static let maxLine = 64 * 1024
    private var pending: [UInt8] = []
    private var discarding = false
    /// Lines that were not an event (or too long).
    public private(set) var rejected = 0
    private let decoder: JSONDecoder

    public init() {
        decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
    }

    /// The complete events in `bytes` (and what earlier calls left pending).
    public func feed(_ bytes: UnsafeRawBufferPointer) -> [Event] {
        var events: [Event] = []
        var start = 0
        while start < bytes.count {
            let nl = bytes[start...].firstIndex(of: 10)
            let end = nl ?? bytes.count
            if !discarding {
                if pending.count + (end - start) > Self.maxLine {
                    pending.removeAll(keepingCapacity: false)
                    discarding = true
                    rejected += 1
                } else {
                    pending.append(contentsOf: bytes[start..<end])
                }
            }
            guard nl != nil else { break }
            if !discarding && !pending.isEmpty {
                if let e = try? decoder.decode(Event.self, from: Data(pending)) { events.append(e) }
                else { rejected += 1 }
            }
            pending.removeAll(keepingCapacity: true)
            discarding = false
            start = end + 1
        }
        return events
    }

    public func feed(_ bytes: [UInt8]) -> [Event] {
        bytes.withUnsafeBytes { feed($0) }
    }
}

/// Where events go. Thread-safe; called from any queue.
public protocol EventSink: Sendable {
    func record(_ event: Event)
}

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
    }
    private let state = Mutex(State())
    /// Called for each blocked event, e.g. to tell the user at once.
    private let onBlock: (@Sendable (Event) -> Void)?

    public init(fd: Int32? = nil, onBlock: (@Sendable (Event) -> Void)? = nil) {
        self.fd = fd
        self.onBlock = onBlock
    }

    /// Distinct blocked subjects kept for the summary; the rest are only counted,
    /// so a sandbox asking for endless random names cannot grow agentpen's memory.
    public static let summaryLimit = 1000

    public func record(_ event: Event) {
        let line = event.jsonLine() + "\n"
        state.withLock { s in
            if event.isBlock {
                let key = Key(kind: event.kind.rawValue, subject: event.subject)
                if s.blocked[key] != nil || s.blocked.count < Self.summaryLimit { s.blocked[key, default: 0] += 1 }
                else { s.blockedElsewhere += 1 }
            } else if event.kind == .connectionAllowed { s.allowedCount += 1 }
            if let fd {
                var bytes = Array(line.utf8)
                _ = bytes.withUnsafeMutableBytes { TerminalText.writeAll(fd, UnsafeRawBufferPointer($0)) }
            }
        }
        if event.isBlock { onBlock?(event) }
    }

    /// "blocked 3: connection-blocked evil.example ×2, dns-refused x.test" or nil
    /// when nothing was blocked. One line: every subject is escaped.
    public func summary() -> TerminalText? {
        let (blocked, blockedElsewhere) = state.withLock { ($0.blocked, $0.blockedElsewhere) }
        guard !blocked.isEmpty else { return nil }
        let total = blocked.values.reduce(0, +) + blockedElsewhere
        var items: [TerminalText] = blocked.sorted { $0.key < $1.key }.map {
            $0.value > 1 ? "\($0.key.kind) \($0.key.subject) ×\($0.value)" : "\($0.key.kind) \($0.key.subject)"
        }
        if blockedElsewhere > 0 { items.append("\(blockedElsewhere) more (see --log)") }
        return "blocked \(total): " + items.joined(separator: ", ")
    }
}

/// Discards everything; for tests and helpers that have nowhere to report.
public struct NullSink: EventSink {
    public init() {}
    public func record(_ event: Event) {}
}
