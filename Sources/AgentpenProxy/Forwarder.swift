import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// Accepts on a local address and splices every connection to one fixed target
/// (inside the namespace, for the gateway hop: loopback:443 → gateway:<proxy
/// port> through pasta's tap). It decides nothing; the proxy at the other end does.
/// Same relay as the proxy.
/// Sendable without `@unchecked`: immutable Sendable properties and the acceptor.
public final class Forwarder: Sendable {
    public let target: IPAddress
    public let targetPort: UInt16
    let events: any EventSink
    let config: ProxyConfig
    /// Per-name addresses and the run's token: each connection to the proxy then
    /// begins with a `ForwarderHeader` saying what the sandbox dialled.
    let names: NameTable?
    let token: String?
    private let acceptor: Acceptor
    var table: ConnectionTable { acceptor.table }

    /// Only `connectTimeout`, `idleTimeout`, `pipeSize` and
    /// `maxConnectionsPerClient` of `config` apply.
    public init(target: IPAddress, port: UInt16, events: any EventSink = NullSink(), config: ProxyConfig = .init(),
                names: NameTable? = nil, token: String? = nil) {
        self.target = target
        self.targetPort = port
        self.events = events
        self.config = config
        self.names = names
        self.token = token
        self.acceptor = Acceptor(cap: config.maxConnectionsPerClient, events: events)
        acceptor.open = { [weak self] socket, peer, client, loop in
            guard let self else { return nil }
            return ForwardedConnection(socket: socket, peer: peer, clientEndpoint: client, forwarder: self, loop: loop)
        }
    }

    /// Listens on `bindAddress:port` (0 picks a free port); returns the port.
    @discardableResult
    public func start(bindAddress: String = "127.0.0.1", port: UInt16 = 443) throws -> UInt16 {
        try acceptor.listen(bindAddress: bindAddress, port: port)
    }

    public func stop() { acceptor.stop() }

    public var connectionCount: Int { table.count }
}

/// `@unchecked Sendable`: `owned`, `relay`, `stopRequested` and `closed` are
/// owned by `loop`'s thread (the dial completion, the relay's close and
/// `stop` all run there), not by a lock.
final class ForwardedConnection: AcceptedConnection, @unchecked Sendable {
    private let client: Int32
    /// The client's socket until the relay takes it (or `finish` closes it).
    private var owned: Descriptor?
    private let peer: IPAddress?
    private let clientEndpoint: String
    private let forwarder: Forwarder
    /// The loop its listener accepted it on.
    private let loop: EventLoop
    private var relay: Relay?
    private var stopRequested = false
    private var closed = false

    init(socket: consuming Descriptor, peer: IPAddress?, clientEndpoint: String, forwarder: Forwarder, loop: EventLoop) {
        self.loop = loop
        client = socket.raw
        owned = .some(socket)
        self.peer = peer
        self.clientEndpoint = clientEndpoint
        self.forwarder = forwarder
    }

    func start() {
        let f = forwarder
        let header: [UInt8]
        if let token = f.token, let (local, port) = Sock.address(client, peer: false) {
            header = ForwarderHeader(local: local, port: port, name: f.names?.name(at: local)).line(token: token)
        } else {
            header = []
        }
        Dialer.connect(to: f.target, port: f.targetPort, timeout: f.config.connectTimeout, loop: loop) { [self] result in
            // Each early return drops (closes) `upstream`.
            switch consume result {
            case .failure(let e):
                f.events.record(Event(.failure, subject: endpoint(f.target, f.targetPort),
                                      reason: "forwarder could not connect: \(e)", details: ["client": clientEndpoint]))
                finish()
            case .success(let upstream):
                if stopRequested { return finish() }
                // A fresh connection's send buffer takes the whole line at once.
                if !header.isEmpty, header.withUnsafeBytes({ ap_send_nosignal(upstream.raw, $0.baseAddress, $0.count) }) != header.count {
                    f.events.record(Event(.failure, subject: endpoint(f.target, f.targetPort),
                                          reason: "forwarder could not send its header", details: ["client": clientEndpoint]))
                    return finish()
                }
                guard let socket = owned.take() else { return }
                let r = Relay(socket, upstream, loop: loop, config: f.config.relay) { [self] _, _ in
                    closed = true
                    f.table.remove(self, client: peer)
                }
                relay = r
                r.start()
            }
        }
    }

    private func finish() {
        loop.preconditionOnThread()
        guard !closed else { return }
        closed = true
        owned = nil
        forwarder.table.remove(self, client: peer)
    }

    func stop() {
        loop.async { [self] in
            stopRequested = true
            relay?.stop()
        }
    }
}
