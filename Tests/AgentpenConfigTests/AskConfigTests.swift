import AgentpenConfig
import AgentpenPolicy
import Testing

/// Issue 13 (ask): the global `ask` and `ask_timeout` keys (a project file may
/// say neither), and allowed.toml, the machine-managed file `agentpen allow
/// --save` writes, read as trusted.
@Suite struct AskConfigTests {
    static let savedPath = "/home/u/.config/agentpen/allowed.toml"

    @Test func askKeysAreGlobalOnly() throws {
        let g = try global("ask = true\nask_timeout = 30\n")
        #expect(g.ask?.value == true && g.askTimeout?.value == 30)
        let p = try project("ask = false\nask_timeout = 3600\n")
        #expect(p.ask == nil && p.askTimeout == nil)
        #expect(p.ignored.map(\.key).sorted() == ["ask", "ask_timeout"])
        #expect(p.ignored.allSatisfy { $0.reason == .globalOnly })
        #expect(throws: ConfigError.self) { try global("ask = \"yes\"\n") }
        #expect(throws: ConfigError.self) { try global("ask_timeout = 0\n") }
        #expect(throws: ConfigError.self) { try global("ask_timeout = 100000\n") }
    }

    @Test func globalAskDecides() throws {
        // ask = true: every run asks; --audit still wins.
        let on = try global("ask = true\nask_timeout = 7\n")
        let r = try Resolution.resolve(.init(flags: flags(), global: on))
        #expect(r.options.ask && r.options.askTimeout == 7 && r.options.unlistedNames == .hold)
        let audit = try Resolution.resolve(.init(flags: flags { $0.audit = true }, global: on))
        #expect(!audit.options.ask && audit.options.unlistedNames == .pass)
        // ask = false: off entirely, --ask is refused naming the key.
        let off = try global("ask = false\n")
        #expect(throws: Resolution.Failure.self) { try Resolution.resolve(.init(flags: flags { $0.ask = true }, global: off)) }
        #expect(try Resolution.resolve(.init(flags: flags(), global: off)).options.unlistedNames == .refuse)
        // A trusted project cannot turn it on either.
        let p = try project("ask = true\n")
        #expect(try Resolution.resolve(.init(flags: flags(), project: p, projectTrusted: true)).options.ask == false)
    }

    @Test func savedHostsRoundTripAndJoinTheAllowlist() throws {
        var s = SavedHosts(path: Self.savedPath)
        let first = s.add(host("api.example.com"), agent: "claude")
        let again = s.add(host("api.example.com"), agent: "claude")
        let third = s.add(host("reg.example.org"), project: "/home/u/src/\"odd\" p")
        #expect(first && !again && third)
        let back = try SavedHosts.parse(Array(s.text.utf8), path: Self.savedPath)
        #expect(back == s)
        let r = try Resolution.resolve(.init(flags: flags(["claude"]), saved: back, projectPath: "/home/u/src/\"odd\" p"))
        #expect(r.options.allow.contains(host("reg.example.org")))
        #expect(r.preset?.hosts.contains(host("api.example.com")) == true || r.options.allow.contains(host("api.example.com")))
        #expect(r.lines.contains { $0.value == "reg.example.org" && $0.source == .file(path: Self.savedPath, key: "project./home/u/src/\"odd\" p.hosts") })
        // Another project or agent does not get them.
        let other = try Resolution.resolve(.init(flags: flags(["codex"]), saved: back, projectPath: "/elsewhere"))
        #expect(!other.options.allow.contains(host("reg.example.org")) && !other.options.allow.contains(host("api.example.com")))
        // The paranoid profile drops them.
        let paranoid = try Resolution.resolve(.init(flags: flags(["claude"]) { $0.profile = "paranoid" }, saved: back,
                                                    projectPath: "/home/u/src/\"odd\" p"))
        #expect(!paranoid.options.allow.contains(host("reg.example.org")))
    }

    @Test func savedHostsFileIsCheckedLikeAConfig() {
        for bad in ["allow = [\"x.test\"]", "[agent.claude]\nhosts = [\"10.0.0.1\"]", "[agent.claude]\nhosts = [\"*.\"]",
                    "[agent.claude]\nenv = [\"X\"]", "[project.relative]\nhosts = [\"a.test\"]", "[agent.\"a b\"]\nhosts = []",
                    "not toml ["] {
            #expect(throws: ConfigError.self, "\(bad)") { try SavedHosts.parse(Array(bad.utf8), path: Self.savedPath) }
        }
    }
}
