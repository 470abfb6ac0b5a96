@testable import AgentpenCommandLine
import AgentpenPolicy
import Testing

/// `agentpen config`, `trust` and `init`: subcommands only as the first word.
@Suite struct ConfigSubcommandTests {
    @Test func configTakesTheOptionsOfARun() throws {
        guard case .config(let o) = try Invocation.parse(["config", "--allow", "a.example", "-C", "/p", "claude", "-x"]) else {
            Issue.record("config"); return
        }
        #expect(o.project == "/p" && o.command == ["claude", "-x"] && o.allow.map(\.description) == ["a.example"])
        guard case .subcommandHelp(let h) = try Invocation.parse(["config", "--help"]) else { Issue.record("help"); return }
        #expect(h.contains("usage: agentpen config"))
        do { _ = try Invocation.parse(["config", "--nope"]); Issue.record("accepted --nope") }
        catch { #expect(error.exitStatus == 2 && error.message.contains("--nope"), "\(error)") }
    }

    @Test func trustAndInitTakeOnlyTheProject() throws {
        guard case .trust(let t) = try Invocation.parse(["trust", "-C", "/p"]) else { Issue.record("trust"); return }
        #expect(t.project == "/p")
        guard case .initialize(let i) = try Invocation.parse(["init"]) else { Issue.record("init"); return }
        #expect(i.project == nil)
        for word in ["trust", "init"] {
            do { _ = try Invocation.parse([word, "extra"]); Issue.record("\(word) accepted an argument") }
            catch { #expect(error.exitStatus == 2 && error.message.hasPrefix("\(word): "), "\(error)") }
            guard case .subcommandHelp = try Invocation.parse([word, "--help"]) else { Issue.record("\(word) --help"); return }
        }
    }

    @Test func afterAnOptionOrDoubleDashTheyArePrograms() throws {
        for word in ["config", "trust", "init"] {
            #expect(try Invocation.parse(["--", word]) == .agentpen(Options.parse(["--", word])))
            guard case .agentpen(let o) = try Invocation.parse(["--", word, "x"]) else { Issue.record("\(word)"); continue }
            #expect(o.command == [word, "x"])
        }
    }
}

@Suite struct ManualTests {
    @Test func theManPageComesFromTheHelpTable() throws {
        let page = Manual.page
        for e in Help.options { #expect(page.contains(".B " + Manual.roff(e.syntax)), "\(e.syntax)") }
        #expect(page.hasPrefix(".TH AGENTPEN 1"))
        #expect(!page.split(separator: "\n").contains { $0.hasPrefix("'") })
        #expect(Manual.roff(".x-y\\z") == "\\&.x\\-y\\ez")
        #expect(try Invocation.parse(["__manual"]) == .manual)
        #expect(try Invocation.parse(["--", "__manual"]) != .manual)
    }
}
