import Foundation

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

    /// One JSON object, one line.
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(self)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// Where events go. Thread-safe; called from any queue.
public protocol EventSink: Sendable {
    func record(_ event: Event)
}

/// Writes JSON lines to a file descriptor (the event log) and keeps counts for
/// the summary printed at exit.
public final class EventLog: EventSink, @unchecked Sendable {
    private let lock = NSLock()
    private let fd: Int32?
    private var blocked: [String: Int] = [:]
    private var allowedCount = 0
    /// Called for each blocked event, e.g. to tell the user at once.
    private let onBlock: (@Sendable (Event) -> Void)?

    public init(fd: Int32? = nil, onBlock: (@Sendable (Event) -> Void)? = nil) {
        self.fd = fd
        self.onBlock = onBlock
    }

    /// Distinct blocked subjects kept for the summary; the rest are only counted,
    /// so a sandbox asking for endless random names cannot grow agentpen's memory.
    public static let summaryLimit = 1000
    private var blockedElsewhere = 0

    public func record(_ event: Event) {
        let line = event.jsonLine() + "\n"
        lock.lock()
        if event.isBlock {
            let key = "\(event.kind.rawValue) \(event.subject)"
            if blocked[key] != nil || blocked.count < Self.summaryLimit { blocked[key, default: 0] += 1 }
            else { blockedElsewhere += 1 }
        } else if event.kind == .connectionAllowed { allowedCount += 1 }
        if let fd {
            line.utf8CString.withUnsafeBufferPointer { buf in
                _ = write(fd, buf.baseAddress, buf.count - 1)
            }
        }
        lock.unlock()
        if event.isBlock { onBlock?(event) }
    }

    /// "blocked: 3 (connection-blocked evil.example ×2, dns-refused x.test)" or nil when nothing was blocked.
    public func summary() -> String? {
        lock.lock(); defer { lock.unlock() }
        guard !blocked.isEmpty else { return nil }
        let total = blocked.values.reduce(0, +) + blockedElsewhere
        var items = blocked.sorted { $0.key < $1.key }
            .map { $0.value > 1 ? "\($0.key) ×\($0.value)" : $0.key }
        if blockedElsewhere > 0 { items.append("\(blockedElsewhere) more (see --log)") }
        return "blocked \(total): " + items.joined(separator: ", ")
    }
}

/// Discards everything; for tests and helpers that have nowhere to report.
public struct NullSink: EventSink {
    public init() {}
    public func record(_ event: Event) {}
}
