import AgentpenPolicy
import Testing

@Suite struct FirewallTests {
    let script = Firewall.ruleset(gateway: IPAddress(198, 18, 0, 1), proxyPort: 40000)

    func lines(_ s: String) -> [String] {
        s.split(separator: "\n").map { String($0.drop(while: { $0 == "\t" || $0 == " " })) }
    }

    func chain(_ name: String, in s: String) -> [String] {
        let all = lines(s)
        guard let start = all.firstIndex(of: "chain \(name) {") else { return [] }
        return Array(all[(start + 1)...].prefix(while: { $0 != "}" }))
    }

    @Test func oneTableNoPreamble() {
        // One table block and nothing before it: no `delete table` (its RCU wait costs
        // ~10 ms per start) and no `flush ruleset`. A table already in the namespace is
        // caught by the read-back (NetlinkTests: a second load does not verify).
        #expect(lines(script).first == "table inet agentpen {")
        #expect(lines(script).filter { $0.hasPrefix("table ") }.count == 1)
        #expect(!script.contains("delete"))
        #expect(!script.contains("flush ruleset"))
    }

    @Test func outputDropsAllButLoopbackAndTheProxyPort() {
        let output = chain("output", in: script)
        #expect(output == [
            "type filter hook output priority 0; policy drop;",
            "oif \"lo\" ip daddr 127.0.0.0/8 accept",
            "oif \"lo\" ip6 daddr ::1 accept",
            "ip daddr 198.18.0.1 tcp dport 40000 accept",
            "meta l4proto tcp counter name blocked_tcp drop",
            "meta l4proto udp counter name blocked_udp drop",
            "meta l4proto { icmp, ipv6-icmp } counter name blocked_icmp drop",
            "counter name blocked_other drop",
        ])
        // Exactly three accepts in output, nothing else accepts anywhere but input's two.
        #expect(lines(script).filter { $0.hasSuffix("accept") }.count == 5)
    }

    @Test func inputAndForward() {
        #expect(chain("input", in: script) == [
            "type filter hook input priority 0; policy drop;",
            "iif \"lo\" accept",
            "ct state established,related accept",
        ])
        #expect(chain("forward", in: script) == ["type filter hook forward priority 0; policy drop;"])
        #expect(lines(script).filter { $0.contains("policy") }.allSatisfy { $0.hasSuffix("policy drop;") })
    }

    @Test func countersDeclared() {
        for name in Firewall.counterNames {
            #expect(lines(script).contains("counter \(name) {"), "\(name) not declared")
            #expect(lines(script).contains { $0.contains("counter name \(name) drop") }, "\(name) not used")
        }
    }

    @Test func withoutProxyOnlyLoopback() {
        for s in [Firewall.ruleset(gateway: nil, proxyPort: nil),
                  Firewall.ruleset(gateway: IPAddress(198, 18, 0, 1), proxyPort: nil),
                  Firewall.ruleset(gateway: nil, proxyPort: 40000),
                  Firewall.ruleset(gateway: IPAddress(198, 18, 0, 1), proxyPort: 0)] {
            #expect(!s.contains("dport"))
            #expect(chain("output", in: s).filter { $0.hasSuffix("accept") }
                    == ["oif \"lo\" ip daddr 127.0.0.0/8 accept", "oif \"lo\" ip6 daddr ::1 accept"])
        }
    }

    /// The gateway is an IPAddress, so no text reaches the script: these do not
    /// parse as IPv4 (an injection attempt does not parse at all), and an IPv6
    /// gateway gets no `ip daddr` rule.
    @Test(arguments: ["198.18.0.1 tcp dport 1 accept\n\t\taccept #", "::1", "fd0c::1", "1.2.3", "1.2.3.256",
                      "198.18.0.1; flush ruleset", "", "01234.1.1.1"])
    func gatewayMustBePlainIPv4(_ text: String) {
        let gateway = IPAddress(text)
        #expect(gateway?.isIPv4 != true, "\(text.debugDescription) parsed as IPv4")
        let s = Firewall.ruleset(gateway: gateway, proxyPort: 40000)
        #expect(!s.contains("dport"))
        #expect(lines(s).filter { $0.hasSuffix("accept") }.count == 4)
    }

    // Captured from Debian 12's nft 1.0.6 (`nft list counters table inet agentpen`)
    // in `unshare -Urn` after blocked TCP, UDP and ping attempts.
    static let sample = """
        table inet agentpen {
        \tcounter blocked_tcp {
        \t\tpackets 4 bytes 240
        \t}
        \tcounter blocked_udp {
        \t\tpackets 2 bytes 60
        \t}
        \tcounter blocked_icmp {
        \t\tpackets 13 bytes 948
        \t}
        \tcounter blocked_other {
        \t\tpackets 0 bytes 0
        \t}
        }
        """

    @Test func parsesCounters() {
        let c = Firewall.parseCounters(Self.sample)
        #expect(c.count == 4)
        #expect(c["blocked_tcp"]?.packets == 4 && c["blocked_tcp"]?.bytes == 240)
        #expect(c["blocked_udp"]?.packets == 2 && c["blocked_udp"]?.bytes == 60)
        #expect(c["blocked_icmp"]?.packets == 13 && c["blocked_icmp"]?.bytes == 948)
        #expect(c["blocked_other"]?.packets == 0 && c["blocked_other"]?.bytes == 0)
    }

    @Test func parsesOnlyOurTable() {
        // `nft list counters` (all tables) as nft 1.0.6 prints it; a big counter too.
        let text = Self.sample + """

            table ip other {
            \tcounter c1 {
            \t\tpackets 7 bytes 700
            \t}
            \tcounter blocked_tcp {
            \t\tpackets 99 bytes 99
            \t}
            }
            table inet agentpen2 {
            \tcounter blocked_udp {
            \t\tpackets 5 bytes 5
            \t}
            }

            """
        let c = Firewall.parseCounters(text)
        #expect(Set(c.keys) == Set(Firewall.counterNames))
        #expect(c["blocked_tcp"]?.packets == 4)
        #expect(c["blocked_udp"]?.packets == 2)
        let big = Firewall.parseCounters("table inet agentpen {\n\tcounter \"blocked_tcp\" {\n\t\tpackets 18446744073709551615 bytes 12345678901234\n\t}\n}\n")
        #expect(big["blocked_tcp"]?.packets == UInt64.max && big["blocked_tcp"]?.bytes == 12345678901234)
    }

    @Test func parsesGarbageAsEmpty() {
        #expect(Firewall.parseCounters("").isEmpty)
        #expect(Firewall.parseCounters("Error: No such file or directory\nlist counters table inet agentpen\n").isEmpty)
        #expect(Firewall.parseCounters("table inet agentpen {\n\tcounter blocked_tcp {\n\t\tpackets x bytes 1\n\t}\n}").isEmpty)
    }
}
