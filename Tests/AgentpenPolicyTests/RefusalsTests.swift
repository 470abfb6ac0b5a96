import AgentpenPolicy
import Testing

/// `Firewall.ruleset` with the catch-all port 41000 and NFLOG group 11 (gateway
/// 198.18.5.1, proxy port 40000). `fullJSON` was recorded when the script still began with a
/// `table …; delete table …` preamble; without it only the handles differ, which
/// `verifyLoaded` ignores.
let fullScript = """
table inet agentpen {
\tcounter blocked_tcp {
\t}
\tcounter blocked_udp {
\t}
\tcounter blocked_icmp {
\t}
\tcounter blocked_other {
\t}
\tchain refuse {
\t\ttype nat hook output priority -100; policy accept;
\t\tip daddr 198.18.5.1 tcp dport 40000 accept
\t\tip daddr != 127.0.0.0/8 meta l4proto tcp redirect to :41000
\t\tip6 daddr != ::1 meta l4proto tcp redirect to :41000
\t}
\tchain output {
\t\ttype filter hook output priority 0; policy drop;
\t\toif "lo" ip daddr 127.0.0.0/8 accept
\t\toif "lo" ip6 daddr ::1 accept
\t\tfib daddr type local accept
\t\tip daddr 198.18.5.1 tcp dport 40000 accept
\t\ticmpv6 type echo-request counter name blocked_icmp limit rate 50/second burst 200 packets log group 11 snaplen 512 queue-threshold 1 reject with icmpv6 admin-prohibited
\t\ticmpv6 type echo-request reject with icmpv6 admin-prohibited
\t\tmeta l4proto tcp counter name blocked_tcp limit rate 50/second burst 200 packets log group 11 snaplen 512 queue-threshold 1 drop
\t\tmeta l4proto tcp drop
\t\tmeta l4proto udp counter name blocked_udp limit rate 50/second burst 200 packets log group 11 snaplen 512 queue-threshold 1 drop
\t\tmeta l4proto udp drop
\t\tmeta l4proto { icmp, ipv6-icmp } counter name blocked_icmp limit rate 50/second burst 200 packets log group 11 snaplen 512 queue-threshold 1 drop
\t\tmeta l4proto { icmp, ipv6-icmp } drop
\t\tcounter name blocked_other limit rate 50/second burst 200 packets log group 11 snaplen 512 queue-threshold 1 drop
\t\tdrop
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
/// `fullScript`, and the same without the proxy rule (the splice hop), in `unshare -Urn`.
let fullJSON = #"""
{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "agentpen", "handle": 2}}, {"counter": {"family": "inet", "name": "blocked_tcp", "table": "agentpen", "handle": 5, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_udp", "table": "agentpen", "handle": 6, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_icmp", "table": "agentpen", "handle": 7, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_other", "table": "agentpen", "handle": 8, "packets": 0, "bytes": 0}}, {"chain": {"family": "inet", "table": "agentpen", "name": "refuse", "handle": 1, "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "output", "handle": 2, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "input", "handle": 3, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "forward", "handle": 4, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 9, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.18.5.1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 40000}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 10, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 41000}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 11, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 41000}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 12, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 13, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 14, "expr": [{"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 15, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.18.5.1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 40000}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 16, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": "echo-request"}}, {"counter": "blocked_icmp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"reject": {"type": "icmpv6", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 17, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": "echo-request"}}, {"reject": {"type": "icmpv6", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 18, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"counter": "blocked_tcp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 19, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 20, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"counter": "blocked_udp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 21, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 23, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"counter": "blocked_icmp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 25, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 26, "expr": [{"counter": "blocked_other"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 27, "expr": [{"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 28, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 29, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}]}
"""#
let fullSpliceJSON = #"""
{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "agentpen", "handle": 2}}, {"counter": {"family": "inet", "name": "blocked_tcp", "table": "agentpen", "handle": 5, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_udp", "table": "agentpen", "handle": 6, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_icmp", "table": "agentpen", "handle": 7, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_other", "table": "agentpen", "handle": 8, "packets": 0, "bytes": 0}}, {"chain": {"family": "inet", "table": "agentpen", "name": "refuse", "handle": 1, "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "output", "handle": 2, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "input", "handle": 3, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "forward", "handle": 4, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 9, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 41000}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 10, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 41000}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 11, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 12, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 13, "expr": [{"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 14, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": "echo-request"}}, {"counter": "blocked_icmp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"reject": {"type": "icmpv6", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 15, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": "echo-request"}}, {"reject": {"type": "icmpv6", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 16, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"counter": "blocked_tcp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 17, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 18, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"counter": "blocked_udp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 19, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 21, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"counter": "blocked_icmp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 23, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 24, "expr": [{"counter": "blocked_other"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 25, "expr": [{"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 26, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 27, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}]}
"""#

/// The same (gateway hop) with per-name addresses: TCP to 127.0.1.0–127.0.32.255
/// on a port other than 22 and 443 redirected to the catch-all too.
let fullNamesJSON = #"""
{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "agentpen", "handle": 2}}, {"counter": {"family": "inet", "name": "blocked_tcp", "table": "agentpen", "handle": 5, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_udp", "table": "agentpen", "handle": 6, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_icmp", "table": "agentpen", "handle": 7, "packets": 0, "bytes": 0}}, {"counter": {"family": "inet", "name": "blocked_other", "table": "agentpen", "handle": 8, "packets": 0, "bytes": 0}}, {"chain": {"family": "inet", "table": "agentpen", "name": "refuse", "handle": 1, "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "output", "handle": 2, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "input", "handle": 3, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "agentpen", "name": "forward", "handle": 4, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 9, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.18.5.1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 40000}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 10, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 41000}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 11, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 41000}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "refuse", "handle": 13, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"range": ["127.0.1.0", "127.0.32.255"]}}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 443]}}}, {"redirect": {"port": 41000}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 14, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 15, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oif"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 16, "expr": [{"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 17, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.18.5.1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 40000}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 18, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": "echo-request"}}, {"counter": "blocked_icmp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"reject": {"type": "icmpv6", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 19, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": "echo-request"}}, {"reject": {"type": "icmpv6", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 20, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"counter": "blocked_tcp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 21, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 22, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"counter": "blocked_udp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 23, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 25, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"counter": "blocked_icmp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 27, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 28, "expr": [{"counter": "blocked_other"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "output", "handle": 29, "expr": [{"drop": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 30, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "agentpen", "chain": "input", "handle": 31, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}]}
"""#
let namePorts = Firewall.NamePorts(first: IPAddress(127, 0, 1, 0), last: IPAddress(127, 0, 32, 255), served: [443, 22, 443])

private func verifyFull(_ json: String) -> Firewall.ReadBack {
    Firewall.verifyLoaded(json, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41000, logGroup: 11)
}

private func tamperedFull(_ old: String, _ new: String) -> String {
    let parts = fullJSON.split(separator: old, omittingEmptySubsequences: false)
    precondition(parts.count == 2, "\(old) occurs \(parts.count - 1) times")
    return parts.joined(separator: new)
}

/// Bytes from hex, for records captured from the kernel.
private func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// NFLOG records as kernel 6.18 sent them for group 11 (after `NFLog.bindMessage`)
/// in `unshare -Urn` with `fullScript` loaded and default routes on loopback: a
/// DNS query for exfil.example.com to 198.18.0.1:53, a UDP datagram to
/// [fd0c::10]:443, an ICMP echo request to 198.18.0.10; and the bind's ack.
let recordDNS4 = "800000000004000000000000000000000200000b080001000800030005000a0000000000080005000000000108000b000000000008000e0000000000430009004500003fdbeb4000401119ae7f000001c61200019a580035002b455112340100000100000000000005657866696c076578616d706c6503636f6d000001000100"
let recordUDP6 = "740000000004000000000000000000000a00000b0800010086dd030005000a0000000000080005000000000108000b000000000008000e00000000003800090060000ea0000c114000000000000000000000000000000001fd0c0000000000000000000000000010809801bb000cfd3a71756963"
let recordICMP4 = "600000000004000000000000000000000200000b080001000800030005000a0000000000080005000000000108000b000000000008000e00000000002400090045000020b2e54000400142da7f000001c612000a080031f9e734000170696e67"
let bindAck = "240000000200000101000000ec2a0000000000001c000000010405000100000000000000"

@Suite struct RefusalsTests {
    @Test func fullScriptIsUnchanged() {
        #expect(Firewall.ruleset(gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41000, logGroup: 11) == fullScript)
    }

    @Test func theRecordedFullListingIsAsBuilt() {
        #expect(verifyFull(fullJSON) == .asBuilt)
        #expect(Firewall.verifyLoaded(fullSpliceJSON, gateway: nil, proxyPort: nil, catchAllPort: 41000, logGroup: 11) == .asBuilt)
        // Without the catch-all or the log group it is another ruleset.
        #expect(Firewall.verifyLoaded(fullJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000) != .asBuilt)
        #expect(Firewall.verifyLoaded(fullJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41000) != .asBuilt)
        #expect(Firewall.verifyLoaded(fullJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41001, logGroup: 11) != .asBuilt)
        #expect(Firewall.verifyLoaded(fullSpliceJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41000, logGroup: 11) != .asBuilt)
    }

    /// Per-name addresses: the names' range on the unserved ports goes to the catch-all
    /// too; the listing must carry exactly those ports and that range.
    @Test func theNamesRedirect() throws {
        #expect(Firewall.verifyLoaded(fullNamesJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41000,
                                      logGroup: 11, names: namePorts) == .asBuilt)
        #expect(verifyFull(fullNamesJSON) != .asBuilt)
        #expect(Firewall.verifyLoaded(fullJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41000,
                                      logGroup: 11, names: namePorts) != .asBuilt)
        let other = Firewall.NamePorts(first: IPAddress(127, 0, 1, 0), last: IPAddress(127, 0, 32, 255), served: [443])
        #expect(Firewall.verifyLoaded(fullNamesJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41000,
                                      logGroup: 11, names: other) != .asBuilt)
        let rules = Firewall.chains(gateway: nil, proxyPort: nil, catchAllPort: 41000, logGroup: 11, names: other)
            .first { $0.name == "refuse" }?.rules.map(\.text)
        #expect(rules?.last == "ip daddr 127.0.1.0-127.0.32.255 tcp dport != 443 redirect to :41000")
        // Without a catch-all there is nothing to redirect to.
        #expect(Firewall.chains(gateway: nil, proxyPort: nil, names: namePorts).allSatisfy { $0.name != "refuse" })
        // The range holds every address a name can get.
        var table = NameAddresses(Allowlist([try HostPattern("*.w.test")]), poolSize: NameAddresses.defaultPoolSize + 10)
        var last = IPAddress(127, 0, 0, 1)
        for i in 0..<NameAddresses.defaultPoolSize { last = table.address(for: "n\(i).w.test") ?? last }
        #expect(last.bytes[2] <= NameAddresses.range.last.bytes[2] && NameAddresses.range.first == IPAddress(127, 0, 1, 0))
        #expect(table.address(for: "one-more.w.test") == nil)
    }

    /// The redirect goes first (nat output at -100), the proxy's own path is not redirected.
    @Test func theCatchAllChain() {
        let chains = Firewall.chains(gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000, catchAllPort: 41000, logGroup: 11)
        let refuse = chains.first { $0.name == "refuse" }
        #expect(refuse?.type == "nat" && refuse?.priority == -100 && refuse?.policy == "accept" && refuse?.hook == "output")
        #expect(refuse?.rules.map(\.text) == ["ip daddr 198.18.5.1 tcp dport 40000 accept",
                                               "ip daddr != 127.0.0.0/8 meta l4proto tcp redirect to :41000",
                                               "ip6 daddr != ::1 meta l4proto tcp redirect to :41000"])
        // Every filter chain still drops by policy.
        #expect(chains.filter { $0.type == "filter" }.allSatisfy { $0.policy == "drop" })
        #expect(Firewall.chains(gateway: nil, proxyPort: nil, catchAllPort: 0).allSatisfy { $0.name != "refuse" })
    }

    @Test(arguments: [
        ("the v4 redirect removed", tamperedFull(#"{"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 41000}}"#, #"{"prefix": {"addr": "127.0.0.0", "len": 8}}}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"accept": null}"#)),
        ("the v6 redirect to another port", tamperedFull(#""right": "::1"}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 41000}}"#, #""right": "::1"}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"redirect": {"port": 22}}"#)),
        ("the nat chain at another priority", tamperedFull(#""prio": -100"#, #""prio": 10"#)),
        ("the nat chain as a filter accepting", tamperedFull(#""type": "nat""#, #""type": "filter""#)),
        ("the log statement removed", tamperedFull(#"{"counter": "blocked_udp"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}"#, #"{"counter": "blocked_udp"}, {"drop": null}"#)),
        ("the rate-limited drop turned into accept", tamperedFull(#"{"counter": "blocked_other"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"drop": null}"#, #"{"counter": "blocked_other"}, {"limit": {"rate": 50, "burst": 200, "per": "second"}}, {"log": {"group": 11, "snaplen": 512, "queue-threshold": 1}}, {"accept": null}"#)),
    ])
    func tamperedFullListingIsRejected(_ what: String, _ json: String) {
        guard case .differs = verifyFull(json) else { Issue.record("accepted: \(what)"); return }
    }

    @Test func parsesKernelRecords() throws {
        let dns = NFLog.parse(hex(recordDNS4))
        #expect(dns.flows == [RefusedFlow(proto: .udp, address: IPAddress(198, 18, 0, 1), port: 53, protocolNumber: 17,
                                          dnsQuery: "exfil.example.com")], "\(dns)")
        #expect(dns.flows.first?.subject == "udp 198.18.0.1:53")
        #expect(dns.flows.first?.details == ["protocol": "udp", "address": "198.18.0.1", "port": "53", "query": "exfil.example.com"])
        let udp6 = NFLog.parse(hex(recordUDP6))
        #expect(udp6.flows == [RefusedFlow(proto: .udp, address: IPAddress("fd0c::10")!, port: 443, protocolNumber: 17)])
        #expect(udp6.flows.first?.subject == "udp [fd0c::10]:443")
        let icmp = NFLog.parse(hex(recordICMP4))
        #expect(icmp.flows == [RefusedFlow(proto: .icmp, address: IPAddress(198, 18, 0, 10), icmpType: "echo-request",
                                           protocolNumber: 1)])
        #expect(icmp.flows.first?.subject == "icmp 198.18.0.10")
        // Several records in one datagram, and the ack (error 0) is neither a flow nor an error.
        let all = NFLog.parse(hex(recordDNS4 + recordUDP6 + recordICMP4 + bindAck))
        #expect(all.flows.count == 3 && all.unreadable == 0 && all.errors.isEmpty, "\(all)")
    }

    @Test func bindMessageIsWhatTheKernelAcked() {
        // The ack above echoes the request's header: length 28, type 0x0401, flags REQUEST|ACK, seq 1.
        let m = NFLog.bindMessage(group: 11, sequence: 1)
        #expect(m == hex("1c000000010405000100000000000000" + "0000000b" + "0500010001000000"))
        #expect(Array(hex(bindAck)[20..<32]) == Array(m[0..<12]))
    }

    @Test func aNegativeAckIsAnError() {
        var nack = hex(bindAck)
        nack[16] = 0xff; nack[17] = 0xff; nack[18] = 0xff; nack[19] = 0xff   // -1: EPERM
        #expect(NFLog.parse(nack).errors == [1])
    }

    /// An error of -2^31 (found by `make fuzz`: negating it trapped) is read, not a crash.
    @Test func theSmallestErrorDoesNotTrap() {
        var nack = hex(bindAck)
        nack[16] = 0x00; nack[17] = 0x00; nack[18] = 0x00; nack[19] = 0x80
        #expect(NFLog.parse(nack).errors == [Int32.max])
    }

    /// Hostile or cut-short bytes: never a crash, never a read past the end, bounded work.
    @Test func truncatedAndHostileRecords() {
        let full = hex(recordDNS4)
        for n in 0..<full.count {
            let b = NFLog.parse(Array(full[0..<n]))
            #expect(b.flows.isEmpty || n == full.count, "\(n)")
        }
        // A length field larger than what is there, or smaller than a header.
        var big = full; big[0] = 0xff; big[1] = 0xff
        #expect(NFLog.parse(big).flows.isEmpty && NFLog.parse(big).unreadable == 1)
        var tiny = full; tiny[0] = 4; tiny[1] = 0; tiny[2] = 0; tiny[3] = 0
        #expect(NFLog.parse(tiny).flows.isEmpty)
        // Many zero-length attributes: bounded.
        let junk = [UInt8](repeating: 0, count: 65536)
        #expect(NFLog.parse(junk).flows.isEmpty)
        // A packet whose IPv4 header length points past its end.
        #expect(NFLog.flow(fromPacket: [0x4f] + [UInt8](repeating: 0, count: 30)) == nil)
        // IPv6 with a chain of extension headers longer than the packet.
        var v6 = [UInt8](repeating: 0, count: 48); v6[0] = 0x60; v6[6] = 0; v6[40] = 0; v6[41] = 200
        #expect(NFLog.flow(fromPacket: v6)?.port == nil)
        // A later IPv4 fragment has no UDP header: no port, no query.
        var frag = Array(full[(full.count - 64)..<(full.count - 1)]);   // the packet, without the attribute's padding
        frag[6] = 0x00; frag[7] = 0x10
        let f = NFLog.flow(fromPacket: frag)
        #expect(f?.proto == .udp && f?.port == nil && f?.dnsQuery == nil, "\(String(describing: f))")
    }

    @Test func theTallyItemisesTheFirstAttemptPerDestinationAndIsBounded() {
        var t = RefusalTally(limit: 3)
        let a = RefusedFlow(proto: .tcp, address: IPAddress(198, 18, 0, 10), port: 80, protocolNumber: 6)
        let first = t.note(a), second = t.note(a), third = t.note(a)
        #expect(first && !second && !third)
        for port in 1...5 {
            _ = t.note(RefusedFlow(proto: .udp, address: IPAddress(198, 18, 0, 10), port: UInt16(port), protocolNumber: 17))
        }
        #expect(t.order.count == 3 && t.unitemised == 3)
        #expect(t.repeated.map(\.repeats) == [2] && t.repeated.first?.flow == a)
    }

    @Test func namesAndReasons() {
        var f = RefusedFlow(proto: .tcp, address: IPAddress("fd0c::10")!, port: 8080, protocolNumber: 6)
        #expect(f.subject == "tcp [fd0c::10]:8080")
        f.name = "allowed.test"
        #expect(f.details["name"] == "allowed.test" && f.reason.contains("(allowed.test)"))
        let other = RefusedFlow(proto: .other, address: IPAddress(198, 18, 0, 1), protocolNumber: 132)
        #expect(other.subject == "ip-proto 132 198.18.0.1" && other.details["ip-protocol"] == "132")
    }
}
