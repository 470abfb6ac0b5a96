import AgentpenPolicy
import Testing

/// The script as nft 1.0.6 loads it. `loadedJSON` below was recorded when the script still
/// began with a `table …; delete table …` preamble; loaded without it, the listing differs
/// only in the handles (checked by hand, session 18), which `verifyLoaded` ignores.
let goldenScript = """
table inet agentpen {
\tcounter blocked_tcp {
\t}
\tcounter blocked_udp {
\t}
\tcounter blocked_icmp {
\t}
\tcounter blocked_other {
\t}
\tchain output {
\t\ttype filter hook output priority 0; policy drop;
\t\toif "lo" ip daddr 127.0.0.0/8 accept
\t\toif "lo" ip6 daddr ::1 accept
\t\tip daddr 198.18.5.1 tcp dport 40000 accept
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

/// `nft -j list table inet agentpen` from nft 1.0.6 (Debian 12) after loading
/// `goldenScript` (gateway 198.18.5.1, proxy port 40000), and after loading the
/// same without the proxy rule (the splice hop), in a fresh `unshare -rn`.
let loadedJSON = #"""
{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "agentpen", "handle": 2}}, {"counter": {"family": "inet", "name": "blocked_tcp", "table": "agentpen", "handle": 4, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_udp", "table": "agentpen", "handle": 5, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_icmp", "table": "agentpen", "handle": 6, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_other", "table": "agentpen", "handle": 7, "packets": 0, "bytes": 0}}, {"chain": {"family": "inet", "table": "agentpen", "name": "output", "handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "input", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "forward", "handle": 3, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 8, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 9, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 10, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.18.5.1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 40000}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 11, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"counter": "blocked_tcp"}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 12, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"counter": "blocked_udp"}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 14, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"counter": "blocked_icmp"}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 15, "expr": [{"counter": "blocked_other"}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 16, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 17, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}]}
"""#
let loadedSpliceJSON = #"""
{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "agentpen", "handle": 2}}, {"counter": {"family": "inet", "name": "blocked_tcp", "table": "agentpen", "handle": 4, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_udp", "table": "agentpen", "handle": 5, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_icmp", "table": "agentpen", "handle": 6, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_other", "table": "agentpen", "handle": 7, "packets": 0, "bytes": 0}}, {"chain": {"family": "inet", "table": "agentpen", "name": "output", "handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "input", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "forward", "handle": 3, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 8, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 9, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 10, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"counter": "blocked_tcp"}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 11, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"counter": "blocked_udp"}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 13, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"counter": "blocked_icmp"}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 14, "expr": [{"counter": "blocked_other"}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 15, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 16, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}]}
"""#

private func verify(_ json: String) -> Firewall.ReadBack {
    Firewall.verifyLoaded(json, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000)
}

/// `loadedJSON` with `old` replaced by `new` (which must occur exactly once).
private func tampered(_ old: String, _ new: String, in json: String = loadedJSON) -> String {
    let parts = json.split(separator: old, omittingEmptySubsequences: false)
    precondition(parts.count == 2, "\(old) occurs \(parts.count - 1) times")
    return parts.joined(separator: new)
}

private let blockedOtherRule = #"{"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 15, "expr": [{"counter": "blocked_other"}, {"drop": null}]}}"#

@Suite struct FirewallReadBackTests {
    @Test func scriptIsUnchanged() {
        #expect(Firewall.ruleset(gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000) == goldenScript)
    }

    @Test func theRecordedListingIsAsBuilt() {
        #expect(verify(loadedJSON) == .asBuilt)
        #expect(Firewall.verifyLoaded(loadedSpliceJSON, gateway: nil, proxyPort: nil) == .asBuilt)
        // Same as the script: no proxy rule unless gateway (IPv4) and port are both usable.
        #expect(Firewall.verifyLoaded(loadedSpliceJSON, gateway: IPAddress("fd0c::1"), proxyPort: 40000) == .asBuilt)
        #expect(Firewall.verifyLoaded(loadedSpliceJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 0) == .asBuilt)
        // Whitespace between tokens does not matter.
        #expect(verify(loadedJSON.replacing(", ", with: ",\n  ")) == .asBuilt)
    }

    @Test func aListingWithTheProxyRuleIsNotTheSpliceRuleset() {
        #expect(Firewall.verifyLoaded(loadedJSON, gateway: nil, proxyPort: nil) != .asBuilt)
        #expect(verify(loadedSpliceJSON) != .asBuilt)
    }

    /// Each of these lets through more than the ruleset built, or is not what was built.
    @Test(arguments: [
        ("output policy accept", tampered(#""hook": "output", "prio": 0, "policy": "drop""#,
                                          #""hook": "output", "prio": 0, "policy": "accept""#)),
        ("input policy accept", tampered(#""hook": "input", "prio": 0, "policy": "drop""#,
                                         #""hook": "input", "prio": 0, "policy": "accept""#)),
        ("output at another priority", tampered(#""hook": "output", "prio": 0"#, #""hook": "output", "prio": 10"#)),
        ("output chain hooked elsewhere", tampered(#""hook": "output""#, #""hook": "prerouting""#)),
        ("another proxy port", tampered(#""right": 40000"#, #""right": 22"#)),
        ("another gateway", tampered(#""right": "198.18.5.1""#, #""right": "198.18.0.0/15""#)),
        ("the catch-all drop turned into accept", tampered(#"{"counter": "blocked_other"}, {"drop": null}"#,
                                                           #"{"counter": "blocked_other"}, {"accept": null}"#)),
        ("the catch-all drop removed", tampered(", " + blockedOtherRule, "")),
        ("an extra accept-all rule at the end", tampered(blockedOtherRule, blockedOtherRule + #", {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 20, "expr": [{"accept": null}]}}"#)),
        ("an extra accept in input", tampered(blockedOtherRule, blockedOtherRule + #", {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 20, "expr": [{"accept": null}]}}"#)),
        ("a rule with a comment", tampered(#""handle": 15, "expr""#, #""handle": 15, "comment": "x", "expr""#)),
        ("the loopback accept widened to every address", tampered(#"{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"accept": null}"#, #"{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"accept": null}"#)),
        ("an extra base chain accepting everything", tampered(#"{"chain": {"family": "inet", "table": "agentpen", "name": "forward""#,
            #"{"chain": {"family": "inet", "table": "agentpen", "name": "sneak", "handle": 30, "type": "filter", "hook": "output", "prio": -10, "policy": "accept"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "forward""#)),
        ("a set in the table", tampered(blockedOtherRule, blockedOtherRule + #", {"set": {"family": "inet", "name": "s", "table": "agentpen", "type": "ipv4_addr", "handle": 18}}"#)),
        ("a second table", tampered(#"{"table": {"family": "inet", "name": "agentpen", "handle": 2}}"#,
            #"{"table": {"family": "inet", "name": "agentpen", "handle": 2}}, {"table": {"family": "inet", "name": "agentpen", "handle": 3}}"#)),
        ("an object of another family", tampered(#"{"table": {"family": "inet", "name": "agentpen", "handle": 2}}"#,
            #"{"table": {"family": "inet", "name": "agentpen", "handle": 2}}, {"chain": {"family": "ip", "table": "x", "name": "y", "handle": 1}}"#)),
        ("a counter missing", tampered(#"{"counter": {"family": "inet", "name": "blocked_icmp", "table": "agentpen", "handle": 6, "packets": 0, "bytes": 0}}, "#, "")),
        ("a duplicate key", tampered(#""policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "input""#,
                                     #""policy": "drop", "policy": "accept"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "input""#)),
        ("truncated", String(loadedJSON.dropLast(3))),
        ("trailing text", loadedJSON + " x"),
        ("empty", ""),
        ("not a listing", #"{"nftables": {}}"#),
    ])
    func tamperedListingIsRejected(_ what: String, _ json: String) {
        guard case .differs(let why) = verify(json) else {
            Issue.record("accepted: \(what)"); return
        }
        #expect(!why.isEmpty)
    }

    @Test func jsonReader() throws {
        #expect(try JSONValue(parsing: #" {"a": [1, -2, true, false, null, "x\"\u00e9\ud83d\ude00"]} "#)
                == .object(["a": .array([.number(1), .number(-2), .bool(true), .bool(false), .null,
                                         .string("x\"é😀")])]))
        for bad in ["01", "1.5", "1e3", "[1,]", #"{"a":1,}"#, #""\u12""#, "\"a\nb\"", #""\q""#,
                    "99999999999999999999", "[" + String(repeating: "[", count: 70) + String(repeating: "]", count: 71)] {
            #expect(throws: JSONValue.ParseError.self, "\(bad)") { try JSONValue(parsing: bad) }
        }
    }
}
