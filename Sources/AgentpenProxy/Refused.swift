import AgentpenEvents
import AgentpenPolicy
import CShim
import Dispatch
import Foundation
import Synchronization

/// Reports refused flows through the run's one EventSink, itemising the first
/// attempt at each destination (RefusalTally); `finish` adds one event per
/// destination that was tried again, with the attempts counted, and one for the
/// destinations beyond the tally's bound. Thread-safe.
public final class RefusalReporter: Sendable {
    private let events: any EventSink
    private let tally: Mutex<RefusalTally>
    private let lost = Mutex(0)
    /// The allowed name an address stands for, when one does (per-name addresses).
    private let names: @Sendable (IPAddress) -> String?

    public init(events: any EventSink, limit: Int = RefusalTally.distinctLimit,
                names: @escaping @Sendable (IPAddress) -> String? = { _ in nil }) {
        self.events = events
        self.tally = Mutex(RefusalTally(limit: limit))
        self.names = names
    }

    public func record(_ flow: RefusedFlow) {
        var flow = flow
        if flow.name == nil { flow.name = names(flow.address) }
        let itemise = tally.withLock { $0.note(flow) }
        if itemise { events.record(Event(.connectionBlocked, subject: flow.subject, reason: flow.reason, details: flow.details)) }
    }

    /// Records the reader could not take (the kernel's queue overflowed).
    public func lostRecords(_ n: Int) { lost.withLock { $0 += n } }

    /// The counts of what was not itemised; call once, after the last record.
    public func finish() {
        let (repeated, unitemised) = tally.withLock { ($0.repeated, $0.unitemised) }
        for (flow, n) in repeated {
            var details = flow.details
            details["attempts"] = String(n)
            events.record(Event(.connectionBlocked, subject: flow.subject,
                                reason: "\(n) more attempt(s), refused the same way", details: details))
        }
        if unitemised > 0 {
            events.record(Event(.connectionBlocked, subject: "refused flows",
                                reason: "\(unitemised) attempt(s) at more than \(RefusalTally.distinctLimit) other destinations, counted, not itemised",
                                details: ["attempts": String(unitemised)]))
        }
        let n = lost.withLock { $0 }
        if n > 0 {
            events.record(Event(.failure, subject: "refused flows",
                                reason: "\(n) firewall record(s) lost (sent faster than read); the firewall's counts below are exact"))
        }
    }
}

/// Inside the namespace: the firewall redirects every TCP connection that may not
/// leave to this listener (127.0.0.1 and ::1, one port). It reads where the
/// connection was meant to go (SO_ORIGINAL_DST), resets it (so the client fails
/// at connect or at its first read, never by a time-out) and reports it.
/// `@unchecked Sendable`: `listeners` is only touched on the serial `queue`.
public final class CatchAll: @unchecked Sendable {
    private let reporter: RefusalReporter
    private let queue = DispatchQueue(label: "agentpen.catch-all")
    private var listeners: [Listener] = []

    public init(reporter: RefusalReporter) { self.reporter = reporter }

    /// Listens on 127.0.0.1:0 and the same port on ::1 (when the namespace has
    /// IPv6 loopback); returns the port.
    public func start() throws -> UInt16 {
        ignoreSIGPIPE()
        let v4 = try Listener(address: .loopbackV4, port: 0, queue: queue) { [weak self] fd, _, _ in
            self?.refuse(fd, ipv6: false)
        }
        var started = [v4]
        if let v6 = try? Listener(address: .loopbackV6, port: v4.port, queue: queue, onAccept: { [weak self] fd, _, _ in
            self?.refuse(fd, ipv6: true)
        }) { started.append(v6) }
        queue.sync { listeners = started }
        for l in started { l.start() }
        return v4.port
    }

    public func stop() {
        let ls = queue.sync { () -> [Listener] in
            defer { listeners = [] }
            return listeners
        }
        for l in ls { l.stop() }
        queue.sync {}   // the accepts already queued have run
    }

    private func refuse(_ fd: Int32, ipv6: Bool) {
        var buf = [UInt8](repeating: 0, count: 16)
        var port: UInt16 = 0
        let len = ap_original_dst(fd, ipv6 ? 1 : 0, &buf, &port)
        _ = ap_set_linger_reset(fd)
        close(fd)
        guard len > 0, let address = IPAddress(bytes: Array(buf[0..<Int(len)])) else { return }
        reporter.record(RefusedFlow(proto: .tcp, address: address, port: port, protocolNumber: 6))
    }
}
