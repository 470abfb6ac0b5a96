// The nftables ruleset loaded inside the agent's network namespace, as data
// (chains of rules, each with its nft text and its nft JSON), rendered to the
// `nft -f` script, compared with what the kernel holds after loading
// (`nft -j` read back), and the reader of its counters. Pure: the kernel edge
// (NftLoader) runs `nft`.

public enum Firewall {
    /// The table agentpen owns inside the namespace.
    public static let table = "agentpen"

    /// The named counters, in rule order; each counts what one drop rule refused.
    public static let counterNames = ["blocked_tcp", "blocked_udp", "blocked_icmp", "blocked_other"]

    /// One rule as agentpen writes it (`nft -f` text) and as nft 1.0.6 lists it
    /// back (`nft -j`: the rule's "expr" array).
    public struct Rule: Hashable, Sendable {
        public let text: String
        public let expr: [JSONValue]
    }

    /// One base chain: `type filter hook <hook> priority 0; policy drop;`.
    public struct Chain: Hashable, Sendable {
        public let name: String
        public let hook: String
        public let rules: [Rule]
        public static let type = "filter", priority: Int64 = 0, policy = "drop"
    }

    /// The ruleset as data: output policy drop, allowing loopback and (when both
    /// are given and `gateway` is IPv4) TCP to `gateway`:`proxyPort` only; input
    /// allows loopback and replies; forward drops.
    public static func chains(gateway: IPAddress?, proxyPort: UInt16?) -> [Chain] {
        func match(_ left: JSONValue, _ right: JSONValue, op: String = "==") -> JSONValue {
            .object(["match": .object(["op": .string(op), "left": left, "right": right])])
        }
        func meta(_ key: String) -> JSONValue { .object(["meta": .object(["key": .string(key)])]) }
        func payload(_ proto: String, _ field: String) -> JSONValue {
            .object(["payload": .object(["protocol": .string(proto), "field": .string(field)])])
        }
        let accept = JSONValue.object(["accept": .null]), drop = JSONValue.object(["drop": .null])
        func counter(_ name: String) -> JSONValue { .object(["counter": .string(name)]) }

        var output = [Rule(text: "oif \"lo\" accept", expr: [match(meta("oif"), .string("lo")), accept])]
        if let gateway, let port = proxyPort, port != 0, gateway.isIPv4 {
            output.append(Rule(text: "ip daddr \(gateway) tcp dport \(port) accept",
                               expr: [match(payload("ip", "daddr"), .string(gateway.description)),
                                      match(payload("tcp", "dport"), .number(Int64(port))), accept]))
        }
        output += [
            Rule(text: "meta l4proto tcp counter name blocked_tcp drop",
                 expr: [match(meta("l4proto"), .string("tcp")), counter("blocked_tcp"), drop]),
            Rule(text: "meta l4proto udp counter name blocked_udp drop",
                 expr: [match(meta("l4proto"), .string("udp")), counter("blocked_udp"), drop]),
            Rule(text: "meta l4proto { icmp, ipv6-icmp } counter name blocked_icmp drop",
                 expr: [match(meta("l4proto"), .object(["set": .array([.string("icmp"), .string("ipv6-icmp")])])),
                        counter("blocked_icmp"), drop]),
            Rule(text: "counter name blocked_other drop", expr: [counter("blocked_other"), drop]),
        ]
        let input = [
            Rule(text: "iif \"lo\" accept", expr: [match(meta("iif"), .string("lo")), accept]),
            Rule(text: "ct state established,related accept",
                 expr: [match(.object(["ct": .object(["key": .string("state")])]),
                              .array([.string("established"), .string("related")]), op: "in"), accept]),
        ]
        return [Chain(name: "output", hook: "output", rules: output),
                Chain(name: "input", hook: "input", rules: input),
                Chain(name: "forward", hook: "forward", rules: [])]
    }

    /// An `nft -f` script of `chains(gateway:proxyPort:)` and the counters. Loading
    /// it twice gives the same single table (the table is created, deleted and
    /// created again, so the script works whether or not it already exists).
    /// Returns a script that allows only loopback if `gateway` is not IPv4.
    public static func ruleset(gateway: IPAddress?, proxyPort: UInt16?) -> String {
        let counters = counterNames.map { "\tcounter \($0) {\n\t}\n" }.joined()
        let chains = chains(gateway: gateway, proxyPort: proxyPort).map { chain in
            "\tchain \(chain.name) {\n"
                + "\t\ttype \(Chain.type) hook \(chain.hook) priority \(Chain.priority); policy \(Chain.policy);\n"
                + chain.rules.map { "\t\t\($0.text)\n" }.joined()
                + "\t}\n"
        }.joined()
        return "table inet \(table)\ndelete table inet \(table)\ntable inet \(table) {\n\(counters)\(chains)}\n"
    }

    public enum ReadBack: Hashable, Sendable {
        case asBuilt
        /// What differs, for the error message.
        case differs(String)
    }

    /// Compares `nft -j list table inet agentpen` with the ruleset
    /// `chains(gateway:proxyPort:)` builds, as data: the one table, exactly the
    /// declared counters, exactly the three base chains with their hook, priority
    /// and drop policy, and in each exactly the rules built, in order. Anything
    /// else in the table (another chain, a set, a map, a rule comment, a key this
    /// reader does not know) is a difference: the check fails closed.
    public static func verifyLoaded(_ json: String, gateway: IPAddress?, proxyPort: UInt16?) -> ReadBack {
        let doc: JSONValue
        do { doc = try JSONValue(parsing: json) } catch { return .differs("\(error)") }
        guard case .object(let top) = doc, top.count == 1, case .array(let items)? = top["nftables"] else {
            return .differs("not an nft -j listing")
        }
        var tables = 0
        var counters: [String] = []
        var chainsLoaded: [String: JSONValue] = [:]
        var chainOrder: [String] = []
        var rules: [String: [JSONValue]] = [:]
        for item in items {
            guard case .object(let wrapper) = item, wrapper.count == 1, let (kind, body) = wrapper.first.map({ ($0.key, $0.value) }),
                  case .object(let o) = body else { return .differs("unreadable item \(item)") }
            if kind == "metainfo" { continue }
            func only(_ keys: Set<String>) -> Bool { Set(o.keys).isSubset(of: keys) }
            guard o["family"] == .string("inet") else { return .differs("\(kind) of another family: \(body)") }
            switch kind {
            case "table":
                guard o["name"] == .string(table), only(["family", "name", "handle"]) else {
                    return .differs("unexpected table \(body)")
                }
                tables += 1
            case "counter":
                guard o["table"] == .string(table), let name = o["name"]?.stringValue,
                      only(["family", "name", "table", "handle", "packets", "bytes"]) else {
                    return .differs("unexpected counter \(body)")
                }
                counters.append(name)
            case "chain":
                guard o["table"] == .string(table), let name = o["name"]?.stringValue,
                      only(["family", "table", "name", "handle", "type", "hook", "prio", "policy"]),
                      chainsLoaded[name] == nil else { return .differs("unexpected chain \(body)") }
                var attributes = o
                attributes["handle"] = nil
                chainsLoaded[name] = .object(attributes)
                chainOrder.append(name)
            case "rule":
                guard o["table"] == .string(table), let chain = o["chain"]?.stringValue,
                      only(["family", "table", "chain", "handle", "expr"]), case .array? = o["expr"] else {
                    return .differs("unexpected rule \(body)")
                }
                rules[chain, default: []].append(o["expr"]!)
            default:
                return .differs("unexpected \(kind) \(body)")
            }
        }
        guard tables == 1 else { return .differs("\(tables) tables named \(table)") }
        guard counters.sorted() == counterNames.sorted() else {
            return .differs("counters \(counters) instead of \(counterNames)")
        }
        let built = chains(gateway: gateway, proxyPort: proxyPort)
        guard chainOrder.sorted() == built.map(\.name).sorted() else {
            return .differs("chains \(chainOrder) instead of \(built.map(\.name))")
        }
        for chain in built {
            let attributes = JSONValue.object([
                "family": .string("inet"), "table": .string(table), "name": .string(chain.name),
                "type": .string(Chain.type), "hook": .string(chain.hook), "prio": .number(Chain.priority),
                "policy": .string(Chain.policy)])
            guard chainsLoaded[chain.name] == attributes else {
                return .differs("chain \(chain.name) is \(chainsLoaded[chain.name] ?? .null)")
            }
            let loaded = rules[chain.name] ?? []
            let expected = chain.rules.map { JSONValue.array($0.expr) }
            guard loaded == expected else {
                return .differs("chain \(chain.name) holds \(loaded.count) rule(s) other than the \(expected.count) built:"
                                + " \(loaded)")
            }
        }
        if let stray = Set(rules.keys).subtracting(built.map(\.name)).first {
            return .differs("rules in unknown chain \(stray)")
        }
        return .asBuilt
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
}
