import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc
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
    /// `--allow-host-port`: a connection to the sandbox's 127.0.0.1:PORT is spliced
    /// to this machine's 127.0.0.1:PORT (the user's explicit choice; nothing vetted).
    public var hostLoopbackPorts: Set<UInt16> = []
    /// The pasta gateway hop: every connection must begin with the forwarder's
    /// header (`ForwarderHeader`) carrying this token, naming the address and
    /// port the sandbox dialled inside. nil: no header (direct and splice hops).
    public var forwarderToken: String?
    /// Unlisted names (issue 13): refused, held for a decision (`--ask`), or let
    /// through as would-block (`--audit`). Hold and pass need per-name addresses.
    public var unlisted: UnlistedNames = .refuse
    /// The local port that stands for TLS by SNI on per-name addresses (443 inside
    /// the sandbox; tests, which cannot bind 443, use their listener's).
    public var tlsPort: UInt16 = 443
    /// `[proxy]` of the global config: allowed names (but no_proxy's) are reached
    /// through this HTTP CONNECT proxy, which resolves them and picks the address.
    public var upstreamProxy: UpstreamProxy?

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
    /// Per-name addresses (the direct hop): the local address a connection
    /// arrived on names what it is for. nil: every connection is routed by SNI.
    let names: NameTable?
    /// `--ask`: who decides about held connections (nil: nobody, they are refused).
    let approver: (any Approver)?
    private let acceptor: Acceptor
    var table: ConnectionTable { acceptor.table }
    /// Peeks that returned bytes while looking for ClientHellos, and the bytes
    /// they copied out of the kernel (tests check that this stays linear).
    let helloPeeks = Mutex((count: 0, bytes: 0))

    public init(allowlist: Allowlist, events: any EventSink, config: ProxyConfig = .init(),
                names: NameTable? = nil, approver: (any Approver)? = nil,
                resolver: @escaping @Sendable (String) -> [IPAddress] = systemResolve) {
        self.approver = approver
        self.allowlist = allowlist
        self.events = events
        self.config = config
        self.names = names
        self.resolver = resolver
        self.acceptor = Acceptor(cap: config.maxConnectionsPerClient, events: events)
        acceptor.open = { [weak self] socket, peer, client, loop in
            guard let self else { return nil }
            return ProxyConnection(socket: socket, peer: peer, clientEndpoint: client, proxy: self, loop: loop)
        }
    }

    /// Listens on `bindAddress:port` (0 picks a free port) and returns the port.
    /// May be called again for another address.
    @discardableResult
    public func start(bindAddress: String = "127.0.0.1", port: UInt16 = 0) throws -> UInt16 {
        try acceptor.listen(bindAddress: bindAddress, port: port)
    }

    /// Accepts on a listening socket made elsewhere: on the direct hop, one the
    /// namespace helper made inside the sandbox's namespace. The socket is now the proxy's.
    public func adopt(listener socket: consuming Descriptor) throws { try acceptor.adopt(socket) }

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
/// dial, relay. All state lives on one event loop's thread, which also runs
/// its watches' handlers and its deadline: no hand-over to a worker per report.
/// `@unchecked Sendable`: the mutable state (phase, watches, buffer, hello) is
/// owned by `loop`'s thread rather than a lock; `start` and `stop` only hop
/// onto it, and every other method asserts it runs there.
final class ProxyConnection: AcceptedConnection, @unchecked Sendable {
    private enum Phase { case hello, connecting, relaying(Relay), closed }

    private let client: Int32
    /// The client's socket, and the upstream's once dialled, until the relay
    /// takes both (or `closeClient` closes them).
    private var owned: Descriptor?
    private var upstream: Descriptor?
    private let peer: IPAddress?
    private let clientEndpoint: String
    private let proxy: SNIProxy
    /// The loop its listener accepted it on.
    private let loop: EventLoop
    private var phase = Phase.hello
    private var helloWatch: Watch?
    /// The hello deadline (handshakeTimeout from the start).
    private var deadline: LoopTimer?
    private var buffer: UnsafeMutableRawBufferPointer?
    private var seen = 0
    /// The hello so far: each wake-up hands it only the newly arrived bytes.
    private var hello: ClientHello.Reassembler?
    /// SO_PEEK_OFF is on: a peek returns only bytes not peeked before.
    private var peekOffset = false
    private var stopRequested = false

    init(socket: consuming Descriptor, peer: IPAddress?, clientEndpoint: String, proxy: SNIProxy, loop: EventLoop) {
        self.loop = loop
        client = socket.raw
        owned = .some(socket)
        self.peer = peer
        self.clientEndpoint = clientEndpoint
        self.proxy = proxy
    }

    /// What the local address and port the client dialled stand for.
    private enum Route {
        /// By SNI against the allowlist (127.0.0.1:443, or no per-name addresses).
        case sni
        /// TLS whose SNI must be `name` (the name the address stands for).
        case tls(name: String)
        /// Any TCP protocol to `name`:`port`.
        case plain(name: String, port: UInt16, HostPattern)
        /// `--allow-host-port`: this machine's own 127.0.0.1:port.
        case hostLoopback(port: UInt16)
        case refused(subject: Event.Subject, reason: String, details: [String: String])
    }

    /// The direct hop: the accepted socket's own local address and port.
    private func route() -> Route {
        guard let names = proxy.names, let (local, port) = Sock.address(client, peer: false) else { return .sni }
        return route(local: local, port: port, name: names.name(at: local))
    }

    /// What `local`:`port` inside stands for, `name` being the name that address
    /// was handed out for (nil: none).
    private func route(local: IPAddress, port: UInt16, name: String?) -> Route {
        if local == .loopbackV4 && proxy.config.hostLoopbackPorts.contains(port) { return .hostLoopback(port: port) }
        guard let name else {
            // 127.0.0.1 stands for no name: routed by SNI. Any other address was
            // never handed out (a pooled one not yet given to a name, a guess).
            if port == proxy.config.tlsPort && local == .loopbackV4 { return .sni }
            return .refused(subject: .name(endpoint(local, port)), reason: "no allowed name has this address and port",
                            details: ["destination": endpoint(local, port), "protocol": "tcp"])
        }
        if let pattern = proxy.allowlist.matchPlain(name, port: port) { return .plain(name: name, port: port, pattern) }
        if port == proxy.config.tlsPort, proxy.allowlist.matchTLS(name) != nil { return .tls(name: name) }
        // An unlisted name's address (hold, pass): TLS only, decided at the hello.
        if port == proxy.config.tlsPort, proxy.allowlist.match(name) == nil, proxy.config.unlisted.admits(name) { return .tls(name: name) }
        return .refused(subject: .name(name), reason: "port \(port) is not allowed for \(name)"
                            + (port == 443 ? " (allowed with a port only)" : "; allow it with --allow \(name):\(port)"),
                        details: ["port": String(port), "protocol": "tcp"])
    }

    /// The name the connection's address stands for, when the SNI must match it.
    private var requiredName: String?

    func start() {
        loop.async { [self] in
            guard case .hello = phase else { return }
            let t = LoopTimer(on: loop) { [weak self] in
                guard let self else { return }
                self.block(.noServerName, "no complete ClientHello within \(Int(self.proxy.config.handshakeTimeout)) s")
            }
            deadline = t
            t.schedule(after: proxy.config.handshakeTimeout)
            if proxy.config.forwarderToken != nil {
                let w = Watch.read(client, on: loop) { [weak self] in self?.headerReadable() }
                headerWatch = w
                w.enable()
                return
            }
            proceed(route())
        }
    }

    /// The forwarder's header, read (consumed) before anything else.
    private var headerWatch: Watch?

    private func headerReadable() {
        loop.preconditionOnThread()
        guard case .hello = phase, let w = headerWatch else { return }
        var buf = [UInt8](repeating: 0, count: ForwarderHeader.maxSize)
        let got = Int(ap_recv_peek(client, &buf, buf.count))
        if got == -Int(EAGAIN) || got == -Int(EINTR) { return }
        func refuse(_ why: String) {
            block(.forwarderHeader, why + "; only agentpen's forwarder may connect to the proxy")
        }
        guard got > 0 else { return refuse("closed or failed before the header") }
        guard let nl = buf[0..<got].firstIndex(of: UInt8(ascii: "\n")) else {
            if got >= buf.count || ap_peer_closed(client) == 1 { return refuse("no header line") }
            _ = ap_set_rcvlowat(client, Int32(got + 1))
            return
        }
        // Consume exactly the header; the stream after it is the sandbox's.
        var line = [UInt8](repeating: 0, count: nl + 1)
        guard Glibc.read(client, &line, nl + 1) == nl + 1 else { return refuse("short header read") }
        _ = ap_set_rcvlowat(client, 1)
        guard let h = ForwarderHeader.parse(Array(line.dropLast()), token: proxy.config.forwarderToken ?? "") else {
            return refuse("missing or wrong forwarder header")
        }
        headerWatch = nil
        w.cancel()
        loop.async { [self] in
            guard case .hello = phase else { return }
            proceed(route(local: h.local, port: h.port, name: h.name))
        }
    }

    /// Acts on the route: a TLS route waits for the ClientHello, the others dial
    /// or refuse at once.
    private func proceed(_ route: Route) {
        loop.preconditionOnThread()
        switch route {
        case .sni: break
        case .tls(let name):
            requiredName = name
            dialEarly(name)
        case .plain(let name, let port, let pattern):
            phase = .connecting
            return endHello { self.resolve(name, pattern, ["port": String(port), "protocol": "tcp"], port: port) }
        case .hostLoopback(let port):
            phase = .connecting
            deadline?.cancel()
            deadline = nil
            let pattern = try! HostPattern("host-port.invalid:\(port)")
            let extra = ["port": String(port), "protocol": "tcp", "host-port": "allowed by --allow-host-port \(port)"]
            return connectFirst([.loopbackV4], port: port) { [self] address, failures in
                conclude(address.map { .connected(dialled: endpoint($0, port)) }
                         ?? .failed(.failure, reason: "could not connect: " + failures.joined(separator: "; "), permit: nil),
                         "127.0.0.1:\(port)", pattern, extra, port: port)
            }
        case .refused(let subject, let reason, let details):
            return block(subject, reason, details)
        }
        let w = Watch.read(client, on: loop) { [weak self] in self?.readable() }
        helloWatch = w
        w.enable()
    }

    func stop() {
        loop.async { [self] in
            stopRequested = true
            switch phase {
            case .hello:
                // Closed now, so nothing queued behind this (a hello or header
                // read, the deadline) starts a new phase while the watches go.
                phase = .closed
                endHello { self.closeClient() }
            case .relaying(let r): r.stop()
            case .connecting, .closed: break   // the dial/resolve completion sees stopRequested
            }
        }
    }

    private func record(_ kind: Event.Kind, _ subject: Event.Subject, _ reason: String, _ extra: [String: String] = [:]) {
        var details = extra
        details["client"] = clientEndpoint
        proxy.events.record(Event(kind, subject: subject, reason: reason, details: details))
    }

    private func readable() {
        loop.preconditionOnThread()
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
        guard from < size else { return block(.noServerName, "no complete ClientHello in the first \(size) bytes") }
        let got = Int(ap_recv_peek(client, buffer!.baseAddress! + from, size - from))
        if got == -Int(EAGAIN) || got == -Int(EINTR) { return }
        if got < 0 { return block(.noServerName, "client error before the ClientHello: \(String(cString: strerror(Int32(-got))))") }
        if got > 0 { proxy.helloPeeks.withLock { $0.count += 1; $0.bytes += got } }
        let n = from + got
        if n == 0 { return block(.noServerName, "client closed without sending anything") }
        if n == seen {
            // With SO_RCVLOWAT set we are only woken for more bytes or an end.
            if got == 0 || ap_peer_closed(client) == 1 {
                return block(.noServerName, "client closed before the ClientHello was complete")
            }
            return
        }
        guard n > seen else { return block(.noServerName, "client stream shrank before the ClientHello") }
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
            block(.noServerName, "ClientHello without a server name", extra)
        case .invalid(let why):
            block(.noServerName, "invalid ClientHello: \(why)", extra)
        case .serverName(let name):
            if let required = requiredName, name != required {
                extra["address-stands-for"] = required
                return block(.name(name), "SNI \(name) does not match \(required), the name this address stands for", extra)
            }
            guard let pattern = proxy.allowlist.matchTLS(name) else { return unlisted(name, extra) }
            phase = .connecting
            endHello { self.helloPassed(name, pattern, extra) }
        }
    }

    /// A ClientHello for a name the allowlist does not have (its SNI equals the
    /// name its address stands for, if any).
    private func unlisted(_ name: String, _ extra: [String: String]) {
        loop.preconditionOnThread()
        var extra = extra
        extra["permit"] = Permit.allow(name)
        // A name listed for NAME:PORT only, or one --allow would refuse, is never let through.
        guard proxy.allowlist.match(name) == nil, proxy.config.unlisted.admits(name),
              let pattern = try? HostPattern(name) else {
            return block(.name(name), "not in the allowlist", extra)
        }
        switch proxy.config.unlisted {
        case .refuse:
            block(.name(name), "not in the allowlist", extra)
        case .hold:
            guard let approver = proxy.approver else {
                return block(.name(name), "not in the allowlist (held for a decision, but nobody can answer)", extra)
            }
            // Held: the hello stays queued, nothing is resolved or dialled until the user decides.
            phase = .connecting
            let extra = extra
            endHello {
                if self.stopRequested { return self.closeClient() }
                approver.request(host: name, client: self.clientEndpoint) { outcome in
                    self.loop.async { self.held(name, pattern, extra, outcome) }
                }
            }
        case .pass:
            record(.wouldBlock, .name(name), "not in the allowlist; let through (--audit)", extra)
            var details = extra
            details["permit"] = nil
            details["audit"] = "true"
            phase = .connecting
            endHello { self.resolve(name, pattern, details, port: self.proxy.config.upstreamPort) }
        }
    }

    /// The user's decision (or the time running out) about a held connection.
    private func held(_ name: String, _ pattern: HostPattern, _ extra: [String: String], _ outcome: HoldOutcome) {
        loop.preconditionOnThread()
        if stopRequested { return closeClient() }
        switch outcome {
        case .allowed(let reason, let decision):
            var details = extra.merging(decision) { _, new in new }
            details["permit"] = nil
            details["asked"] = reason
            resolve(name, pattern, details, port: proxy.config.upstreamPort)
        case .refused(let reason, let decision):
            record(.connectionBlocked, .name(name), reason, extra.merging(decision) { _, new in new })
            closeClient()
        }
    }

    /// Cancels the hello watcher and deadline; `then` runs once the watches are gone
    /// and the descriptor may be closed or handed on (next on the loop).
    private func endHello(then: @escaping () -> Void) {
        loop.preconditionOnThread()
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
        if let w = headerWatch {
            headerWatch = nil
            w.cancel()
        }
        loop.later(then)
    }

    private func block(_ subject: Event.Subject, _ reason: String, _ extra: [String: String] = [:]) {
        guard case .hello = phase else { return }
        phase = .closed
        record(.connectionBlocked, subject, reason, extra)
        endHello { self.closeClient() }
    }

    private func closeClient() {
        loop.preconditionOnThread()
        phase = .closed
        guard !removed else { return }
        removed = true
        // A dial still under way (an early one whose hello was refused, or a stop):
        // its socket is closed now, before the connection leaves the table.
        if let d = dialer {
            dialer = nil
            d.cancel()
        }
        // An early dial's upstream that was never used: nothing was sent on it;
        // a reset ends it at once on both ends (no TIME_WAIT left per refused hello).
        if early != nil, let fd = upstream?.raw { _ = ap_set_linger_reset(fd) }
        owned = nil
        upstream = nil
        proxy.table.remove(self, client: peer)
    }

    /// How resolving and dialling a name ended. Only `conclude` records it, so an
    /// early dial whose hello is refused leaves no trace but the refusal.
    private enum DialOutcome {
        /// The socket is `upstream`; `dialled` names the address and port.
        case connected(dialled: String)
        case failed(Event.Kind, reason: String, permit: String?)
    }

    /// The direct hop's early dial: the connection's address already names the
    /// TLS name it is for, so when that name is allowed, resolving, vetting and
    /// connecting run while the ClientHello is on its way. Nothing is sent on
    /// the upstream socket and nothing about the dial is recorded until the
    /// hello has passed (SNI equal to the name, allowed); a refused hello closes
    /// the socket unsent and is reported exactly as without the early dial.
    private struct EarlyDial {
        let name: String
        let pattern: HostPattern
        /// How the dial ended; nil while it runs.
        var outcome: DialOutcome?
        /// The hello passed with these details: act on the outcome once it is there.
        var helloExtra: [String: String]?
    }
    private var early: EarlyDial?
    /// The dial under way, cancelled by `closeClient`.
    private var dialer: Dialer?
    /// Out of the table (once only: the early dial and the hello may both end the connection).
    private var removed = false

    private func dialEarly(_ name: String) {
        loop.preconditionOnThread()
        // Through an upstream proxy the dial is a CONNECT request: bytes. Only direct dials start early.
        guard let pattern = proxy.allowlist.matchTLS(name), proxy.config.upstreamProxy.map({ $0.bypasses(name) }) ?? true
        else { return }
        early = EarlyDial(name: name, pattern: pattern)
        let port = proxy.config.upstreamPort
        resolveAndConnect(name, pattern, port: port) { [self] outcome in
            early?.outcome = outcome
            if let extra = early?.helloExtra { conclude(outcome, name, pattern, extra, port: port) }
        }
    }

    /// The ClientHello passed (its SNI `name` allowed and, on a per-name address,
    /// that address's name): the early dial's outcome if there is one, else the dial now.
    private func helloPassed(_ name: String, _ pattern: HostPattern, _ extra: [String: String]) {
        loop.preconditionOnThread()
        let port = proxy.config.upstreamPort
        guard var e = early, e.name == name else { return resolve(name, pattern, extra, port: port) }
        if stopRequested { return closeClient() }
        if let outcome = e.outcome { return conclude(outcome, name, pattern, extra, port: port) }
        e.helloExtra = extra
        early = e
    }

    private func resolve(_ name: String, _ pattern: HostPattern, _ extra: [String: String], port: UInt16) {
        if stopRequested { return closeClient() }
        let resolver = proxy.resolver
        if let up = proxy.config.upstreamProxy, !up.bypasses(name) {
            // A name --audit lets through is vetted like an allowed one; through the
            // upstream proxy its address could not be (an approved --ask name is the
            // user's --allow, and goes as one).
            if extra["audit"] != nil {
                record(.connectionBlocked, .name(name), "not in the allowlist; --audit does not send it through the upstream proxy"
                       + " (which picks the address, so loopback and private ones could not be refused)", extra)
                return closeClient()
            }
            // The proxy resolves the name and chooses the address: only its own
            // address (from the user's global config) is looked up here, and not vetted.
            WorkerQueues.resolver().async {
                let addresses = IPAddress(up.host).map { [$0] } ?? resolver(up.host)
                self.loop.async { self.dialProxy(up, name, pattern, addresses, extra, port: port) }
            }
            return
        }
        resolveAndConnect(name, pattern, port: port) { [self] outcome in conclude(outcome, name, pattern, extra, port: port) }
    }

    /// Resolves `name` (here, never trusting the sandbox's lookup), vets every
    /// address and connects to the first vetted one that answers: exactly a vetted
    /// address, no second lookup. Records nothing; `then` gets how it ended.
    private func resolveAndConnect(_ name: String, _ pattern: HostPattern, port: UInt16,
                                   then: @escaping @Sendable (DialOutcome) -> Void) {
        let resolver = proxy.resolver
        // getaddrinfo blocks: never on the loop's thread (it would stall every connection there).
        WorkerQueues.resolver().async {
            let addresses = resolver(name)
            self.loop.async { self.vetAndConnect(name, pattern, addresses, port: port, then: then) }
        }
    }

    private func vetAndConnect(_ name: String, _ pattern: HostPattern, _ addresses: [IPAddress], port: UInt16,
                               then: @escaping @Sendable (DialOutcome) -> Void) {
        loop.preconditionOnThread()
        if stopRequested || removed { return closeClient() }
        guard !addresses.isEmpty else { return then(.failed(.failure, reason: "could not resolve \(name)", permit: nil)) }
        var vetted: [IPAddress] = []
        var refusals: [String] = []
        for a in addresses {
            switch proxy.vet(a, pattern) {
            case .allowed: vetted.append(a)
            case .refused(let why): refusals.append(why)
            }
        }
        guard !vetted.isEmpty else {
            // Only private answers: --allow-private would have permitted it.
            // Also for a name --audit let through: `agentpen suggest` shows the user
            // that it needs a private upstream, which only they can judge.
            let onlyPrivate = addresses.allSatisfy { if case .privateUse = AddressPolicy.classify($0) { true } else { false } }
            return then(.failed(.connectionBlocked, reason: "every address refused: " + refusals.joined(separator: "; "),
                                permit: !pattern.allowsPrivateUpstream && onlyPrivate ? Permit.allowPrivate(name) : nil))
        }
        connectFirst(vetted, port: port) { address, failures in
            then(address.map { .connected(dialled: endpoint($0, port)) }
                 ?? .failed(.failure, reason: "could not connect: " + failures.joined(separator: "; "), permit: nil))
        }
    }

    /// Acts on how the dial ended: the relay, or the event and the close.
    private func conclude(_ outcome: DialOutcome, _ name: String, _ pattern: HostPattern, _ extra: [String: String],
                          port: UInt16) {
        loop.preconditionOnThread()
        if stopRequested { return closeClient() }
        switch outcome {
        case .connected(let dialled):
            relay(name, pattern, dialled, extra, port: port)
        case .failed(let kind, let reason, let permit):
            var details = extra
            if let permit { details["permit"] = permit }
            record(kind, .name(name), reason, details)
            closeClient()
        }
    }

    private func dialProxy(_ up: UpstreamProxy, _ name: String, _ pattern: HostPattern, _ addresses: [IPAddress],
                           _ extra: [String: String], port: UInt16) {
        loop.preconditionOnThread()
        if stopRequested { return closeClient() }
        var extra = extra
        extra["proxy"] = up.redactedURL
        guard !addresses.isEmpty else {
            record(.failure, .name(name), "could not resolve the upstream proxy \(up.host) (proxy.url in the global config)", extra)
            return closeClient()
        }
        // The addresses are the upstream proxy's; once connected, agentpen asks it
        // for `name`:`port` with CONNECT.
        connectFirst(addresses, port: up.port) { [self] address, failures in
            guard let address, let fd = upstream?.raw else {
                record(.failure, .name(name), "could not connect to the upstream proxy: " + failures.joined(separator: "; "), extra)
                return closeClient()
            }
            let dialled = endpoint(address, up.port)
            guard let request = up.connectRequest(name: name, port: port) else {
                record(.failure, .name(name), "not a name to send to the upstream proxy", extra)
                return closeClient()
            }
            ProxyTunnel.open(fd, request: request,
                             timeout: proxy.config.connectTimeout, loop: loop) { [self] outcome in
                if stopRequested { return closeClient() }
                var details = extra
                details["upstream"] = dialled
                details["via-proxy"] = "CONNECT \(name):\(port)"
                switch outcome {
                case .open:
                    relay(name, pattern, dialled, details, port: port,
                          note: " (through the upstream proxy \(up.endpoint), which chose the address)")
                case .refused(let reply):
                    details["proxy-status"] = reply.statusLine
                    record(.connectionBlocked, .name(name),
                           "the upstream proxy \(up.endpoint) refused CONNECT \(name):\(port): \(reply.statusLine)", details)
                    closeClient()
                case .failed(let why):
                    record(.failure, .name(name), "upstream proxy \(up.endpoint), CONNECT \(name):\(port): \(why)", details)
                    closeClient()
                }
            }
        }
    }

    /// Connects to the first of `addresses` that answers, in order; the socket is
    /// then `upstream` and `then` gets its address. nil: none did (each one's error).
    private func connectFirst(_ addresses: [IPAddress], port: UInt16, _ i: Int = 0, _ failures: [String] = [],
                              then: @escaping (IPAddress?, [String]) -> Void) {
        loop.preconditionOnThread()
        if stopRequested || removed { return closeClient() }
        guard i < addresses.count else { return then(nil, failures) }
        let address = addresses[i]
        dialer = Dialer.connect(to: address, port: port, timeout: proxy.config.connectTimeout, loop: loop) { [self] result in
            dialer = nil
            switch consume result {
            case .failure(let e):
                connectFirst(addresses, port: port, i + 1, failures + [e.description], then: then)
            case .success(let dialledSocket):
                // The connection's from here: `closeClient` closes it, `relay` hands it on.
                upstream = .some(dialledSocket)
                if stopRequested || removed { return closeClient() }
                then(address, failures)
            }
        }
    }

    /// The upstream is connected (`dialled` names what agentpen dialled): bytes
    /// both ways, and the event.
    private func relay(_ name: String, _ pattern: HostPattern, _ dialled: String,
                       _ extra: [String: String], port: UInt16, note: String = "") {
        loop.preconditionOnThread()
        var details = extra
        details["upstream"] = dialled
        details["pattern"] = extra["audit"] != nil ? "(audit)" : extra["asked"] != nil ? "(asked)" : pattern.description
        details["asked"] = nil
        let why = (extra["audit"] != nil ? "not in the allowlist; let through by --audit"
            : extra["asked"] != nil ? "not in the allowlist; " + extra["asked"]!
            : extra["host-port"] ?? "allowed by \(extra["protocol"] == "tcp" ? "\(pattern):\(port)" : pattern.description)") + note
        details["host-port"] = nil
        if extra["host-port"] != nil { details["pattern"] = "--allow-host-port \(port)" }
        let opened = DispatchTime.now()
        guard let clientSocket = owned.take(), let upstreamSocket = upstream.take() else { return closeClient() }
        let relay = Relay(clientSocket, upstreamSocket, loop: loop, config: proxy.config.relay) { [self] end, stats in
            let ms = (DispatchTime.now().uptimeNanoseconds - opened.uptimeNanoseconds) / 1_000_000
            record(.tunnelClosed, .name(name), "closed: \(end)",
                   ["upstream": dialled, "bytes-up": String(stats.forward),
                    "bytes-down": String(stats.backward), "duration-ms": String(ms)])
            phase = .closed
            removed = true
            proxy.table.remove(self, client: peer)
        }
        phase = .relaying(relay)
        // The relay starts here, so the ClientHello (queued on the client socket)
        // goes upstream before the event is encoded and written; the event is
        // still recorded before anything comes back (the relay runs on this
        // loop's thread), and always before the tunnel-closed event (its close handler
        // runs there later).
        relay.startHere()
        record(.connectionAllowed, .name(name), why, details)
    }
}
