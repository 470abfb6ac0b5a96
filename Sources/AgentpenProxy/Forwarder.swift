import AgentpenEvents
import AgentpenPolicy
import CShim
import Dispatch
import Foundation

/// Accepts on a local address and splices every connection to one fixed target
/// (inside the namespace: loopback:443 → gateway:<proxy port>). It decides
/// nothing; the proxy at the other end does. Same relay as the proxy.
public final class Forwarder: @unchecked Sendable {
    public let target: IPAddress
    public let targetPort: UInt16
    let events: any EventSink
    let config: ProxyConfig
    let table: ConnectionTable
    private let acceptQueue = DispatchQueue(label: "agentpen.forwarder.accept")
    private var listeners: [Listener] = []

    /// Only `connectTimeout`, `idleTimeout`, `pipeSize` and
    /// `maxConnectionsPerClient` of `config` apply.
    public init(target: IPAddress, port: UInt16, events: any EventSink = NullSink(), config: ProxyConfig = .init()) {
        self.target = target
        self.targetPort = port
        self.events = events
        self.config = config
        self.table = ConnectionTable(cap: config.maxConnectionsPerClient)
    }

    /// Listens on `bindAddress:port` (0 picks a free port); returns the port.
    @discardableResult
    public func start(bindAddress: String = "127.0.0.1", port: UInt16 = 443) throws -> UInt16 {
        ignoreSIGPIPE()
        let address = try Sock.parseAddress(bindAddress)
        let l = try Listener(address: address, port: port, queue: acceptQueue) { [weak self] fd, peer, peerPort in
            guard let self else { close(fd); return }
            self.accepted(fd, peer: peer, peerPort: peerPort)
        }
        acceptQueue.sync { listeners.append(l) }
        l.start()
        return l.port
    }

    public func stop() {
        let ls = acceptQueue.sync { () -> [Listener] in
            defer { listeners = [] }
            return listeners
        }
        for l in ls { l.stop() }
        table.stopAll()
    }

    public var connectionCount: Int { table.count }

    private func accepted(_ fd: Int32, peer: IPAddress?, peerPort: UInt16) {
        let client = peer.map { endpoint($0, peerPort) } ?? "?"
        guard table.admit(peer) else {
            _ = ap_set_linger_reset(fd)
            close(fd)
            events.record(Event(.connectionBlocked, subject: "(client \(client))",
                                reason: "more than \(config.maxConnectionsPerClient) concurrent connections from this client",
                                details: ["client": client]))
            return
        }
        let c = ForwardedConnection(fd: fd, peer: peer, clientEndpoint: client, forwarder: self)
        table.add(c)
        c.start()
    }
}

final class ForwardedConnection: Stoppable, @unchecked Sendable {
    private let client: Int32
    private let peer: IPAddress?
    private let clientEndpoint: String
    private let forwarder: Forwarder
    private let queue = WorkerQueues.connectionQueue("agentpen.forwarder.conn")
    private var relay: Relay?
    private var stopRequested = false
    private var closed = false

    init(fd: Int32, peer: IPAddress?, clientEndpoint: String, forwarder: Forwarder) {
        self.client = fd
        self.peer = peer
        self.clientEndpoint = clientEndpoint
        self.forwarder = forwarder
    }

    func start() {
        let f = forwarder
        Dialer.connect(to: f.target, port: f.targetPort, timeout: f.config.connectTimeout, queue: queue) { [self] result in
            switch result {
            case .failure(let e):
                f.events.record(Event(.failure, subject: endpoint(f.target, f.targetPort),
                                      reason: "forwarder could not connect: \(e)", details: ["client": clientEndpoint]))
                finish()
            case .success(let upstream):
                if stopRequested {
                    close(upstream)
                    return finish()
                }
                let r = Relay(client, upstream, queue: queue, config: f.config.relay) { [self] _, _ in
                    closed = true
                    f.table.remove(self, client: peer)
                }
                relay = r
                r.start()
            }
        }
    }

    private func finish() {
        guard !closed else { return }
        closed = true
        close(client)
        forwarder.table.remove(self, client: peer)
    }

    func stop() {
        queue.async { [self] in
            stopRequested = true
            relay?.stop()
        }
    }
}
