import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// Fresh TCP sockets made inside the sandbox's namespace, one per request, by the
/// namespace helper (it answers each request byte on the unix socket pair with one
/// socket, SCM_RIGHTS). A socket connects in the namespace it was made in, so a
/// socket from here reaches the sandbox's own loopback.
/// `@unchecked Sendable`: `waiting` and `watch` are owned by the serial `queue`.
public final class NamespaceSockets: @unchecked Sendable {
    static let requestTag: UInt8 = 2
    private let sock: Int32
    private let queue = DispatchQueue(label: "agentpen.nssockets")
    private var waiting: [@Sendable (Int32?) -> Void] = []
    private var watch: Watch?
    private var ended = false

    /// Takes `socket` (the agentpen end of the pair): closed once stopped.
    public init(_ socket: consuming Descriptor) {
        sock = socket.raw
        let w = Watch.read(owning: socket, queue: queue, group: nil) { [weak self] in self?.received() }
        queue.sync {
            watch = w
            w.enable()
        }
    }

    /// Asks for one socket; `then` runs on an internal queue with it (nonblocking,
    /// now `then`'s to own: the one raw hand-over, as it crosses to the
    /// connection's loop) or nil once the helper is gone.
    func request(_ then: @escaping @Sendable (Int32?) -> Void) {
        queue.async { [self] in
            guard !ended, ap_send_fds(sock, Self.requestTag, nil, 0) == 1 else { return then(nil) }
            waiting.append(then)
        }
    }

    private func received() {
        dispatchPrecondition(condition: .onQueue(queue))
        var fd: Int32 = -1, n: Int32 = 0
        var tag: UInt8 = 0
        let r = ap_recv_fds(sock, &tag, &fd, 1, &n)
        if r == -Int(EAGAIN) || r == -Int(EINTR) { return }
        let received = n == 1 ? Descriptor(fd) : nil
        guard r == 1, n == 1, tag == Self.requestTag else {
            if r <= 0 { end() }
            return
        }
        guard !waiting.isEmpty, let socket = received else { return }
        _ = ap_set_nonblocking(socket.raw)
        waiting.removeFirst()(socket.take())
    }

    private func end() {
        ended = true
        watch?.cancel()
        watch = nil
        let all = waiting
        waiting = []
        for w in all { w(nil) }
    }

    public func stop() { queue.sync { if !ended { end() } } }
}

/// `--publish PORT`: listens on this machine's 127.0.0.1:PORT and splices every
/// connection to 127.0.0.1:PORT inside the sandbox, through a socket the helper
/// made there. Each connection is an event.
/// Sendable without `@unchecked`: immutable Sendable properties and the acceptor.
public final class Publisher: Sendable {
    let port: UInt16
    let sockets: NamespaceSockets
    let events: any EventSink
    let config: ProxyConfig
    private let acceptor: Acceptor
    var table: ConnectionTable { acceptor.table }

    public init(port: UInt16, sockets: NamespaceSockets, events: any EventSink, config: ProxyConfig = .init()) {
        self.port = port
        self.sockets = sockets
        self.events = events
        self.config = config
        acceptor = Acceptor(cap: config.maxConnectionsPerClient, events: events)
        acceptor.open = { [weak self] socket, peer, client, loop in
            guard let self else { return nil }
            return PublishedConnection(socket: socket, peer: peer, clientEndpoint: client, publisher: self, loop: loop)
        }
    }

    /// Listens on this machine's 127.0.0.1:port.
    public func start() throws { _ = try acceptor.listen(bindAddress: "127.0.0.1", port: port) }

    public func stop() { acceptor.stop() }
}

/// `@unchecked Sendable`: `owned`, `relay`, `stopRequested` and `closed` are
/// owned by `loop`'s thread.
final class PublishedConnection: AcceptedConnection, @unchecked Sendable {
    private let client: Int32
    /// The client's socket until the relay takes it (or `finish` closes it).
    private var owned: Descriptor?
    private let peer: IPAddress?
    private let clientEndpoint: String
    private let publisher: Publisher
    /// The loop its listener accepted it on.
    private let loop: EventLoop
    private var relay: Relay?
    private var stopRequested = false
    private var closed = false

    init(socket: consuming Descriptor, peer: IPAddress?, clientEndpoint: String, publisher: Publisher, loop: EventLoop) {
        self.loop = loop
        client = socket.raw
        owned = .some(socket)
        self.peer = peer
        self.clientEndpoint = clientEndpoint
        self.publisher = publisher
    }

    func start() {
        let p = publisher
        p.sockets.request { [self] fd in
            loop.async { [self] in
                let socket = fd.map { Descriptor($0) }   // ours from here (closed on every early return)
                guard let socket, !stopRequested else { return finish("the sandbox is gone") }
                Dialer.connect(to: .loopbackV4, port: p.port, timeout: p.config.connectTimeout, loop: loop,
                               socket: socket) { [self] result in
                    switch consume result {
                    case .failure(let e):
                        finish("nothing answers on 127.0.0.1:\(p.port) inside the sandbox (\(e))")
                    case .success(let inside):
                        if stopRequested { return finish(nil) }
                        guard let client = owned.take() else { return }
                        p.events.record(Event(.connectionAllowed, subject: .publishedPort(p.port),
                                              reason: "allowed by --publish \(p.port)",
                                              details: ["client": clientEndpoint, "protocol": "tcp", "port": String(p.port)]))
                        let r = Relay(client, inside, loop: loop, config: p.config.relay) { [self] _, _ in
                            closed = true
                            p.table.remove(self, client: peer)
                        }
                        relay = r
                        r.start()
                    }
                }
            }
        }
    }

    private func finish(_ failure: String?) {
        loop.preconditionOnThread()
        guard !closed else { return }
        closed = true
        if let failure {
            publisher.events.record(Event(.failure, subject: .publishedPort(publisher.port), reason: failure,
                                          details: ["client": clientEndpoint]))
        }
        owned = nil
        publisher.table.remove(self, client: peer)
    }

    func stop() {
        loop.async { [self] in
            stopRequested = true
            relay?.stop()
        }
    }
}
