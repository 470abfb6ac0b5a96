// The nftables ruleset loaded inside the agent's network namespace, and the
// reader of its counters. Pure text in, text out: the kernel edge (NftLoader)
// runs `nft`.

public enum Firewall {
    /// The table agentpen owns inside the namespace.
    public static let table = "agentpen"

    /// The named counters, in rule order; each counts what one drop rule refused.
    public static let counterNames = ["blocked_tcp", "blocked_udp", "blocked_icmp", "blocked_other"]

    /// An `nft -f` script: output policy drop, allowing loopback and (when both are
    /// given) TCP to `gateway`:`proxyPort` only; input allows loopback and replies;
    /// forward drops. Loading it twice gives the same single table (the table is
    /// created, deleted and created again, so the script works whether or not it
    /// already exists). Returns a script that allows only loopback if `gateway` is
    /// not a plain dotted IPv4 address.
    public static func ruleset(gateway: String?, proxyPort: UInt16?) -> String {
        var allow = ""
        if let gateway, let port = proxyPort, port != 0, isIPv4(gateway) {
            allow = "\t\tip daddr \(gateway) tcp dport \(port) accept\n"
        }
        let counters = counterNames.map { "\tcounter \($0) {\n\t}\n" }.joined()
        return """
        table inet \(table)
        delete table inet \(table)
        table inet \(table) {
        \(counters)\
        \tchain output {
        \t\ttype filter hook output priority 0; policy drop;
        \t\toif "lo" accept
        \(allow)\
        \t\tmeta l4proto tcp counter name blocked_tcp drop
        \t\tmeta l4proto udp counter name blocked_udp drop
        \t\tmeta l4proto { icmp, ipv6-icmp } counter name blocked_icmp drop
        \t\tcounter name blocked_other drop
        \t}
        \tchain input {
        \t\ttype filter hook input priority 0; policy drop;
        \t\tiif "lo" accept
        \t\tct state established,related accept
        \t}
        \tchain forward {
        \t\ttype filter hook forward priority 0; policy drop;
        \t}
        }

        """
    }

    /// Reads `nft list counters table inet agentpen` (plain text), e.g.
    ///
    ///     table inet agentpen {
    ///         counter blocked_tcp {
    ///             packets 3 bytes 180
    ///         }
    ///     }
    ///
    /// into name → (packets, bytes). Counters of other tables in the same text
    /// (from `nft list counters`) are skipped; unreadable lines are ignored.
    public static func parseCounters(_ nftListOutput: String) -> [String: (packets: UInt64, bytes: UInt64)] {
        var result: [String: (packets: UInt64, bytes: UInt64)] = [:]
        var inOurTable = false
        var current: String?
        for rawLine in nftListOutput.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let words = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let first = words.first else { continue }
            switch first {
            case "table":
                // table <family> <name> {
                inOurTable = words.count >= 3 && words[1] == "inet" && unquote(words[2]) == table
                current = nil
            case "counter":
                // counter <name> {   (named counter declaration)
                current = inOurTable && words.count >= 2 ? unquote(words[1]) : nil
            case "packets":
                // packets N bytes M
                guard let name = current, words.count >= 4, words[2] == "bytes",
                      let p = UInt64(words[1]), let b = UInt64(words[3]) else { continue }
                result[name] = (p, b)
            case "}":
                if current != nil { current = nil } else { inOurTable = false }
            default:
                continue
            }
        }
        return result
    }

    private static func unquote(_ s: String) -> String {
        var t = Substring(s)
        if t.hasSuffix("{") { t = t.dropLast() }
        if t.count >= 2, t.first == "\"", t.last == "\"" { t = t.dropFirst().dropLast() }
        return String(t)
    }

    private static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy { $0 >= "0" && $0 <= "9" } && Int(p)! <= 255
        }
    }
}
