import Testing
@testable import AgentpenPolicy

@Suite struct PresetTests {
    @Test func everyShippedPresetParses() throws {
        #expect(Preset.builtinNames == ["aider", "claude", "codex", "crush", "gemini", "opencode"])
        for name in Preset.builtinNames {
            let text = try #require(embeddedPresets[name])
            let preset = try Preset(name: name, text: text)
            #expect(!preset.hosts.isEmpty, "\(name) has no hosts")
        }
    }

    @Test func claudeKeepsItsConfigInsideTheWritableDir() throws {
        let p = try #require(Preset.builtin("claude"))
        #expect(p.readWrite.contains("~/.claude"))
        #expect(p.setenv.contains { $0.name == "CLAUDE_CONFIG_DIR" && $0.value == "~/.claude" })
        #expect(p.hosts.contains(try HostPattern("api.anthropic.com")))
    }

    /// Codex's own sandbox cannot start inside agentpen (no nested user namespaces):
    /// the preset turns it off, and gives that only to codex itself.
    @Test func codexIsToldItIsSandboxedAlready() throws {
        let p = try #require(Preset.builtin("codex"))
        #expect(p.args == ["-c", "sandbox_mode=\"danger-full-access\""])
        let q = try Preset(name: "t", text: "arg --flag\narg two words\n")
        #expect(q.args == ["--flag", "two words"])
    }

    /// A custom endpoint from the caller's environment adds its host, nothing else does.
    @Test func endpointHostsComeFromTheCallersURL() throws {
        let claude = try #require(Preset.builtin("claude"))
        #expect(claude.endpoints == ["ANTHROPIC_BASE_URL"] && claude.env.contains("ANTHROPIC_BASE_URL"))
        #expect(try claude.endpointHosts(caller: [:]).isEmpty)
        #expect(try claude.endpointHosts(caller: ["ANTHROPIC_BASE_URL": "https://user:pw@gw.corp.example:8443/v1?x=1"])
                == [try HostPattern("gw.corp.example")])
        #expect(try claude.endpointHosts(caller: ["OPENAI_BASE_URL": "https://other.example"]).isEmpty)
        for bad in ["gw.corp.example", "ftp://gw.corp.example", "https://", "https://*.example.com", "https://10.0.0.1/"] {
            #expect(throws: Preset.ParseError.self, "\(bad)") { try claude.endpointHosts(caller: ["ANTHROPIC_BASE_URL": bad]) }
        }
        let codex = try #require(Preset.builtin("codex"))
        #expect(try codex.endpointHosts(caller: ["OPENAI_BASE_URL": "http://llm.internal.example/v1"]) == [try HostPattern("llm.internal.example")])
    }

    @Test func parseErrorsNameTheLine() {
        #expect(throws: Preset.ParseError(preset: "x", line: 2, message: "unknown keyword \"bogus\"")) {
            try Preset(name: "x", text: "host a.example\nbogus 1\n")
        }
        #expect(throws: Preset.ParseError.self) { try Preset(name: "x", text: "host 127.0.0.1") }
        #expect(throws: Preset.ParseError.self) { try Preset(name: "x", text: "rw relative/path") }
        #expect(throws: Preset.ParseError.self) { try Preset(name: "x", text: "rw ~/../etc") }
        #expect(throws: Preset.ParseError.self) { try Preset(name: "x", text: "setenv NOVALUE") }
    }

    @Test func commentsAndBlankLines() throws {
        let p = try Preset(name: "t", text: "# c\n\nhost a.example # trailing\n  env  FOO_1 \nsetenv X=~/y\nro /etc/z\n")
        #expect(p.hosts.map(\.description) == ["a.example"])
        #expect(p.env == ["FOO_1"])
        #expect(p.setenv.map(\.value) == ["~/y"])
        #expect(p.readOnly == ["/etc/z"])
    }
}
