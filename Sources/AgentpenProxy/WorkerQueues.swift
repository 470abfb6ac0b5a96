import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// The threads the proxy runs blocking work on. Connections themselves live on
/// the event loops (`EventLoop.pool`); getaddrinfo, which blocks for as long as
/// the host's resolver takes, must never run there, so it runs on one of a
/// fixed set of serial queues: at most this many lookups at once, the thread
/// count bounded however many connections there are.
enum WorkerQueues {
    /// Round-robin position over `resolvers`; only ever incremented.
    private static let resolverCounter = Mutex(0)

    /// Serial queues made with a label only are "overcommit": Dispatch gives them
    /// a thread even when its global pool looks busy.
    static let resolvers: [DispatchQueue] = (0..<4).map { DispatchQueue(label: "agentpen.resolve.\($0)") }

    static func resolver() -> DispatchQueue { resolvers[resolverCounter.withLock { $0 &+= 1; return $0 & Int.max } % resolvers.count] }
}
