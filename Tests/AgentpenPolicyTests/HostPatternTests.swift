import Testing
@testable import AgentpenPolicy

@Suite struct HostPatternTests {
    @Test func exactNamesMatchCaseInsensitively() throws {
        let p = try HostPattern("API.Example.COM")
        #expect(p.name == "api.example.com" && !p.isWildcard)
        #expect(p.matches("api.example.com"))
        #expect(p.matches("Api.EXAMPLE.com"))
        #expect(p.matches("api.example.com."))   // a fully qualified DNS question
        #expect(!p.matches("x.api.example.com"))
        #expect(!p.matches("example.com"))
        #expect(!p.matches("api.example.com.evil"))
        #expect(!p.matches("aapi.example.com"))
    }

    @Test func wildcardsMatchSubdomainsNotTheApex() throws {
        let p = try HostPattern("*.githubusercontent.com")
        #expect(p.isWildcard && p.description == "*.githubusercontent.com")
        #expect(p.matches("raw.githubusercontent.com"))
        #expect(p.matches("a.b.GitHubUserContent.com"))
        #expect(!p.matches("githubusercontent.com"))
        #expect(!p.matches(".githubusercontent.com"))
        #expect(!p.matches("evilgithubusercontent.com"))
        #expect(!p.matches("githubusercontent.com.evil"))
    }

    @Test(arguments: [
        "127.0.0.1", "0x7f000001", "0X7F000001", "2130706433", "017700000001", "127.1", "10.0.0.1", "0x7f.1",
        "::1", "[::1]", "fe80::1", "::ffff:127.0.0.1", "1.2.3.4.",
    ])
    func ipLiteralsAreRefused(_ s: String) {
        #expect(throws: HostPattern.Invalid.self) { try HostPattern(s) }
        #expect(throws: HostPattern.Invalid.self) { try HostPattern(s, allowsPrivateUpstream: true) }
    }

    @Test(arguments: ["localhost", "LOCALHOST", "localhost.", "a.localhost", "*.localhost", "*.localhost.", "x.y.localhost."])
    func localhostNamesAreRefused(_ s: String) {
        #expect(throws: HostPattern.Invalid.self) { try HostPattern(s) }
    }

    @Test(arguments: [
        "", "a..b", ".a", "a.", "example.com.", "*.", "*", "**.a.com", "a.*.com", "*a.com", "a*.com",
        "a b.com", " a.com", "a.com ", "a.com\n127.0.0.1 evil", "a\tb.com", "a\u{0}.com", "a\r.com",
        "caf\u{e9}.com", "a_b.com", "-a.com", "a-.com", "a/b.com", "a@b.com",
        String(repeating: "a", count: 64) + ".com", String(repeating: "a.", count: 127) + "com",
    ])
    func malformedNamesAreRefused(_ s: String) {
        #expect(throws: HostPattern.Invalid.self, "\(s.debugDescription)") { try HostPattern(s) }
    }

    @Test func trailingDotVariantsOfRefusedNamesKeepTheirReason() {
        #expect(throws: HostPattern.Invalid.loopbackName("localhost")) { try HostPattern("localhost.") }
        #expect(throws: HostPattern.Invalid.ipLiteral("127.0.0.1")) { try HostPattern("127.0.0.1.") }
        #expect(throws: HostPattern.Invalid.trailingDot("example.com.")) { try HostPattern("example.com.") }
    }

    @Test func plausibleNamesAreAccepted() throws {
        for s in ["a.com", "x-y.example.org", "1e100.net", "123.example", "xn--bcher-kva.example", "*.com",
                  String(repeating: "a", count: 63) + ".com"] {
            _ = try HostPattern(s)
        }
    }

    @Test func allowlistPrefersPrivatePermission() throws {
        var list = Allowlist([try HostPattern("*.test.example")])
        list.add(try HostPattern("a.test.example", allowsPrivateUpstream: true))
        #expect(list.match("a.test.example")?.allowsPrivateUpstream == true)
        #expect(list.match("b.test.example")?.allowsPrivateUpstream == false)
        #expect(list.match("test.example") == nil)
        list.add(try HostPattern("*.test.example", allowsPrivateUpstream: true))
        #expect(list.patterns.count == 2)
        #expect(list.match("b.test.example")?.allowsPrivateUpstream == true)
        #expect(list.exactNames == ["a.test.example"])
    }
}
