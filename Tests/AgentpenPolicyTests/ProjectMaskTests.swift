import AgentpenCommandLine
import Testing
@testable import AgentpenPolicy

/// hide masks, the project file read-only, and agentpen's own directories never bound.
@Suite struct ProjectMaskTests {
    let base = debianLike.merging([
        "/home/u/src/p/.env": .file("SECRET", exec: false), "/home/u/src/p/a.pem": .file("", exec: false),
        "/home/u/src/p/secrets/k": .file("", exec: false), "/home/u/src/p/.agentpen.toml": .file("", exec: false),
        "/home/u/src/p/link": .link("/home/u/.ssh"), "/home/u/src/p/in": .link("secrets"),
    ]) { $1 }

    func masked(_ hide: [String], fs: FakeFS) throws -> SandboxPlan {
        var o = try Options.parse(["--", "/bin/sh"])
        o.hide = hide
        return try SandboxPlan.make(options: o, facts: facts(), project: "/home/u/src/p", preset: nil, network: .none, fs: fs)
    }

    @Test func masksLieOverTheProjectAndItsGitGuards() throws {
        let p = try masked([".env", "*.pem", "secrets", "link", "in", "missing"], fs: FakeFS(base))
        let project = p.bwrap.firstIndex(of: rw("/home/u/src/p"))!
        let env = try #require(p.bwrap.firstIndex(of: .data(path: "/home/u/src/p/.env", content: "")))
        #expect(env > project)
        #expect(p.bwrap.contains(.data(path: "/home/u/src/p/a.pem", content: "")))
        #expect(p.bwrap.contains(.tmpfs("/home/u/src/p/secrets", size: 4096, mode: 0o555)))
        #expect(p.bwrap.contains(.remountReadOnly("/home/u/src/p/secrets")))
        // A link out of the project masks nothing; one inside masks its target once.
        #expect(!p.bwrap.contains { $0.paths.contains("/home/u/src/p/link") || $0.paths.contains("/home/u/.ssh") })
        #expect(p.bwrap.filter { $0 == .tmpfs("/home/u/src/p/secrets", size: 4096, mode: 0o555) }.count == 1)
        #expect(p.openedBinds(readOnly: true).contains("/home/u/src/p/.agentpen.toml"))
        #expect(p.notes.contains("hide /home/u/src/p/.env: an empty read-only file"))
        // Without hide and without a project file: nothing added.
        var bare = base; bare["/home/u/src/p/.agentpen.toml"] = nil
        let none = try masked([], fs: FakeFS(bare))
        #expect(!none.bwrap.contains { $0.paths.contains { $0.hasPrefix("/home/u/src/p/") && !$0.contains(".git") } })
    }

    @Test func tooManyMasksIsARefusal() throws {
        var many = base
        for i in 0...ProjectMasks.limit { many["/home/u/src/p/f\(i).pem"] = .file("", exec: false) }
        #expect(throws: PlanError.self) { try masked(["*.pem"], fs: FakeFS(many)) }
    }

    @Test func agentpensOwnDirectoriesAreNeverBound() throws {
        let fs = FakeFS(base.merging(["/home/u/.config/agentpen/config.toml": .file("", exec: false),
                                      "/home/u/.claude/x": .file("", exec: false), "/srv/state/x": .file("", exec: false)]) { $1 })
        for args in [["--mount", "/home/u/.config"], ["--mount-rw", "/home/u/.config/agentpen"],
                     ["--mount", "/home/u/.local"]] {
            #expect(throws: PlanError.self, "\(args)") { try plan(args + ["--", "/bin/sh"], fs: fs) }
        }
        // Moved by a variable: the moved place is protected too.
        #expect(throws: PlanError.self) { try plan(["--mount", "/srv", "--", "/bin/sh"], fs: fs, env: ["XDG_STATE_HOME": "/srv/state"]) }
        #expect(try plan(["--mount", "/srv", "--", "/bin/sh"], fs: fs).bwrap.contains(ro("/srv")))
        // A preset's path that holds one (XDG_CONFIG_HOME pointing into ~/.claude).
        do {
            _ = try SandboxPlan.make(options: try Options.parse(["--", "/bin/sh"]), facts: facts(["XDG_CONFIG_HOME": "/home/u/.claude"]),
                                     project: "/home/u/src/p", preset: Preset.builtin("claude"), network: .none, fs: fs)
            Issue.record("bound ~/.claude holding agentpen's config")
        } catch { #expect("\(error)".contains("agentpen's own directory /home/u/.claude/agentpen"), "\(error)") }
        // The project must not be or hold one.
        #expect(throws: PlanError.self) { try plan(["--", "/bin/sh"], fs: fs, project: "/home/u/.config") }
        #expect(throws: PlanError.self) { try plan(["--", "/bin/sh"], fs: fs, project: "/home/u/.config/agentpen") }
        // One an XDG variable puts in the project is not believed, not refused.
        #expect(try plan(["--", "/bin/sh"], fs: fs, env: ["XDG_STATE_HOME": "/home/u/src/p/.state"]).bwrap.contains(rw("/home/u/src/p")))
    }
}
