import AgentpenPolicy
import Synchronization

/// The run's per-name addresses (NameAddresses) shared by the DNS responder,
/// which hands pooled addresses out, and the proxy, which asks which name an
/// accepted connection's local address stands for. Both run in agentpen itself
/// on the direct hop, so the answer is there before the client's first byte.
public final class NameTable: Sendable {
    private let state: Mutex<NameAddresses>
    /// What the run does with unlisted names (fixed for the run).
    public let unlisted: UnlistedNames

    public init(_ names: NameAddresses) {
        unlisted = names.unlisted
        state = Mutex(names)
    }

    /// The address for `name`, given out now if it is a wildcard's first query.
    public func address(for name: String) -> IPAddress? { state.withLock { $0.address(for: name) } }

    public func name(at address: IPAddress) -> String? { state.withLock { $0.name(at: address) } }
}
