import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// A connection the acceptor made and owns until it removes itself from the table.
protocol AcceptedConnection: Stoppable {
    func start()
}

/// What the proxy and the forwarder share: listening sockets, the table of live
/// connections, and the per-client cap. Each admitted descriptor becomes a
/// connection made by `open`; one over the cap is reset and recorded.
/// `@unchecked Sendable`: `listeners` is only touched on the serial `queue`
/// (`queue.sync` from `listen`/`stop`, accepts run there), and `open` is set once
/// by the owner right after init, before any listener starts.
final class Acceptor: @unchecked Sendable {
    let table: ConnectionTable
    private let events: any EventSink
    private let queue: DispatchQueue
    private var listeners: [Listener] = []
    /// Set once by the owner after its own initialisation.
    /// It owns the descriptor it is given (dropped, it closes).
    var open: (@Sendable (_ socket: consuming Descriptor, _ peer: IPAddress?, _ client: String) -> (any AcceptedConnection)?)?

    init(label: String, cap: Int, events: any EventSink) {
        table = ConnectionTable(cap: cap)
        self.events = events
        queue = DispatchQueue(label: label)
    }

    /// Listens on `bindAddress:port` (0 picks a free port); returns the port.
    func listen(bindAddress: String, port: UInt16) throws -> UInt16 {
        ignoreSIGPIPE()
        let address = try Sock.parseAddress(bindAddress)
        let l = try Listener(address: address, port: port, queue: queue) { [weak self] socket, peer, peerPort in
            self?.accepted(socket, peer: peer, peerPort: peerPort)
        }
        queue.sync { listeners.append(l) }
        l.start()
        return l.port
    }

    /// Accepts on a listening socket made elsewhere (now the acceptor's).
    func adopt(_ socket: consuming Descriptor) throws {
        ignoreSIGPIPE()
        let l = try Listener(adopting: socket, queue: queue) { [weak self] socket, peer, peerPort in
            self?.accepted(socket, peer: peer, peerPort: peerPort)
        }
        queue.sync { listeners.append(l) }
        l.start()
    }

    /// Stops listening and closes every connection.
    func stop() {
        let ls = queue.sync { () -> [Listener] in
            defer { listeners = [] }
            return listeners
        }
        for l in ls { l.stop() }
        table.stopAll()
    }

    /// Dropped on every path but `open`'s: `socket` then closes.
    private func accepted(_ socket: consuming Descriptor, peer: IPAddress?, peerPort: UInt16) {
        dispatchPrecondition(condition: .onQueue(queue))
        let client = peer.map { endpoint($0, peerPort) } ?? "?"
        guard table.admit(peer) else {
            _ = ap_set_linger_reset(socket.raw)
            events.record(Event(.connectionBlocked, subject: .client(endpoint: client),
                                reason: "more than \(table.cap) concurrent connections from this client",
                                details: ["client": client]))
            return
        }
        guard let open else { return table.remove(nil, client: peer) }
        guard let c = open(socket, peer, client) else {
            table.remove(nil, client: peer)
            return
        }
        table.add(c)
        c.start()
    }
}
