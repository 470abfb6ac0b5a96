import AgentpenEvents
import AgentpenPolicy
import CShim
import Dispatch
import Foundation

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

    /// Takes `sock` (the agentpen end of the pair).
    public init(_ sock: Int32) {
        self.sock = sock
        queue.sync {
            let w = Watch.read(sock, queue: queue, group: nil, onCancel: { close(sock) }) { [weak self] in self?.received() }
            watch = w
            w.enable()
        }
    }

    /// Asks for one socket; `then` runs on an internal queue with it (nonblocking)
    /// or nil once the helper is gone.
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
        guard r == 1, n == 1, tag == Self.requestTag else {
            if n == 1 { close(fd) }
            if r <= 0 { end() }
            return
        }
        guard !waiting.isEmpty else { close(fd); return }
        _ = ap_set_nonblocking(fd)
        waiting.removeFirst()(fd)
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
        acceptor = Acceptor(label: "agentpen.publish.accept", cap: config.maxConnectionsPerClient, events: events)
        acceptor.open = { [weak self] fd, peer, client in
            self.map { PublishedConnection(fd: fd, peer: peer, clientEndpoint: client, publisher: $0) }
        }
    }

    /// Listens on this machine's 127.0.0.1:port.
    public func start() throws { _ = try acceptor.listen(bindAddress: "127.0.0.1", port: port) }

    public func stop() { acceptor.stop() }
}

/// `@unchecked Sendable`: `relay`, `stopRequested` and `closed` are owned by the
/// serial `queue`.
final class PublishedConnection: AcceptedConnection, @unchecked Sendable {
    private let client: Int32
    private let peer: IPAddress?
    private let clientEndpoint: String
    private let publisher: Publisher
    private let queue = WorkerQueues.connectionQueue("agentpen.publish.conn")
    private var relay: Relay?
    private var stopRequested = false
    private var closed = false

    init(fd: Int32, peer: IPAddress?, clientEndpoint: String, publisher: Publisher) {
        self.client = fd
        self.peer = peer
        self.clientEndpoint = clientEndpoint
        self.publisher = publisher
    }

    func start() {
        let p = publisher
        p.sockets.request { [self] fd in
            queue.async { [self] in
                guard let fd, !stopRequested else {
                    if let fd { close(fd) }
                    return finish("the sandbox is gone")
                }
                Dialer.connect(to: .loopbackV4, port: p.port, timeout: p.config.connectTimeout, queue: queue,
                               socket: fd) { [self] result in
                    switch result {
                    case .failure(let e):
                        finish("nothing answers on 127.0.0.1:\(p.port) inside the sandbox (\(e))")
                    case .success(let inside):
                        if stopRequested { close(inside); return finish(nil) }
                        p.events.record(Event(.connectionAllowed, subject: .publishedPort(p.port),
                                              reason: "allowed by --publish \(p.port)",
                                              details: ["client": clientEndpoint, "protocol": "tcp", "port": String(p.port)]))
                        let r = Relay(client, inside, queue: queue, config: p.config.relay) { [self] _, _ in
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
        dispatchPrecondition(condition: .onQueue(queue))
        guard !closed else { return }
        closed = true
        if let failure {
            publisher.events.record(Event(.failure, subject: .publishedPort(publisher.port), reason: failure,
                                          details: ["client": clientEndpoint]))
        }
        close(client)
        publisher.table.remove(self, client: peer)
    }

    func stop() {
        queue.async { [self] in
            stopRequested = true
            relay?.stop()
        }
    }
}
