import Testing
@testable import AgentpenPolicy

/// Issue 11 (net): per-name addresses, NAME:PORT patterns, the direct hop's socket plan.
@Suite struct NameAddressTests {
    func list(_ specs: [String], privateOK: Bool = false) throws -> Allowlist {
        var l = Allowlist()
        for s in specs { l.add(try HostPattern(s, allowsPrivateUpstream: privateOK)) }
        return l
    }

    @Test func exactNamesAreNumberedAndListedInHosts() throws {
        let n = NameAddresses(try list(["a.test", "*.w.test", "b.test"]))
        #expect(n.exact.map(\.name) == ["a.test", "b.test"])
        #expect(n.exact.map(\.address) == [IPAddress(127, 0, 1, 1), IPAddress(127, 0, 1, 2)])
        #expect(n.name(at: IPAddress(127, 0, 1, 2)) == "b.test")
        #expect(n.name(at: .loopbackV4) == nil)
        let hosts = NetworkPlan.hostsFile(n)
        #expect(hosts.contains("127.0.1.1 a.test\n127.0.1.2 b.test\n") && !hosts.contains("w.test"))
    }

    @Test func wildcardNamesGetPooledAddressesOnceAndTheSameAgain() throws {
        var n = NameAddresses(try list(["*.w.test", "a.test"]), poolSize: 3)
        let x = n.address(for: "x.w.test"), y = n.address(for: "Y.W.TEST.")
        #expect(x == IPAddress(127, 0, 16, 1) && y == IPAddress(127, 0, 16, 2))
        #expect(n.address(for: "x.w.test") == x)
        #expect(n.name(at: y!) == "y.w.test")
        #expect(n.address(for: "a.test") == IPAddress(127, 0, 1, 1))
        // Not allowed: nothing handed out, nothing used up.
        #expect(n.address(for: "w.test") == nil && n.address(for: "evil.test") == nil && n.pooledCount == 2)
        #expect(n.address(for: "z.w.test") != nil)
        #expect(n.address(for: "full.w.test") == nil, "the pool is bounded")
    }

    @Test func addressesSkipTheEndsOfEachBlock() {
        #expect(NameAddresses.offset(NameAddresses.exactBase, 253) == IPAddress(127, 0, 1, 254))
        #expect(NameAddresses.offset(NameAddresses.exactBase, 254) == IPAddress(127, 0, 2, 1))
        let last = NameAddresses.offset(NameAddresses.exactBase, NameAddresses.maxExact - 1)
        #expect(last.bytes[2] < NameAddresses.poolBase.bytes[2], "exact names run into the pool: \(last)")
    }

    @Test func dnsAnswersEachNameWithItsOwnAddress() throws {
        let l = try list(["*.w.test", "a.test"])
        var n = NameAddresses(l, poolSize: 1)
        func query(_ name: String) -> [UInt8] {
            var q: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
            for label in name.split(separator: ".") { q.append(UInt8(label.count)); q += Array(label.utf8) }
            return q + [0, 0, 1, 0, 1]
        }
        let a = DNSMessage.reply(to: query("a.test"), allowlist: l, address: { n.address(for: $0) })
        #expect(a.decision == .answered(name: "a.test", type: 1, pattern: "a.test", addresses: [IPAddress(127, 0, 1, 1)]))
        let x = DNSMessage.reply(to: query("x.w.test"), allowlist: l, address: { n.address(for: $0) })
        #expect(x.decision.isAllowed)
        let full = DNSMessage.reply(to: query("y.w.test"), allowlist: l, address: { n.address(for: $0) })
        #expect(full.decision == .error(.servFail, reason: "no per-name address left for y.w.test"))
        let denied = DNSMessage.reply(to: query("evil.test"), allowlist: l, address: { n.address(for: $0) })
        #expect(!denied.decision.isAllowed)
    }

    @Test func namePortPatterns() throws {
        let p = try HostPattern("GitHub.com:22")
        #expect(p.name == "github.com" && !p.tls && p.ports == [22] && p.specs == ["github.com:22"])
        let w = try HostPattern("*.db.test:5432")
        #expect(w.isWildcard && w.ports == [5432])
        var l = try list(["github.com:22", "github.com", "github.com:443", "github.com:22"])
        #expect(l.patterns.count == 1 && l.patterns[0].tls && l.patterns[0].ports == [22, 443])
        #expect(l.patterns[0].specs == ["github.com", "github.com:22", "github.com:443"])
        l.add(try HostPattern("ssh.test:2222"))
        #expect(l.matchTLS("ssh.test") == nil && l.matchPlain("ssh.test", port: 2222) != nil)
        #expect(l.matchPlain("ssh.test", port: 22) == nil && l.plainPorts == [22, 443, 2222])
        // Private permission survives a merge either way.
        var m = try list(["db.test:5432"], privateOK: true)
        m.add(try HostPattern("db.test"))
        #expect(m.patterns[0].allowsPrivateUpstream && m.patterns[0].tls && m.patterns[0].ports == [5432])
    }

    @Test(arguments: ["a.test:0", "a.test:65536", "a.test:", "a.test:x", "a.test:22x", "a.test:-1", "a.test:123456",
                      "127.0.0.1:22", "[::1]:22", "localhost:22", "10.0.0.1:5432", ":22", "a test:22"])
    func badNamePortsAreRefused(_ s: String) {
        #expect(throws: HostPattern.Invalid.self) { try HostPattern(s) }
    }

    @Test func directSocketPlanAndItsCheck() throws {
        let plan = NetworkPlan.directSockets(try list(["a.test", "b.test:22", "c.test:443", "d.test:22"]))
        let any = IPAddress(0, 0, 0, 0)
        #expect(plan == [.init(.tcpListener, any, 443), .init(.tcpListener, any, 22), .init(.udp, .loopbackV4, 53)])
        #expect(NetworkPlan.verifyHanded(plan, plan) == nil)
        #expect(NetworkPlan.verifyHanded(Array(plan.dropLast()), plan) != nil)
        #expect(NetworkPlan.verifyHanded([plan[0], .init(.tcpListener, .loopbackV4, 22), plan[2]], plan) != nil)
        #expect(NetworkPlan.verifyHanded([plan[0], nil, plan[2]], plan) != nil)
    }

    @Test func loopbackOnlyNamespace() {
        let lo = NetworkLink(index: 1, name: "lo", isUp: true, isLoopback: true)
        let eth = NetworkLink(index: 2, name: "eth0", isUp: false, isLoopback: false)
        let onLo = RouteInfo(family: .ipv6, destination: IPPrefix(host: .loopbackV6), gateway: nil, interfaceIndex: 1,
                             scope: .universe, table: RouteInfo.mainTable)
        let away = RouteInfo(family: .ipv4, destination: nil, gateway: IPAddress(10, 0, 0, 1), interfaceIndex: 2,
                             scope: .universe, table: RouteInfo.mainTable)
        #expect(RoutePolicy.verifyLoopbackOnly(links: [lo], routes: [onLo]) == .loopbackOnly)
        #expect(RoutePolicy.verifyLoopbackOnly(links: [lo, eth], routes: [onLo]) == .strayLink(eth))
        #expect(RoutePolicy.verifyLoopbackOnly(links: [lo], routes: [onLo, away]) == .strayRoute(away))
    }

    @Test func hopOptionNames() {
        #expect(NetworkPlan.Hop(option: "direct") == .direct && NetworkPlan.Hop(option: "pasta") == .gateway)
        #expect(NetworkPlan.Hop(option: "splice") == nil && NetworkPlan.Hop(option: "gateway") == nil)
        #expect(NetworkPlan.Hop.direct.perNameAddresses && !NetworkPlan.Hop.splice.perNameAddresses)
    }

    @Test func forwarderHeaderRoundTripsAndNeedsTheToken() {
        let h = ForwarderHeader(local: IPAddress(127, 0, 1, 3), port: 22, name: "git.test")
        let line = h.line(token: "abcd")
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(ForwarderHeader.parse(Array(line.dropLast()), token: "abcd") == h)
        #expect(ForwarderHeader.parse(Array(line.dropLast()), token: "abce") == nil)
        #expect(ForwarderHeader.parse(Array(line.dropLast()), token: "") == nil)
        let none = ForwarderHeader(local: .loopbackV4, port: 443, name: nil)
        #expect(ForwarderHeader.parse(Array(none.line(token: "t").dropLast()), token: "t") == none)
        for bad in ["AGENTPEN/1 t 127.0.0.1 443", "AGENTPEN/1 t 127.0.0.1 0 a.test", "AGENTPEN/1 t 127.0.0.1 443 *.a.test",
                    "AGENTPEN/1 t x 443 a.test", "AGENTPEN/2 t 127.0.0.1 443 a.test", "AGENTPEN/1 t 127.0.0.1 443 a.test extra",
                    "AGENTPEN/1 t 127.0.0.1 443 a.test\r", "AGENTPEN/1 t 127.0.0.1 +443 a.test", "GET / HTTP/1.0"] {
            #expect(ForwarderHeader.parse(Array(bad.utf8), token: "t") == nil, "\(bad)")
        }
    }
}
