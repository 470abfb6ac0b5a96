import AgentpenEvents
import AgentpenPolicy
import Dispatch
import Synchronization

/// What a held connection learns (`--ask`): go on and dial, or be refused.
public enum HoldOutcome: Sendable, Equatable {
    case allowed(reason: String, details: [String: String])
    case refused(reason: String, details: [String: String])
}

/// Decides about connections to unlisted names under `UnlistedNames.hold`.
/// `decided` is called exactly once per request, on any queue.
public protocol Approver: AnyObject, Sendable {
    func request(host: String, client: String, decided: @escaping @Sendable (HoldOutcome) -> Void)
}

/// The run's held connections (`ApprovalBook` behind a lock, a timer each):
/// the proxy asks, the control socket answers (`decide`), the time runs out.
/// Each hold is an event (`connection-held`) naming the host, the agent and,
/// when found, the process; the outcome is the proxy's allowed or blocked event
/// with the decision in `details["decision"]`.
public final class HoldQueue: Approver, Sendable {
    private struct State {
        var book = ApprovalBook()
        var waiting: [Int: @Sendable (HoldOutcome) -> Void] = [:]
    }
    private let state = Mutex(State())
    private let events: any EventSink
    private let timeout: Int
    private let agent: String
    private let queue = DispatchQueue(label: "agentpen.ask")
    /// The process in the sandbox that owns the client socket ("pid 12 curl"), if it can be found.
    private let processOf: @Sendable (String) -> String?
    /// Told of each new hold (the desktop notification).
    private let onHold: @Sendable (_ host: String, _ process: String?) -> Void
    /// Told of each save (writes the machine-managed file); returns what to report.
    private let onSave: @Sendable (_ host: String, _ choice: ApprovalChoice) -> String

    public init(events: any EventSink, timeout: Int, agent: String,
                processOf: @escaping @Sendable (String) -> String? = { _ in nil },
                onHold: @escaping @Sendable (String, String?) -> Void = { _, _ in },
                onSave: @escaping @Sendable (String, ApprovalChoice) -> String = { _, _ in "not saved" }) {
        self.events = events
        self.timeout = timeout
        self.agent = agent
        self.processOf = processOf
        self.onHold = onHold
        self.onSave = onSave
    }

    public func request(host: String, client: String, decided: @escaping @Sendable (HoldOutcome) -> Void) {
        let r = state.withLock { $0.book.request(host) }
        switch r {
        case .allowed:
            decided(.allowed(reason: "allowed for this session by the user", details: ["decision": "session"]))
        case .full:
            decided(.refused(reason: "not in the allowlist; \(ApprovalBook.maxPending) connections already wait for a decision",
                             details: ["decision": "none (too many held)"]))
        case .held(let id):
            let process = processOf(client)
            var details = ["hold": String(id), "agent": agent, "client": client, "timeout-s": String(timeout),
                           "permit": Permit.allow(host) ?? ""]
            if let process { details["process"] = process }
            state.withLock { s in s.waiting[id] = decided }
            events.record(Event(.connectionHeld, subject: host,
                                reason: "not in the allowlist; waiting up to \(timeout) s for your decision (agentpen watch, or agentpen allow \(host))",
                                details: details))
            // A decision first makes this a no-op (the book no longer holds the id).
            queue.asyncAfter(deadline: .now() + .seconds(timeout)) { [weak self] in self?.expire(id) }
            onHold(host, process)
        }
    }

    private func expire(_ id: Int) {
        let done = state.withLock { s -> (@Sendable (HoldOutcome) -> Void)? in
            guard s.book.expire(id) else { return nil }
            return s.waiting.removeValue(forKey: id)
        }
        done?(.refused(reason: "not in the allowlist; no decision within \(timeout) s",
                       details: ["decision": "timeout", "hold": String(id)]))
    }

    /// Applies a control line's command; returns the reply line (without newline),
    /// "ok …" or "error …".
    public func decide(_ c: ControlCommand) -> String {
        let (decision, answered) = state.withLock { s -> (ApprovalBook.Decision, [(Int, @Sendable (HoldOutcome) -> Void)]) in
            let d = s.book.decide(c)
            guard case .answered(let ids) = d else { return (d, []) }
            var out: [(Int, @Sendable (HoldOutcome) -> Void)] = []
            for id in ids {
                if let w = s.waiting.removeValue(forKey: id) { out.append((id, w)) }
            }
            return (d, out)
        }
        switch decision {
        case .nothingHeld: return "error no connection to \(c.host) is waiting for a decision"
        case .tooManyHosts: return "error too many hosts approved in this session"
        case .answered: break
        }
        var saved = ""
        if c.choice == .saveAgent || c.choice == .saveProject { saved = "; " + onSave(c.host, c.choice) }
        for (id, w) in answered {
            let details = ["decision": c.choice.rawValue, "hold": String(id)]
            if c.choice.allows {
                w(.allowed(reason: "allowed by the user (\(Self.words(c.choice)))", details: details))
            } else {
                w(.refused(reason: "not in the allowlist; denied by the user", details: details))
            }
        }
        return "ok \(c.choice.rawValue) \(c.host): \(answered.count) held connection(s) answered" + saved
    }

    static func words(_ c: ApprovalChoice) -> String {
        switch c {
        case .once: "once"
        case .session: "for this session"
        case .saveAgent: "saved for this agent"
        case .saveProject: "saved for this project"
        case .deny: "denied"
        }
    }

    /// Refuses everything still held (the run is ending).
    public func cancelAll() {
        let all = state.withLock { s -> [(Int, @Sendable (HoldOutcome) -> Void)] in
            for id in s.waiting.keys { _ = s.book.expire(id) }
            defer { s.waiting = [:] }
            return s.waiting.map { ($0.key, $0.value) }
        }
        for (id, w) in all { w(.refused(reason: "not in the allowlist; the run ended while it waited", details: ["decision": "none", "hold": String(id)])) }
    }
}
