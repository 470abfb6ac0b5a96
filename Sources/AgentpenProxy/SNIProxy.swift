import AgentpenEvents
import AgentpenPolicy
import CShim
import Dispatch
import Foundation
import Synchronization

public struct ProxyConfig: Sendable {
    /// Port dialled on the vetted upstream address.
    public var upstreamPort: UInt16
    /// Time a client has, from connecting, to send a complete ClientHello.
    public var handshakeTimeout: TimeInterval
    /// Per upstream address tried.
    public var connectTimeout: TimeInterval
    /// A tunnel with no traffic either way for this long is closed. No absolute
    /// lifetime: long streams are fine as long as they move.
    public var idleTimeout: TimeInterval
    /// Concurrent connections from one client address (pending and relaying).
    public var maxConnectionsPerClient: Int
    /// Bytes of ClientHello (record headers included) looked at before giving up.
    public var maxHelloSize: Int
    /// Requested size of each splice pipe; the kernel may refuse, then its default is used.
    public var pipeSize: Int
    /// Lets tests point allowed names at a local server. Loopback upstreams are
    /// otherwise refused always, whatever the allowlist says.
    public var permitLoopbackUpstreamForTests: Bool

    public init(upstreamPort: UInt16 = 443, handshakeTimeout: TimeInterval = 10, connectTimeout: TimeInterval = 10,
                idleTimeout: TimeInterval = 300, maxConnectionsPerClient: Int = 512,
                maxHelloSize: Int = ClientHello.maxSize, pipeSize: Int = 256 * 1024,
                permitLoopbackUpstreamForTests: Bool = false) {
        self.upstreamPort = upstreamPort
        self.handshakeTimeout = handshakeTimeout
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maxConnectionsPerClient = maxConnectionsPerClient
        self.maxHelloSize = maxHelloSize
        self.pipeSize = pipeSize
        self.permitLoopbackUpstreamForTests = permitLoopbackUpstreamForTests
    }

    var relay: RelayConfig { RelayConfig(idleTimeout: idleTimeout, pipeSize: pipeSize) }
}

/// Something the proxy or forwarder can shut down when it stops.
protocol Stoppable: AnyObject, Sendable {
    func stop()
}

/// Bookkeeping shared by the proxy and the forwarder: live connections for
/// `stop()`, and per-client counts for the connection cap.
/// Invariant (under `state`'s lock): `perClient[c]` counts the connections from
/// `c` admitted and not yet removed, never above `cap`, and no entry is 0; once
/// `stopped`, nothing is admitted and every connection added is stopped at once.
final class ConnectionTable: Sendable {
    private struct State {
        var live: [ObjectIdentifier: any Stoppable] = [:]
        var perClient: [IPAddress: Int] = [:]
        var stopped = false
    }
    private let state = Mutex(State())
    let cap: Int

    init(cap: Int) { self.cap = cap }

    /// Counts a new connection from `client`; false when over the cap or stopped.
    func admit(_ client: IPAddress?) -> Bool {
        state.withLock { s in
            guard !s.stopped else { return false }
            let key = client ?? IPAddress(0, 0, 0, 0)
            if s.perClient[key, default: 0] >= cap { return false }
            s.perClient[key, default: 0] += 1
            return true
        }
    }

    /// Registers the connection; if the table stopped meanwhile, stops it at once.
    func add(_ c: any Stoppable) {
        let stopNow = state.withLock { s in
            s.live[ObjectIdentifier(c)] = c
            return s.stopped
        }
        if stopNow { c.stop() }
    }

    /// Forgets `c` (nil: one that was admitted but never added) and its client count.
    func remove(_ c: (any Stoppable)?, client: IPAddress?) {
        state.withLock { s in
            if let c { s.live[ObjectIdentifier(c)] = nil }
            let key = client ?? IPAddress(0, 0, 0, 0)
            if let n = s.perClient[key] { s.perClient[key] = n > 1 ? n - 1 : nil }
        }
    }

    func stopAll() {
        let all = state.withLock { s in
            s.stopped = true
            return Array(s.live.values)
        }
        for c in all { c.stop() }
    }

    var count: Int { state.withLock { $0.live.count } }
}

/// The host-side SNI proxy: the sandbox's only way out. For each connection it
/// peeks at the ClientHello (consuming nothing), checks the server name against
/// the allowlist, resolves the name itself, vets every address, dials exactly a
/// vetted one and splices bytes both ways. Every decision becomes an Event.
/// Sendable without `@unchecked`: every stored property is an immutable Sendable
/// value, the acceptor, or the Mutex-guarded peek counts.
public final class SNIProxy: Sendable {
    let allowlist: Allowlist
    let events: any EventSink
    let config: ProxyConfig
    let resolver: @Sendable (String) -> [IPAddress]
    private let acceptor: Acceptor
    var table: ConnectionTable { acceptor.table }
    /// Peeks that returned bytes while looking for ClientHellos, and the bytes
    /// they copied out of the kernel (tests check that this stays linear).
    let helloPeeks = Mutex((count: 0, bytes: 0))

    public init(allowlist: Allowlist, events: any EventSink, config: ProxyConfig = .init(),
                resolver: @escaping @Sendable (String) -> [IPAddress] = systemResolve) {
        self.allowlist = allowlist
        self.events = events
        self.config = config
        self.resolver = resolver
        self.acceptor = Acceptor(label: "agentpen.proxy.accept", cap: config.maxConnectionsPerClient, events: events)
        acceptor.open = { [weak self] fd, peer, client in
            self.map { ProxyConnection(fd: fd, peer: peer, clientEndpoint: client, proxy: $0) }
        }
    }

    /// Listens on `bindAddress:port` (0 picks a free port) and returns the port.
    /// May be called again for another address.
    @discardableResult
    public func start(bindAddress: String = "127.0.0.1", port: UInt16 = 0) throws -> UInt16 {
        try acceptor.listen(bindAddress: bindAddress, port: port)
    }

    /// Stops listening and closes every connection, pending or relaying.
    public func stop() { acceptor.stop() }

    /// Connections currently pending or relaying.
    public var connectionCount: Int { table.count }

    func vet(_ address: IPAddress, _ pattern: HostPattern) -> AddressPolicy.Verdict {
        if config.permitLoopbackUpstreamForTests, AddressPolicy.classify(address) == .loopback { return .allowed }
        return AddressPolicy.vet(address, allowPrivate: pattern.allowsPrivateUpstream)
    }
}

/// One client connection through the proxy: ClientHello, decision, resolve,
/// dial, relay. All state lives on `queue`.
/// `@unchecked Sendable`: the mutable state (phase, watches, buffer, hello) is
/// owned by the serial `queue` rather than a lock; `start` and `stop` only hop
/// onto it, and every other method asserts it runs there.
final class ProxyConnection: AcceptedConnection, @unchecked Sendable {
    private enum Phase { case hello, connecting, relaying(Relay), closed }

    private let client: Int32
    private let peer: IPAddress?
    private let clientEndpoint: String
    private let proxy: SNIProxy
    private let queue = WorkerQueues.connectionQueue("agentpen.proxy.conn")
    private var phase = Phase.hello
    private var helloWatch: Watch?
    private var deadline: DispatchSourceTimer?
    private let helloGroup = DispatchGroup()
    private var buffer: UnsafeMutableRawBufferPointer?
    private var seen = 0
    /// The hello so far: each wake-up hands it only the newly arrived bytes.
    private var hello: ClientHello.Reassembler?
    /// SO_PEEK_OFF is on: a peek returns only bytes not peeked before.
    private var peekOffset = false
    private var stopRequested = false

    init(fd: Int32, peer: IPAddress?, clientEndpoint: String, proxy: SNIProxy) {
        self.client = fd
        self.peer = peer
        self.clientEndpoint = clientEndpoint
        self.proxy = proxy
    }

    func start() {
        queue.async { [self] in
            guard case .hello = phase else { return }
            let w = Watch.read(client, queue: queue, group: helloGroup) { [weak self] in self?.readable() }
            helloWatch = w
            let t = DispatchSource.makeTimerSource(queue: queue)
            t.schedule(deadline: .now() + proxy.config.handshakeTimeout)
            t.setEventHandler { [weak self] in
                guard let self else { return }
                self.block("(no SNI)", "no complete ClientHello within \(Int(self.proxy.config.handshakeTimeout)) s")
            }
            deadline = t
            t.activate()
            w.enable()
        }
    }

    func stop() {
        queue.async { [self] in
            stopRequested = true
            switch phase {
            case .hello: endHello { self.closeClient() }
            case .relaying(let r): r.stop()
            case .connecting, .closed: break   // the dial/resolve completion sees stopRequested
            }
        }
    }

    private func record(_ kind: Event.Kind, _ subject: String, _ reason: String, _ extra: [String: String] = [:]) {
        var details = extra
        details["client"] = clientEndpoint
        proxy.events.record(Event(kind, subject: subject, reason: reason, details: details))
    }

    private func readable() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard case .hello = phase, helloWatch != nil else { return }
        let size = proxy.config.maxHelloSize
        if buffer == nil {
            buffer = .allocate(byteCount: size, alignment: 8)
            // The bytes stay queued for upstream, so they are peeked, not read. With
            // SO_PEEK_OFF (TCP from Linux 6.9) each peek continues where the last one
            // ended: every byte is copied out once. Without it each peek copies the
            // queued prefix again (at most maxHelloSize per wake-up).
            peekOffset = ap_set_peek_off(client, 0) == 0
        }
        let from = peekOffset ? seen : 0
        guard from < size else { return block("(no SNI)", "no complete ClientHello in the first \(size) bytes") }
        let got = Int(ap_recv_peek(client, buffer!.baseAddress! + from, size - from))
        if got == -Int(EAGAIN) || got == -Int(EINTR) { return }
        if got < 0 { return block("(no SNI)", "client error before the ClientHello: \(String(cString: strerror(Int32(-got))))") }
        if got > 0 { proxy.helloPeeks.withLock { $0.count += 1; $0.bytes += got } }
        let n = from + got
        if n == 0 { return block("(no SNI)", "client closed without sending anything") }
        if n == seen {
            // With SO_RCVLOWAT set we are only woken for more bytes or an end.
            if got == 0 || ap_peer_closed(client) == 1 {
                return block("(no SNI)", "client closed before the ClientHello was complete")
            }
            return
        }
        guard n > seen else { return block("(no SNI)", "client stream shrank before the ClientHello") }
        // Only the part past `seen` is new to the reassembler.
        if self.hello == nil { self.hello = ClientHello.Reassembler(maxSize: size) }
        let hello = self.hello!.feed(UnsafeRawBufferPointer(rebasing: buffer![seen..<n]))
        seen = n
        var extra: [String: String] = [:]
        if hello.hasECH { extra["ech"] = "present (the name seen is the outer public name)" }
        switch hello.outcome {
        case .needMore:
            // Peeking leaves the bytes queued, so the socket stays readable; ask the
            // kernel to wake us only once more has arrived.
            _ = ap_set_rcvlowat(client, Int32(n + 1))
        case .noServerName:
            block("(no SNI)", "ClientHello without a server name", extra)
        case .invalid(let why):
            block("(no SNI)", "invalid ClientHello: \(why)", extra)
        case .serverName(let name):
            guard let pattern = proxy.allowlist.match(name) else {
                return block(name, "not in the allowlist", extra)
            }
            phase = .connecting
            endHello { self.resolve(name, pattern, extra) }
        }
    }

    /// Cancels the hello watcher and deadline; `then` runs once the source is gone
    /// and the descriptor may be closed or handed on.
    private func endHello(then: @escaping () -> Void) {
        dispatchPrecondition(condition: .onQueue(queue))
        deadline?.cancel()
        deadline = nil
        buffer?.deallocate()
        buffer = nil
        hello = nil
        // The relay reads the stream from its start, hello included.
        if peekOffset { _ = ap_set_peek_off(client, -1) }
        _ = ap_set_rcvlowat(client, 1)
        if let w = helloWatch {
            helloWatch = nil
            w.cancel()
        }
        helloGroup.notify(queue: queue, execute: then)
    }

    private func block(_ subject: String, _ reason: String, _ extra: [String: String] = [:]) {
        guard case .hello = phase else { return }
        phase = .closed
        record(.connectionBlocked, subject, reason, extra)
        endHello { self.closeClient() }
    }

    private func closeClient() {
        dispatchPrecondition(condition: .onQueue(queue))
        phase = .closed
        close(client)
        proxy.table.remove(self, client: peer)
    }

    private func resolve(_ name: String, _ pattern: HostPattern, _ extra: [String: String]) {
        if stopRequested { return closeClient() }
        let resolver = proxy.resolver
        // getaddrinfo blocks; keep it off the connection queue and its worker.
        WorkerQueues.resolver().async {
            let addresses = resolver(name)
            self.queue.async { self.vetAndDial(name, pattern, addresses, extra) }
        }
    }

    private func vetAndDial(_ name: String, _ pattern: HostPattern, _ addresses: [IPAddress], _ extra: [String: String]) {
        dispatchPrecondition(condition: .onQueue(queue))
        if stopRequested { return closeClient() }
        guard !addresses.isEmpty else {
            record(.failure, name, "could not resolve \(name)", extra)
            return closeClient()
        }
        var vetted: [IPAddress] = []
        var refusals: [String] = []
        for a in addresses {
            switch proxy.vet(a, pattern) {
            case .allowed: vetted.append(a)
            case .refused(let why): refusals.append(why)
            }
        }
        guard !vetted.isEmpty else {
            var extra = extra
            // Only private answers: --allow-private would have permitted it.
            if !pattern.allowsPrivateUpstream, addresses.allSatisfy({ if case .privateUse = AddressPolicy.classify($0) { true } else { false } }) {
                extra["permit"] = Permit.allowPrivate(name)
            }
            record(.connectionBlocked, name, "every address refused: " + refusals.joined(separator: "; "), extra)
            return closeClient()
        }
        dial(name, pattern, vetted, 0, [], extra)
    }

    private func dial(_ name: String, _ pattern: HostPattern, _ vetted: [IPAddress], _ i: Int,
                      _ failures: [String], _ extra: [String: String]) {
        if stopRequested { return closeClient() }
        guard i < vetted.count else {
            record(.failure, name, "could not connect: " + failures.joined(separator: "; "), extra)
            return closeClient()
        }
        let address = vetted[i]
        let port = proxy.config.upstreamPort
        // Dial exactly the address that was vetted: no second lookup.
        Dialer.connect(to: address, port: port, timeout: proxy.config.connectTimeout, queue: queue) { [self] result in
            switch result {
            case .failure(let e):
                dial(name, pattern, vetted, i + 1, failures + [e.description], extra)
            case .success(let upstream):
                if stopRequested {
                    close(upstream)
                    return closeClient()
                }
                var details = extra
                details["upstream"] = endpoint(address, port)
                details["pattern"] = pattern.description
                record(.connectionAllowed, name, "allowed by \(pattern)", details)
                let opened = DispatchTime.now()
                let relay = Relay(client, upstream, queue: queue, config: proxy.config.relay) { [self] end, stats in
                    let ms = (DispatchTime.now().uptimeNanoseconds - opened.uptimeNanoseconds) / 1_000_000
                    record(.tunnelClosed, name, "closed: \(end)",
                           ["upstream": endpoint(address, port), "bytes-up": String(stats.forward),
                            "bytes-down": String(stats.backward), "duration-ms": String(ms)])
                    phase = .closed
                    proxy.table.remove(self, client: peer)
                }
                phase = .relaying(relay)
                relay.start()
            }
        }
    }
}
