import Testing
@testable import AgentpenPolicy

@Suite struct DNSMessageTests {
    let allow = Allowlist([try! HostPattern("api.example.com"), try! HostPattern("*.cdn.example")])

    func query(_ name: String, type: UInt16 = 1, id: UInt16 = 0x1234, rd: Bool = true, qclass: UInt16 = 1,
               arcount: UInt16 = 0, extra: [UInt8] = []) -> [UInt8] {
        var m: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), rd ? 0x01 : 0x00, 0x00, 0, 1, 0, 0, 0, 0,
                          UInt8(arcount >> 8), UInt8(arcount & 0xff)]
        for label in name.split(separator: ".") {
            m.append(UInt8(label.utf8.count))
            m += Array(label.utf8)
        }
        m += [0, UInt8(type >> 8), UInt8(type & 0xff), UInt8(qclass >> 8), UInt8(qclass & 0xff)]
        return m + extra
    }

    func rcode(_ r: [UInt8]) -> UInt8 { r[3] & 0x0f }
    func count(_ r: [UInt8], _ at: Int) -> Int { Int(r[at]) << 8 | Int(r[at + 1]) }

    @Test func allowedNameGetsTheForwarderAddress() throws {
        let q = query("API.Example.com")
        let reply = DNSMessage.reply(to: q, allowlist: allow)
        let r = try #require(reply.bytes)
        #expect(r[0] == 0x12 && r[1] == 0x34)
        #expect(r[2] & 0x80 != 0)        // QR
        #expect(r[2] & 0x04 != 0)        // AA
        #expect(r[2] & 0x01 != 0)        // RD echoed
        #expect(r[3] & 0x80 == 0)        // RA clear
        #expect(rcode(r) == 0)
        #expect(count(r, 4) == 1 && count(r, 6) == 1)
        #expect(Array(r[12..<q.count]) == Array(q[12...]))   // question echoed, case kept
        let ans = Array(r[q.count...])
        #expect(ans == [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 127, 0, 0, 1])
        #expect(reply.decision == .answered(name: "api.example.com", type: 1, pattern: "api.example.com",
                                            addresses: [IPAddress(127, 0, 0, 1)]))
    }

    @Test func wildcardAndConfiguredAddresses() throws {
        let cfg = DNSMessage.AnswerConfig(ipv4: IPAddress(10, 0, 2, 2), ipv6: IPAddress("fd00::2"), ttl: 3)
        let r = try #require(DNSMessage.reply(to: query("x.cdn.example", type: 28), allowlist: allow, config: cfg).bytes)
        #expect(count(r, 6) == 1)
        #expect(Array(r[(r.count - 16)...]) == IPAddress("fd00::2")!.bytes)
        let a = try #require(DNSMessage.reply(to: query("x.cdn.example"), allowlist: allow, config: cfg).bytes)
        #expect(Array(a.suffix(4)) == [10, 0, 2, 2])
        #expect(a[a.count - 10] == 0 && a[a.count - 9] == 0 && a[a.count - 8] == 0 && a[a.count - 7] == 3)
    }

    @Test func aaaaAndOtherTypesGetNoData() throws {
        for t: UInt16 in [28, 16, 15, 65] {
            let reply = DNSMessage.reply(to: query("api.example.com", type: t), allowlist: allow)
            let r = try #require(reply.bytes)
            #expect(rcode(r) == 0 && count(r, 6) == 0, "type \(t)")
            #expect(reply.decision.isAllowed)
        }
    }

    @Test func otherNamesAreNXDomain() throws {
        for name in ["evil.example", "cdn.example", "example.com", "xapi.example.com", "api.example.com.evil"] {
            let reply = DNSMessage.reply(to: query(name), allowlist: allow)
            let r = try #require(reply.bytes)
            #expect(rcode(r) == 3, "\(name)")
            #expect(count(r, 6) == 0)
            #expect(reply.decision == .nxDomain(name: name, reason: "not in the allowlist"))
        }
    }

    @Test func dotInsideALabelCannotFakeAnAllowedName() throws {
        // One label "api.example" + "com" would print as api.example.com.
        var m: [UInt8] = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        m += [11] + Array("api.example".utf8) + [3] + Array("com".utf8) + [0, 0, 1, 0, 1]
        let reply = DNSMessage.reply(to: m, allowlist: allow)
        #expect(rcode(try #require(reply.bytes)) == 3)
    }

    @Test func ednsAdditionalIsAccepted() throws {
        let opt: [UInt8] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]
        let r = try #require(DNSMessage.reply(to: query("api.example.com", arcount: 1, extra: opt), allowlist: allow).bytes)
        #expect(rcode(r) == 0 && count(r, 6) == 1 && count(r, 10) == 0)
    }

    @Test func malformed() throws {
        // Too short, or a response: no reply at all.
        #expect(DNSMessage.reply(to: [1, 2, 3], allowlist: allow).bytes == nil)
        var resp = query("api.example.com")
        resp[2] |= 0x80
        #expect(DNSMessage.reply(to: resp, allowlist: allow).bytes == nil)
        // Compression pointer in the question.
        var m: [UInt8] = [0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1]
        var r = try #require(DNSMessage.reply(to: m, allowlist: allow).bytes)
        #expect(rcode(r) == 1 && r[0] == 0xab && r[1] == 0xcd && count(r, 4) == 0)
        // Truncated.
        r = try #require(DNSMessage.reply(to: Array(query("api.example.com").dropLast(2)), allowlist: allow).bytes)
        #expect(rcode(r) == 1)
        // Two questions.
        m = query("api.example.com")
        m[5] = 2
        r = try #require(DNSMessage.reply(to: m, allowlist: allow).bytes)
        #expect(rcode(r) == 1)
        // Label running past the end.
        m = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, 1, 2]
        r = try #require(DNSMessage.reply(to: m, allowlist: allow).bytes)
        #expect(rcode(r) == 1)
        // Opcode other than QUERY.
        m = query("api.example.com")
        m[2] |= 0x28   // opcode 5 (UPDATE)
        r = try #require(DNSMessage.reply(to: m, allowlist: allow).bytes)
        #expect(rcode(r) == 4)
        // Random input, and valid queries with a few bytes changed, never crash and
        // never answer a name outside the list. Checked on the reply's bytes (an
        // independent reading of the question and the answer records), not on
        // the decision the parser reports about itself.
        var rng = SystemRandomNumberGenerator()
        let seeds = [query("api.example.com"), query("x.cdn.example"), query("a.b.cdn.example", type: 28)]
        var answered = 0
        for i in 0..<6000 {
            var b: [UInt8]
            if i % 2 == 0 {
                b = (0..<Int.random(in: 0..<80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                b = seeds[i % seeds.count]
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            let reply = DNSMessage.reply(to: b, allowlist: allow)
            guard let bytes = reply.bytes, let parsed = Self.readReply(bytes) else {
                if case .answered = reply.decision { Issue.record("answered without a readable reply: \(b)") }
                continue
            }
            if parsed.addresses.isEmpty { continue }
            answered += 1
            #expect(allow.match(parsed.name) != nil, "answered \(parsed.name) from \(b)")
            #expect(parsed.addresses.allSatisfy { $0 == [127, 0, 0, 1] || $0 == IPAddress("::1")!.bytes }, "\(parsed.addresses)")
            guard case .answered(let name, _, _, let addresses) = reply.decision else {
                Issue.record("addresses in the reply, but decision \(reply.decision)"); continue
            }
            #expect(name == parsed.name.lowercased())
            #expect(addresses.map(\.bytes) == parsed.addresses)
        }
        #expect(answered > 0, "no mutated query was answered: the check above saw nothing")
    }

    /// The question name (labels joined, no compression in a question) and the
    /// address records of a reply, read from its bytes; nil if they do not parse.
    static func readReply(_ r: [UInt8]) -> (name: String, addresses: [[UInt8]])? {
        guard r.count >= 12 else { return nil }
        let qd = Int(r[4]) << 8 | Int(r[5]), an = Int(r[6]) << 8 | Int(r[7])
        guard qd == 1 else { return an == 0 ? ("", []) : nil }
        var i = 12
        var labels: [String] = []
        while true {
            guard i < r.count else { return nil }
            let n = Int(r[i]); i += 1
            if n == 0 { break }
            guard n < 64, i + n <= r.count else { return nil }
            labels.append(String(decoding: r[i..<(i + n)], as: UTF8.self)); i += n
        }
        i += 4
        var addresses: [[UInt8]] = []
        for _ in 0..<an {
            // Name: a pointer to the question (all the parser writes) or labels.
            guard i + 2 <= r.count, r[i] == 0xc0, r[i + 1] == 0x0c else { return nil }
            i += 2
            guard i + 10 <= r.count else { return nil }
            let type = Int(r[i]) << 8 | Int(r[i + 1])
            let len = Int(r[i + 8]) << 8 | Int(r[i + 9])
            i += 10
            guard i + len <= r.count else { return nil }
            if type == 1 || type == 28 { addresses.append(Array(r[i..<(i + len)])) }
            i += len
        }
        return (labels.joined(separator: "."), addresses)
    }

    @Test func nameLongerThan255IsFormErr() throws {
        let name = Array(repeating: String(repeating: "a", count: 63), count: 5).joined(separator: ".")
        let r = try #require(DNSMessage.reply(to: query(name), allowlist: allow).bytes)
        #expect(rcode(r) == 1)
    }
}
