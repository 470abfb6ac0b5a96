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

    /// One base chain: `type <type> hook <hook> priority <priority>; policy <policy>;`.
    /// Filter chains drop what no rule accepts; the nat chain only redirects.
    public struct Chain: Hashable, Sendable {
        public let name: String
        public let hook: String
        public let rules: [Rule]
        public var type = "filter", priority: Int64 = 0, policy = "drop"
    }

    /// The refusing rules' NFLOG rate: at most this many records a second (after a
    /// burst), so a flood of refused packets costs the reader bounded work. The
    /// counters still count every packet.
    public static let logRate = 50, logBurst = 200

    /// Per-name addresses (NameAddresses): TCP to an address in `first`…`last` on
    /// a port other than `served` (where the proxy or the forwarder listens on
    /// every loopback address) goes to the catch-all too, which reports it with
    /// the name the address stands for, instead of the kernel refusing it unheard.
    public struct NamePorts: Hashable, Sendable {
        public var first: IPAddress, last: IPAddress
        /// Sorted, without repeats.
        public var served: [UInt16]

        public init(first: IPAddress, last: IPAddress, served: [UInt16]) {
            self.first = first
            self.last = last
            self.served = Array(Set(served)).sorted()
        }

        /// The range every per-name address lies in, with 443 and each NAME:PORT port served.
        public init(_ allowlist: Allowlist) {
            self.init(first: NameAddresses.range.first, last: NameAddresses.range.last,
                      served: [443] + allowlist.plainPorts)
        }
    }

    /// The ruleset as data: output policy drop, allowing loopback destinations
    /// (127.0.0.0/8, ::1) and (when both are given and `gateway` is IPv4) TCP to
    /// `gateway`:`proxyPort` only; input allows loopback and
    /// replies; forward drops. With `catchAllPort`, a nat chain redirects every
    /// other TCP connection to that port on loopback (the catch-all listener,
    /// which records and resets it). With `logGroup`, each drop rule also sends
    /// the packet's first `NFLog.snapLength` bytes to that NFLOG group (rate
    /// limited; a packet over the rate is dropped and counted all the same).
    /// With `catchAllPort`, also: output accepts what goes on loopback to one of the
    /// namespace's own addresses (the catch-all's answer to a connection from the
    /// tap's address, the ICMPv6 errors below), and an ICMPv6 echo request is
    /// answered "administratively prohibited" at once (echo sockets never see a
    /// drop). With `names` (and `catchAllPort`), TCP to a per-name address on a
    /// port nothing serves there is redirected to the catch-all as well.
    public static func chains(gateway: IPAddress?, proxyPort: UInt16?, catchAllPort: UInt16? = nil,
                              logGroup: UInt16? = nil, names: NamePorts? = nil) -> [Chain] {
        func match(_ left: JSONValue, _ right: JSONValue, op: String = "==") -> JSONValue {
            .object(["match": .object(["op": .string(op), "left": left, "right": right])])
        }
        func meta(_ key: String) -> JSONValue { .object(["meta": .object(["key": .string(key)])]) }
        func payload(_ proto: String, _ field: String) -> JSONValue {
            .object(["payload": .object(["protocol": .string(proto), "field": .string(field)])])
        }
        let accept = JSONValue.object(["accept": .null]), drop = JSONValue.object(["drop": .null])
        func counter(_ name: String) -> JSONValue { .object(["counter": .string(name)]) }

        let loopback4 = JSONValue.object(["prefix": .object(["addr": .string("127.0.0.0"), "len": .number(8)])])
        var output = [
            Rule(text: "oif \"lo\" ip daddr 127.0.0.0/8 accept",
                 expr: [match(meta("oif"), .string("lo")), match(payload("ip", "daddr"), loopback4), accept]),
            Rule(text: "oif \"lo\" ip6 daddr ::1 accept",
                 expr: [match(meta("oif"), .string("lo")), match(payload("ip6", "daddr"), .string("::1")), accept]),
        ]
        let refusing = catchAllPort.map { $0 != 0 } ?? false
        if refusing {
            // To an address of this namespace: delivered on loopback whatever the
            // socket asked for, so it never leaves. Not tested with oif: a connection
            // the refuse chain redirected from the gateway (routed through the tap)
            // to the catch-all is routed again on loopback, but this chain still sees
            // the tap as its oif; and the default routes on loopback send every other
            // destination out on lo too, hence the address test.
            output.append(Rule(text: "fib daddr type local accept",
                               expr: [match(.object(["fib": .object(["result": .string("type"), "flags": .array([.string("daddr")])])]),
                                            .string("local")),
                                      accept]))
        }
        var toProxy: Rule?
        if let gateway, let port = proxyPort, port != 0, gateway.isIPv4 {
            toProxy = Rule(text: "ip daddr \(gateway) tcp dport \(port) accept",
                           expr: [match(payload("ip", "daddr"), .string(gateway.description)),
                                  match(payload("tcp", "dport"), .number(Int64(port))), accept])
            output.append(toProxy!)
        }
        // Each protocol's drop: counted; with a log group also logged (rate-limited,
        // then a plain drop for what is over the rate).
        let protocols: [(text: String, expr: [JSONValue], counter: String)] = [
            ("meta l4proto tcp ", [match(meta("l4proto"), .string("tcp"))], "blocked_tcp"),
            ("meta l4proto udp ", [match(meta("l4proto"), .string("udp"))], "blocked_udp"),
            ("meta l4proto { icmp, ipv6-icmp } ",
             [match(meta("l4proto"), .object(["set": .array([.string("icmp"), .string("ipv6-icmp")])]))], "blocked_icmp"),
            ("", [], "blocked_other"),
        ]
        let limit = JSONValue.object(["limit": .object(["rate": .number(Int64(logRate)), "burst": .number(Int64(logBurst)),
                                                        "per": .string("second")])])
        func log(_ group: UInt16) -> JSONValue {
            .object(["log": .object(["group": .number(Int64(group)), "snaplen": .number(Int64(NFLog.snapLength)),
                                     "queue-threshold": .number(1)])])
        }
        let logText = { (group: UInt16) in
            "limit rate \(logRate)/second burst \(logBurst) packets log group \(group) snaplen \(NFLog.snapLength) queue-threshold 1"
        }
        if refusing {
            // An ICMPv6 echo socket ignores the verdict of the output hook (the kernel
            // drops its send's error), so a plain drop would leave ping -6 waiting;
            // the reject's "administratively prohibited" reaches the socket at once.
            let echo6 = match(payload("icmpv6", "type"), .string("echo-request"))
            let reject = JSONValue.object(["reject": .object(["type": .string("icmpv6"), "expr": .string("admin-prohibited")])])
            let rejectText = "reject with icmpv6 admin-prohibited"
            if let group = logGroup {
                output.append(Rule(text: "icmpv6 type echo-request counter name blocked_icmp \(logText(group)) \(rejectText)",
                                   expr: [echo6, counter("blocked_icmp"), limit, log(group), reject]))
                output.append(Rule(text: "icmpv6 type echo-request \(rejectText)", expr: [echo6, reject]))
            } else {
                output.append(Rule(text: "icmpv6 type echo-request counter name blocked_icmp \(rejectText)",
                                   expr: [echo6, counter("blocked_icmp"), reject]))
            }
        }
        for p in protocols {
            guard let group = logGroup else {
                output.append(Rule(text: p.text + "counter name \(p.counter) drop", expr: p.expr + [counter(p.counter), drop]))
                continue
            }
            output.append(Rule(text: p.text + "counter name \(p.counter) \(logText(group)) drop",
                               expr: p.expr + [counter(p.counter), limit, log(group), drop]))
            output.append(Rule(text: p.text + "drop", expr: p.expr + [drop]))
        }
        let input = [
            Rule(text: "iif \"lo\" accept", expr: [match(meta("iif"), .string("lo")), accept]),
            Rule(text: "ct state established,related accept",
                 expr: [match(.object(["ct": .object(["key": .string("state")])]),
                              .array([.string("established"), .string("related")]), op: "in"), accept]),
        ]
        var chains = [Chain(name: "output", hook: "output", rules: output),
                      Chain(name: "input", hook: "input", rules: input),
                      Chain(name: "forward", hook: "forward", rules: [])]
        if let port = catchAllPort, port != 0 {
            // Before the filter (nat output runs at -100): TCP that may not leave goes
            // to the catch-all on loopback instead of timing out or meeting ENETUNREACH.
            func redirect(_ family: String, _ notLoopback: JSONValue, _ text: String) -> Rule {
                Rule(text: "\(family) daddr != \(text) meta l4proto tcp redirect to :\(port)",
                     expr: [match(payload(family, "daddr"), notLoopback, op: "!="), match(meta("l4proto"), .string("tcp")),
                            .object(["redirect": .object(["port": .number(Int64(port))])])])
            }
            var rules = (toProxy.map { [$0] } ?? [])
                + [redirect("ip", loopback4, "127.0.0.0/8"), redirect("ip6", .string("::1"), "::1")]
            if let names, !names.served.isEmpty {
                // A name's address on a port nothing serves: the kernel would refuse
                // it unheard; the catch-all reports it with the name.
                let ports: (text: String, json: JSONValue) = names.served.count == 1
                    ? ("\(names.served[0])", .number(Int64(names.served[0])))
                    : ("{ " + names.served.map(String.init).joined(separator: ", ") + " }",
                       .object(["set": .array(names.served.map { .number(Int64($0)) })]))
                rules.append(Rule(text: "ip daddr \(names.first)-\(names.last) tcp dport != \(ports.text) redirect to :\(port)",
                                  expr: [match(payload("ip", "daddr"),
                                               .object(["range": .array([.string(names.first.description),
                                                                         .string(names.last.description)])])),
                                         match(payload("tcp", "dport"), ports.json, op: "!="),
                                         .object(["redirect": .object(["port": .number(Int64(port))])])]))
            }
            chains.insert(Chain(name: "refuse", hook: "output", rules: rules, type: "nat", priority: -100, policy: "accept"), at: 0)
        }
        return chains
    }

    /// An `nft -f` script of `chains(gateway:proxyPort:)` and the counters, loaded once
    /// into the network namespace the helper has just created, which holds nothing yet.
    /// No `table …; delete table …` preamble: a table deleted in the same transaction makes
    /// the kernel's commit wait for an RCU grace period, ~10 ms of wall time on every
    /// networked start (`unshare -Urn nft -f`, 16 ms with it, 5.6 ms without). A table
    /// that were there already would not be replaced but merged with, and the read-back
    /// (`verifyLoaded`) then finds more than was built and fails closed.
    /// Returns a script that allows only loopback if `gateway` is not IPv4.
    public static func ruleset(gateway: IPAddress?, proxyPort: UInt16?, catchAllPort: UInt16? = nil,
                               logGroup: UInt16? = nil, names: NamePorts? = nil) -> String {
        let counters = counterNames.map { "\tcounter \($0) {\n\t}\n" }.joined()
        let chains = chains(gateway: gateway, proxyPort: proxyPort, catchAllPort: catchAllPort, logGroup: logGroup,
                            names: names).map { chain in
            "\tchain \(chain.name) {\n"
                + "\t\ttype \(chain.type) hook \(chain.hook) priority \(chain.priority); policy \(chain.policy);\n"
                + chain.rules.map { "\t\t\($0.text)\n" }.joined()
                + "\t}\n"
        }.joined()
        return "table inet \(table) {\n\(counters)\(chains)}\n"
    }

    public enum ReadBack: Hashable, Sendable {
        case asBuilt
        /// What differs, for the error message.
        case differs(String)
    }

    /// Compares `nft -j list table inet agentpen` with the ruleset
    /// `chains(gateway:proxyPort:catchAllPort:logGroup:)` builds, as data: the one
    /// table, exactly the declared counters, exactly the base chains built with
    /// their type, hook, priority and policy, and in each exactly the rules built, in order. Anything
    /// else in the table (another chain, a set, a map, a rule comment, a key this
    /// reader does not know) is a difference: the check fails closed.
    public static func verifyLoaded(_ json: String, gateway: IPAddress?, proxyPort: UInt16?, catchAllPort: UInt16? = nil,
                                    logGroup: UInt16? = nil, names: NamePorts? = nil) -> ReadBack {
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
        let built = chains(gateway: gateway, proxyPort: proxyPort, catchAllPort: catchAllPort, logGroup: logGroup, names: names)
        guard chainOrder.sorted() == built.map(\.name).sorted() else {
            return .differs("chains \(chainOrder) instead of \(built.map(\.name))")
        }
        for chain in built {
            let attributes = JSONValue.object([
                "family": .string("inet"), "table": .string(table), "name": .string(chain.name),
                "type": .string(chain.type), "hook": .string(chain.hook), "prio": .number(chain.priority),
                "policy": .string(chain.policy)])
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
