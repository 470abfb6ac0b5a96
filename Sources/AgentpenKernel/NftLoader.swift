import AgentpenPolicy
import Glibc

/// Runs `nft` inside the network namespace (the helper is uid 0 with
/// CAP_NET_ADMIN there), by the absolute path resolved at start (HostPrograms),
/// in the fixed host-program environment. Every failure says what to do about it.
public struct NftLoader: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    private func run(_ args: [String], input: String? = nil, what: String) throws -> String {
        let (status, output) = Spawn.run([path] + args, input: input, env: HostPrograms.environment)
        switch status {
        case 0:
            return output
        case 127:
            throw SystemError("nft", "\(path) could not be started: install nftables (Debian: apt install nftables)",
                              errno: ENOENT)
        default:
            let text = output.trimmingTrailingWhitespace()
            let hint = text.contains("Operation not permitted") || text.contains("Permission denied")
                ? " (nft needs CAP_NET_ADMIN in the namespace: run it from the network helper)"
                : text.contains("Protocol not supported") || text.contains("No such file or directory")
                ? " (the kernel lacks nf_tables support: load the nf_tables module or use a kernel with it)"
                : ""
            throw SystemError("nft", "\(what) failed with status \(status)\(hint): \(text)", errno: EIO)
        }
    }

    /// Loads an `nft -f` script (fed on stdin).
    public func load(_ script: String) throws {
        _ = try run(["-f", "-"], input: script, what: "loading the agentpen ruleset")
    }

    /// The agentpen table as the kernel holds it.
    public func list() throws -> String {
        try run(["list", "table", "inet", Firewall.table], what: "listing the agentpen table")
    }

    /// The agentpen table as JSON (`nft -j`), for `Firewall.verifyLoaded`.
    public func listJSON() throws -> String {
        try run(["-j", "list", "table", "inet", Firewall.table], what: "listing the agentpen table")
    }

    /// `nft list counters table inet agentpen`, for `Firewall.parseCounters`.
    public func counters() throws -> String {
        try run(["list", "counters", "table", "inet", Firewall.table], what: "listing the agentpen counters")
    }
}

private extension String {
    func trimmingTrailingWhitespace() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
