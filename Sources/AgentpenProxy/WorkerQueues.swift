import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// The few threads the proxy, forwarder and DNS responder run on. Connection
/// queues target one of a fixed set of serial queues instead of the global
/// pool, so blocking work elsewhere in the process (or a slow getaddrinfo)
/// cannot starve the relays, and the thread count stays bounded however many
/// connections there are.
enum WorkerQueues {
    /// Round-robin positions over `relays` and over `resolvers`; only ever
    /// incremented. Two counters: with one shared, each connection took one
    /// step for its queue and one for its lookup, so with two relay queues every
    /// connection landed on the same one (the other idle, and a new
    /// connection's set-up waited behind the last one's teardown).
    private static let relayCounter = Mutex(0)
    private static let resolverCounter = Mutex(0)

    /// Serial queues made with a label only are "overcommit": Dispatch gives them
    /// a thread even when its global pool looks busy.
    static let relays: [DispatchQueue] = (0..<max(2, ProcessInfo.processInfo.activeProcessorCount)).map {
        DispatchQueue(label: "agentpen.relay.\($0)")
    }

    /// getaddrinfo blocks for as long as the host's resolver takes; at most this
    /// many lookups run at once, on threads of their own.
    static let resolvers: [DispatchQueue] = (0..<4).map { DispatchQueue(label: "agentpen.resolve.\($0)") }

    private static func next(_ counter: borrowing Mutex<Int>) -> Int { counter.withLock { $0 &+= 1; return $0 & Int.max } }

    /// A new serial queue for one connection's state.
    static func connectionQueue(_ label: String) -> DispatchQueue {
        DispatchQueue(label: label, target: relays[next(relayCounter) % relays.count])
    }

    static func resolver() -> DispatchQueue { resolvers[next(resolverCounter) % resolvers.count] }
}
