import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// A connection the acceptor made and owns until it removes itself from the table.
protocol AcceptedConnection: Stoppable {
    func start()
}

/// What the proxy and the forwarder share: listening sockets, the table of live
/// connections, and the per-client cap. Each admitted descriptor becomes a
/// connection made by `open`, on the loop its listener accepts on (each
/// listener gets the next loop of the pool); one over the cap is reset and recorded.
/// `@unchecked Sendable`: `listeners` is behind its Mutex, and `open` is set once
/// by the owner right after init, before any listener starts.
final class Acceptor: @unchecked Sendable {
    let table: ConnectionTable
    private let events: any EventSink
    private let listeners = Mutex<[Listener]>([])
    /// Set once by the owner after its own initialisation. Called on `loop`'s
    /// thread, where the connection is to live.
    /// It owns the descriptor it is given (dropped, it closes).
    var open: (@Sendable (_ socket: consuming Descriptor, _ peer: IPAddress?, _ client: String, _ loop: EventLoop)
        -> (any AcceptedConnection)?)?

    init(cap: Int, events: any EventSink) {
        table = ConnectionTable(cap: cap)
        self.events = events
    }

    /// Listens on `bindAddress:port` (0 picks a free port); returns the port.
    func listen(bindAddress: String, port: UInt16) throws -> UInt16 {
        ignoreSIGPIPE()
        let address = try Sock.parseAddress(bindAddress)
        let loop = EventLoop.next()
        let l = try Listener(address: address, port: port, loop: loop) { [weak self] socket, peer, peerPort in
            self?.accepted(socket, peer: peer, peerPort: peerPort, loop: loop)
        }
        listeners.withLock { $0.append(l) }
        l.start()
        return l.port
    }

    /// Accepts on a listening socket made elsewhere (now the acceptor's).
    func adopt(_ socket: consuming Descriptor) throws {
        ignoreSIGPIPE()
        let loop = EventLoop.next()
        let l = try Listener(adopting: socket, loop: loop) { [weak self] socket, peer, peerPort in
            self?.accepted(socket, peer: peer, peerPort: peerPort, loop: loop)
        }
        listeners.withLock { $0.append(l) }
        l.start()
    }

    /// Stops listening and closes every connection.
    func stop() {
        let ls = listeners.withLock { l in
            defer { l = [] }
            return l
        }
        for l in ls { l.stop() }
        table.stopAll()
    }

    /// Dropped on every path but `open`'s: `socket` then closes.
    private func accepted(_ socket: consuming Descriptor, peer: IPAddress?, peerPort: UInt16, loop: EventLoop) {
        loop.preconditionOnThread()
        let client = peer.map { endpoint($0, peerPort) } ?? "?"
        guard table.admit(peer) else {
            _ = ap_set_linger_reset(socket.raw)
            events.record(Event(.connectionBlocked, subject: .client(endpoint: client),
                                reason: "more than \(table.cap) concurrent connections from this client",
                                details: ["client": client]))
            return
        }
        guard let open else { return table.remove(nil, client: peer) }
        guard let c = open(socket, peer, client, loop) else {
            table.remove(nil, client: peer)
            return
        }
        table.add(c)
        c.start()
    }
}
