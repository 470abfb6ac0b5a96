import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc
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
            events.record(Event(.connectionBlocked, subject: .refusedFlows,
                                reason: "\(unitemised) attempt(s) at more than \(RefusalTally.distinctLimit) other destinations, counted, not itemised",
                                details: ["attempts": String(unitemised)]))
        }
        let n = lost.withLock { $0 }
        if n > 0 {
            events.record(Event(.failure, subject: .refusedFlows,
                                reason: "the kernel dropped firewall records \(n) time(s) (sent faster than read); the firewall's counts are exact"))
        }
    }
}

/// Inside the namespace: the firewall redirects every TCP connection that may not
/// leave to this listener (127.0.0.1 and ::1, one port). It reads where the
/// connection was meant to go (SO_ORIGINAL_DST), resets it (so the client fails
/// at connect or at its first read, never by a time-out) and reports it.
/// Its listeners accept on `loop`'s thread; `listeners` is behind its Mutex.
public final class CatchAll: Sendable {
    private let reporter: RefusalReporter
    private let loop = EventLoop.shared
    private let listeners = Mutex<[Listener]>([])

    public init(reporter: RefusalReporter) { self.reporter = reporter }

    /// Listens on 127.0.0.1:0 and the same port on ::1 (when the namespace has
    /// IPv6 loopback); returns the port.
    public func start() throws -> UInt16 {
        ignoreSIGPIPE()
        let v4 = try Listener(address: .loopbackV4, port: 0, loop: loop) { [weak self] c, _, _ in
            self?.refuse(c, ipv6: false)
        }
        var started = [v4]
        if let v6 = try? Listener(address: .loopbackV6, port: v4.port, loop: loop, onAccept: { [weak self] c, _, _ in
            self?.refuse(c, ipv6: true)
        }) { started.append(v6) }
        listeners.withLock { $0 = started }
        for l in started { l.start() }
        return v4.port
    }

    /// Takes over listeners made inside the namespace (the direct hop: the
    /// namespace helper made them, `HandedSockets.makeCatchAll`); `ipv6` says which
    /// is which, for reading where each connection was meant to go: the first is
    /// 127.0.0.1's, the second (when there is one) ::1's. Each is the catch-all's
    /// from here; those not adopted when one fails are closed.
    public func adopt(_ sockets: consuming DescriptorList) throws(SocketError) {
        ignoreSIGPIPE()
        var started: [Listener] = []
        var ipv6 = false
        while !sockets.isEmpty {
            let v6 = ipv6
            started.append(try Listener(adopting: sockets.removeFirst(), loop: loop) { [weak self] c, _, _ in self?.refuse(c, ipv6: v6) })
            ipv6 = true
        }
        listeners.withLock { $0 += started }
        for l in started { l.start() }
    }

    public func stop() {
        let ls = listeners.withLock { l in
            defer { l = [] }
            return l
        }
        // Draining: a connection the agent made just before it ended may still wait in
        // the kernel's queue, unaccepted (the queue's thread had no CPU yet); it is a
        // refused flow and is reported like the others.
        for l in ls { l.stop(draining: true) }
        // The drains, posted to the loop, have run once this has: waiting here
        // blocks the caller (never the loop's own thread), not the loop.
        precondition(!loop.isCurrent, "agentpen: CatchAll.stop on its own loop's thread")
        let drained = DispatchSemaphore(value: 0)
        loop.async { drained.signal() }
        drained.wait()
    }

    private func refuse(_ connection: consuming Descriptor, ipv6: Bool) {
        var buf = [UInt8](repeating: 0, count: 16)
        var port: UInt16 = 0
        let len = ap_original_dst(connection.raw, ipv6 ? 1 : 0, &buf, &port)
        _ = ap_set_linger_reset(connection.raw)
        connection.close()
        guard len > 0, let address = IPAddress(bytes: Array(buf[0..<Int(len)])) else { return }
        reporter.record(RefusedFlow(proto: .tcp, address: address, port: port, protocolNumber: 6))
    }
}

/// Inside the namespace: reads the NFLOG records the firewall's refusing rules
/// send (UDP, ICMP, anything but TCP) and reports each flow. Records come from
/// the kernel only (sender port id 0); each one is parsed by NFLog.parse, bounded.
/// `@unchecked Sendable`: `watch` and `fd` are only touched on the serial `queue`.
public final class NFLogReader: @unchecked Sendable {
    private let reporter: RefusalReporter
    private let group: UInt16
    private let queue = DispatchQueue(label: "agentpen.nflog")
    private var fd: Int32 = -1
    private var watch: Watch?
    private var buffer = [UInt8](repeating: 0, count: 65536)
    private let logged = Mutex([String: Int]())

    public init(group: UInt16 = NFLog.group, reporter: RefusalReporter) {
        self.group = group
        self.reporter = reporter
    }

    /// Opens the netlink socket and binds the group; throws when the kernel refuses.
    public func start() throws(SocketError) {
        let socket = Descriptor(try Sock.check(ap_netlink_socket(12 /* NETLINK_NETFILTER */), "netlink socket"))
        let s = socket.raw
        // The socket closes if any step fails.
        try Sock.check(ap_netlink_bind(s), "netlink bind")
        let msg = NFLog.bindMessage(group: group, sequence: 1)
        let sent = msg.withUnsafeBytes { ap_netlink_send(s, $0.baseAddress, $0.count) }
        if sent < 0 { throw SocketError("NFLOG bind group \(group)", Int32(-sent)) }
        // The kernel acks before send returns.
        var ack = [UInt8](repeating: 0, count: 512)
        var sender: UInt32 = 0
        let n = ack.withUnsafeMutableBytes { ap_netlink_recv(s, $0.baseAddress, $0.count, &sender) }
        if n < 0 { throw SocketError("NFLOG bind group \(group): no answer", Int32(-n)) }
        if let e = NFLog.parse(Array(ack[0..<n])).errors.first { throw SocketError("NFLOG bind group \(group)", e) }
        let w = Watch.read(owning: socket, queue: queue, group: nil) { [weak self] in self?.readSome() }
        queue.sync {
            fd = s
            watch = w
            w.enable()
        }
    }

    private func readSome() {
        dispatchPrecondition(condition: .onQueue(queue))
        // Bounded per wake-up; the watch runs again if more is queued.
        for _ in 0..<64 {
            var sender: UInt32 = 0
            let n = buffer.withUnsafeMutableBytes { ap_netlink_recv(fd, $0.baseAddress, $0.count, &sender) }
            if n == -Int(ENOBUFS) { reporter.lostRecords(1); continue }
            if n <= 0 { return }
            guard sender == 0 else { continue }   // only the kernel writes records
            let batch = NFLog.parse(Array(buffer[0..<n]))
            logged.withLock { seen in for flow in batch.flows { seen[flow.counterName, default: 0] += 1 } }
            for flow in batch.flows { reporter.record(flow) }
        }
    }

    /// Records read so far, by the firewall counter that also counted them.
    public var recordsByCounter: [String: Int] { logged.withLock { $0 } }

    /// Reads what is queued, then stops.
    public func stop() {
        queue.sync {
            guard fd >= 0 else { return }
            readSome()
            watch?.cancel()
            watch = nil
            fd = -1
        }
    }
}
