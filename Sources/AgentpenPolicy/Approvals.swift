/// `--ask` (issue 13): the decisions about held connections, as plain values.
/// A TLS connection to an unlisted name is held (nothing dialled) until the user
/// decides in `agentpen watch` or with `agentpen allow HOST` on the session's
/// control socket, or until the time runs out (refused, as without --ask).
public enum ApprovalChoice: String, Sendable, Equatable, CaseIterable {
    /// This connection (and any other held for the host now); the next one asks again.
    case once
    /// Every connection to the host for the rest of this session.
    case session
    /// As `session`, and saved for later runs of this agent / in this project
    /// (the machine-managed allowed.toml beside the user's config).
    case saveAgent = "save-agent"
    case saveProject = "save-project"
    case deny

    public var allows: Bool { self != .deny }
    /// Whether later connections to the host are let through without asking.
    public var coversSession: Bool { self == .session || self == .saveAgent || self == .saveProject }
}

/// One line on the control socket from `agentpen allow` or `agentpen watch`:
/// `allow HOST CHOICE`. The socket is owner-only, but the line is parsed as
/// untrusted anyway: HOST must be what `--allow` accepts, exact (no wildcard).
public struct ControlCommand: Sendable, Equatable {
    public var host: String
    public var choice: ApprovalChoice

    public init(host: String, choice: ApprovalChoice) { self.host = host; self.choice = choice }

    public var line: String { "allow \(host) \(choice.rawValue)\n" }

    public static let maxLine = 512

    public enum Parsed: Sendable, Equatable {
        case command(ControlCommand)
        case invalid(String)
    }

    public static func parse(_ line: String) -> Parsed {
        guard line.utf8.count <= maxLine else { return .invalid("line too long") }
        let line = line.hasSuffix("\n") ? String(line.dropLast()) : line
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard words.count == 3, words[0] == "allow" else { return .invalid("expected: allow HOST CHOICE") }
        guard let choice = ApprovalChoice(rawValue: words[2]) else {
            return .invalid("\(words[2].debugDescription) is not one of once, session, save-agent, save-project, deny")
        }
        guard let p = try? HostPattern(words[1]), !p.isWildcard, p.tls else { return .invalid("\(words[1].debugDescription) is not a host name") }
        return .command(ControlCommand(host: p.name, choice: choice))
    }
}

/// The held connections and the session's approvals. A decision about a host
/// answers every connection held for it at that moment; `session` and the saves
/// also let later ones through without asking; `deny` and `once` do not outlast
/// the connections they answer. Bounded: at most `maxPending` held at once
/// (further ones are refused at once), at most `maxSessionHosts` approved.
public struct ApprovalBook: Sendable, Equatable {
    public static let maxPending = 64
    public static let maxSessionHosts = 4096

    public struct Held: Sendable, Equatable {
        public var id: Int
        public var host: String
    }

    public private(set) var pending: [Held] = []
    public private(set) var sessionHosts: Set<String> = []
    private var nextID = 1

    public init() {}

    public enum Request: Sendable, Equatable {
        /// Already approved for the session: no need to ask.
        case allowed
        /// Held under this id until `decide` or `expire`.
        case held(id: Int)
        /// Too many held already.
        case full
    }

    public mutating func request(_ host: String) -> Request {
        if sessionHosts.contains(host) { return .allowed }
        guard pending.count < Self.maxPending else { return .full }
        let id = nextID
        nextID += 1
        pending.append(Held(id: id, host: host))
        return .held(id: id)
    }

    /// Applies the user's decision; returns the ids it answers (in order).
    /// `once` and `deny` need something held; the others are taken ahead too.
    public enum Decision: Sendable, Equatable {
        case answered([Int])
        /// Nothing is held for the host (a `once` or `deny` has nothing to act on).
        case nothingHeld
        case tooManyHosts
    }

    public mutating func decide(_ c: ControlCommand) -> Decision {
        let ids = pending.filter { $0.host == c.host }.map(\.id)
        if ids.isEmpty && !c.choice.coversSession { return .nothingHeld }
        if c.choice.coversSession {
            guard sessionHosts.count < Self.maxSessionHosts || sessionHosts.contains(c.host) else { return .tooManyHosts }
            sessionHosts.insert(c.host)
        }
        pending.removeAll { $0.host == c.host }
        return .answered(ids)
    }

    /// The time ran out (or the connection went away): true if it was still held.
    public mutating func expire(_ id: Int) -> Bool {
        guard let i = pending.firstIndex(where: { $0.id == id }) else { return false }
        pending.remove(at: i)
        return true
    }
}
