import Testing
@testable import AgentpenPolicy

/// Issue 13 (ask, audit): the unlisted-name policy. `refuse` is today's run;
/// with `hold` (--ask) and `pass` (--audit) every name a host name could be gets
/// a per-name address from the pool, so the proxy knows the name from the
/// address before the first byte; nothing else becomes reachable.
@Suite struct UnlistedNamesTests {
    let allow = Allowlist([try! HostPattern("a.test"), try! HostPattern("*.w.test")])

    func query(_ name: String, type: UInt16 = 1) -> [UInt8] {
        var q: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") { q.append(UInt8(label.utf8.count)); q += Array(label.utf8) }
        return q + [0, UInt8(type >> 8), UInt8(type & 0xff), 0, 1]
    }

    @Test func refuseHandsOutNothingForUnlistedNames() {
        var n = NameAddresses(allow, unlisted: .refuse)
        #expect(n.address(for: "evil.test") == nil && n.pooledCount == 0)
        let r = DNSMessage.reply(to: query("evil.test"), allowlist: allow, unlisted: .refuse, address: { n.address(for: $0) })
        #expect(r.decision == .nxDomain(name: "evil.test", reason: "not in the allowlist"))
    }

    @Test(arguments: [UnlistedNames.hold, .pass])
    func holdAndPassAnswerEveryHostNameFromThePool(_ policy: UnlistedNames) throws {
        var n = NameAddresses(allow, unlisted: policy, poolSize: 3)
        let r = DNSMessage.reply(to: query("Evil.Test"), allowlist: allow, unlisted: policy, address: { n.address(for: $0) })
        #expect(r.decision == .answeredUnlisted(name: "evil.test", type: 1, addresses: [IPAddress(127, 0, 16, 1)]))
        #expect(r.decision.isAllowed)
        #expect(n.name(at: IPAddress(127, 0, 16, 1)) == "evil.test")
        // The same name keeps its address; a listed exact name keeps its own.
        #expect(n.address(for: "evil.test") == IPAddress(127, 0, 16, 1))
        #expect(n.address(for: "a.test") == IPAddress(127, 0, 1, 1))
        // What --allow would refuse gets no address: IP literals, localhost names, junk.
        for bad in ["127.0.0.1", "10.0.0.1", "0x7f.1", "localhost", "x.localhost", "a..b", "-x.test"] {
            #expect(n.address(for: bad) == nil, "\(bad)")
        }
        for bad in ["localhost", "db.localhost", "10.1.2.3", "1.2.3.4"] {
            let d = DNSMessage.reply(to: query(bad), allowlist: allow, unlisted: policy, address: { n.address(for: $0) })
            #expect(!d.decision.isAllowed, "\(bad)")
        }
        // The pool is shared with wildcards and bounded: flooding it with names
        // ends in SERVFAIL, never in an address outside the pool.
        _ = n.address(for: "x.w.test")
        _ = n.address(for: "y.test")
        #expect(n.address(for: "z.test") == nil && n.pooledCount == 3)
        let full = DNSMessage.reply(to: query("q.test"), allowlist: allow, unlisted: policy, address: { n.address(for: $0) })
        #expect(full.decision == .error(.servFail, reason: "no per-name address left for q.test"))
        // AAAA: no per-name v6 address, so NODATA, not the name's v4 one.
        let six = DNSMessage.reply(to: query("evil.test", type: 28), allowlist: allow, unlisted: policy,
                                   address: { n.address(for: $0) })
        #expect(six.decision == .answeredUnlisted(name: "evil.test", type: 28, addresses: []))
    }

    @Test func withoutPerNameAddressesUnlistedNamesStayRefused() {
        // The SNI-only hops have no address that could name what a connection is for.
        let r = DNSMessage.reply(to: query("evil.test"), allowlist: allow, unlisted: .pass, address: nil)
        #expect(!r.decision.isAllowed)
    }

    @Test func namesAndFlags() {
        #expect(UnlistedNames.refuse.letsUnlistedNamesResolve == false)
        #expect(UnlistedNames.hold.letsUnlistedNamesResolve && UnlistedNames.pass.letsUnlistedNamesResolve)
    }
}
