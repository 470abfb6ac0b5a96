import AgentpenPolicy
import AgentpenSystem
import CShim
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

/// The firewall's named counters, read from the kernel over nfnetlink
/// (NftCounterDump) in this network namespace: no `nft` process at the end of
/// a run. Bounded: at most 64 datagrams, each wait for the kernel at most 1 s.
public enum NftCounters {
    public static func read(table: String = Firewall.table) throws(SystemError) -> [String: NftCounterDump.Counter] {
        let opened = ap_netlink_socket(12 /* NETLINK_NETFILTER */)
        guard opened >= 0 else { throw SystemError("netlink socket", errno: -opened) }
        let socket = Descriptor(opened)
        let s = socket.raw
        let bound = ap_netlink_bind(s)
        guard bound >= 0 else { throw SystemError("netlink bind", errno: -bound) }
        let request = NftCounterDump.request(table: table, sequence: 1)
        let sent = request.withUnsafeBytes { ap_netlink_send(s, $0.baseAddress, $0.count) }
        guard sent == request.count else { throw SystemError("netlink send", errno: sent < 0 ? Int32(-sent) : EIO) }
        var counters: [String: NftCounterDump.Counter] = [:]
        var buffer = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<64 {
            var sender: UInt32 = 0
            let n = buffer.withUnsafeMutableBytes { ap_netlink_recv(s, $0.baseAddress, $0.count, &sender) }
            if n == -Int(EAGAIN) || n == -Int(EINTR) {
                var p = pollfd(fd: s, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, 1000)
                if ready == 0 { throw SystemError("reading the firewall's counters", errno: ETIMEDOUT) }
                continue
            }
            guard n > 0 else { throw SystemError("reading the firewall's counters", errno: n < 0 ? Int32(-n) : EIO) }
            guard sender == 0 else { continue }   // only the kernel answers
            let batch = NftCounterDump.parse(Array(buffer[0..<n]), table: table)
            if let e = batch.errors.first { throw SystemError("reading the firewall's counters", errno: e) }
            counters.merge(batch.counters) { _, new in new }
            if batch.done { return counters }
        }
        throw SystemError("reading the firewall's counters", errno: EMSGSIZE)
    }
}
