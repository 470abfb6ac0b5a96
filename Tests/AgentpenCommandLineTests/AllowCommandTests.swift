@testable import AgentpenCommandLine
import AgentpenPolicy
import Testing

/// Issue 13 (ask): `agentpen allow`, `--ask`, `--audit` on the command line.
@Suite struct AllowCommandTests {
    @Test func allowTakesOneChoice() throws {
        #expect(try Invocation.parse(["allow", "API.example.com"]) == .allow(ControlCommand(host: "api.example.com", choice: .once), session: nil))
        let id = "20261201-150000-42"
        #expect(try Invocation.parse(["allow", "a.test", "--session", "--session-id", id])
                == .allow(ControlCommand(host: "a.test", choice: .session), session: id))
        #expect(try Invocation.parse(["allow", "a.test", "--save", "agent"]) == .allow(ControlCommand(host: "a.test", choice: .saveAgent), session: nil))
        #expect(try Invocation.parse(["allow", "a.test", "--save", "project"]) == .allow(ControlCommand(host: "a.test", choice: .saveProject), session: nil))
        #expect(try Invocation.parse(["allow", "a.test", "--deny"]) == .allow(ControlCommand(host: "a.test", choice: .deny), session: nil))
        for bad in [["allow"], ["allow", "a.test", "--once", "--deny"], ["allow", "a.test", "--save", "everywhere"],
                    ["allow", "*.a.test"], ["allow", "10.0.0.1"], ["allow", "a.test:22"], ["allow", "a.test", "--session-id", "../x"]] {
            #expect(throws: Invocation.Failure.self, "\(bad)") { try Invocation.parse(bad) }
        }
        guard case .subcommandHelp(let h) = try Invocation.parse(["allow", "--help"]) else { Issue.record("no help"); return }
        #expect(h.contains("--save") && h.contains("--session-id"))
    }

    @Test func askAndAudit() throws {
        guard case .agentpen(let a) = try Invocation.parse(["--ask", "true"]) else { Issue.record(); return }
        #expect(a.ask && !a.audit && a.unlistedNames == .hold)
        guard case .agentpen(let b) = try Invocation.parse(["--audit", "true"]) else { Issue.record(); return }
        #expect(b.audit && b.unlistedNames == .pass)
        #expect(throws: Invocation.Failure.self) { try Invocation.parse(["--ask", "--audit", "true"]) }
        #expect(Options.usage.contains("--ask") && Options.usage.contains("--audit") && Options.usage.contains("allow HOST"))
        #expect(!Options.usage.contains("not available yet"))
    }
}
