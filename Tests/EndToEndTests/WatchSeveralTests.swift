import Foundation
import Testing

/// `agentpen watch` following several sessions (issue 13): `--all` attached
/// late to two live runs, read off a tmux screen where every line names its
/// session, and `--json A B` with each event line carrying its `session`.
/// Offline runs: the decisions on show are secret reads (SecretDecoyTests).
@Suite struct WatchSeveralTests {
    static func sessionIDs(_ state: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state + "/agentpen/sessions")) ?? []).sorted()
    }

    /// A run that reads one decoy, says it is ready, waits, reads another, waits again.
    static func script(first: String, then: String, tag: String) -> String {
        """
        cat ~/\(first) > /dev/null
        echo ready > ready-\(tag).txt
        cat go-\(tag).fifo > /dev/null
        cat ~/\(then) > /dev/null
        echo done > done-\(tag).txt
        cat go-\(tag).fifo > /dev/null
        """
    }

    @Test func watchAllFollowsTwoLiveSessionsEachLineNamingItsSession() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let env = ["XDG_STATE_HOME": state]
        for tag in ["a", "b"] { #expect(mkfifo(f.project + "/go-\(tag).fifo", 0o600) == 0) }
        let a = try Launched(f, ["--", "/bin/sh", "-c", Self.script(first: ".aws/credentials", then: ".kube/config", tag: "a")], env: env)
        defer { a.killLeftovers() }
        try #require(waitUntil(30) { f.read(f.project + "/ready-a.txt") != nil }, "\(a.stderr)")
        let b = try Launched(f, ["--", "/bin/sh", "-c", Self.script(first: ".netrc", then: ".npmrc", tag: "b")], env: env)
        defer { b.killLeftovers() }
        try #require(waitUntil(30) { f.read(f.project + "/ready-b.txt") != nil }, "\(b.stderr)")
        let ids = Self.sessionIDs(state)
        try #require(ids.count == 2, "\(ids)")
        let (idA, idB) = (ids[0], ids[1])
        // ids sort by start time; a started first. (Same second: by pid, so check.)
        let first = readEvents(state + "/agentpen/sessions/\(idA)/events.jsonl")
        let aIsFirst = first.contains { ($0["subject"] as? String ?? "").hasSuffix("/.aws/credentials") }
        let (sa, sb) = aIsFirst ? (idA, idB) : (idB, idA)

        // Attached late, to both; a second watcher for scripts names them.
        let tmux = try Tmux(f.root, command: "env -u NO_COLOR XDG_STATE_HOME=\(state) HOME=\(f.home) \(Agentpen.binary) watch --all; echo WATCH-EXIT=$?; cat",
                            width: 200, height: 50)
        defer { tmux.stop() }
        let jsonOut = f.root + "/watch.json"
        let json = try spawn([Agentpen.binary, "watch", "--json", sa, sb], env: f.environment(extra: env),
                             cwd: f.root, stdout: jsonOut, stderr: f.root + "/watch.err")
        var screen = ""
        let h = f.home
        func lineWith(_ text: String) -> String? { screen.split(separator: "\n").map(String.init).last { $0.contains(text) } }
        let shown = waitUntil(30) {
            screen = tmux.capture()
            return screen.contains("2 sessions · 2 running") && lineWith("\(h)/.aws/credentials: ") != nil
                && lineWith("\(h)/.netrc: ") != nil
        }
        #expect(shown, "screen:\n\(screen)")
        // One line per session, and each decision's line names its own session.
        #expect(lineWith("  \(sa)  running")?.contains("agent sh") == true && lineWith("  \(sb)  running") != nil, "\(screen)")
        #expect(lineWith("\(h)/.aws/credentials: ")?.contains(sa) == true && lineWith("\(h)/.netrc: ")?.contains(sb) == true, "\(screen)")
        #expect(screen.split(separator: "\n").filter { $0.contains("secret-read") }.allSatisfy { $0.contains(sa) || $0.contains(sb) },
                "a line names no session:\n\(screen)")
        #expect(tmux.capture(escapes: true).contains("\u{1b}["), "no colour")

        // Decisions made while watching appear, under their sessions.
        #expect(writeAll(f.project + "/go-a.fifo", "go\n") && writeAll(f.project + "/go-b.fifo", "go\n"))
        #expect(waitUntil(30) {
            screen = tmux.capture()
            return lineWith("\(h)/.kube/config: ")?.contains(sa) == true && lineWith("\(h)/.npmrc: ")?.contains(sb) == true
        }, "\(screen)")
        #expect(waitUntil(30) { f.read(f.project + "/done-a.txt") != nil && f.read(f.project + "/done-b.txt") != nil })
        #expect(writeAll(f.project + "/go-a.fifo", "go\n") && writeAll(f.project + "/go-b.fifo", "go\n"))
        #expect(a.finish(within: 60) == 0 && b.finish(within: 60) == 0, "\(a.stderr) \(b.stderr)")
        // Both ended: the watch ends by itself, the screen left standing.
        #expect(waitUntil(30) { tmux.capture().contains("WATCH-EXIT=0") }, "\(tmux.capture())")
        #expect(tmux.capture().contains("0 running") && tmux.capture().contains("  \(sa)  ended (status 0)"), "\(tmux.capture())")

        var status: Int32 = 0
        #expect(waitUntil(30) { waitpid(json, &status, WNOHANG) == json } && status == 0, "watch --json did not end")
        let text = f.read(jsonOut) ?? ""
        let lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.count == text.split(separator: "\n").count && !lines.isEmpty, "\(text)")
        for id in [sa, sb] {
            let mine = lines.filter { $0["session"] as? String == id }
            let seqs = mine.compactMap { $0["seq"] as? Int }
            let logged = readEvents(state + "/agentpen/sessions/\(id)/events.jsonl")
            #expect(seqs == Array(1...max(1, logged.count)), "\(id): \(seqs) of \(logged.count)")
            #expect(mine.last?["kind"] as? String == "run-end", "\(id)")
            #expect(logged.allSatisfy { $0["session"] == nil }, "the log itself names no session")
        }
        #expect(lines.allSatisfy { [sa, sb].contains($0["session"] as? String ?? "") }, "\(text)")
    }

    @Test func watchAllWithNothingRunningAndBadIDsAreRefused() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let env = ["XDG_STATE_HOME": state]
        #expect(try f.agentpen(["--", "/bin/true"], env: env).status == 0)
        let none = try f.agentpen(["watch", "--all"], env: env)
        #expect(none.status == 2 && none.stderr.contains("no session is running"), "\(none.stderr)")
        let id = Self.sessionIDs(state).first ?? ""
        let bad = try f.agentpen(["watch", id, "../x"], env: env)
        #expect(bad.status == 2 && bad.stderr.contains("not a session ID"), "\(bad.stderr)")
        let mixed = try f.agentpen(["watch", "--all", id], env: env)
        #expect(mixed.status == 2, "\(mixed.stderr)")
        // Two ended sessions by ID: read to the end, off a terminal, one view naming both.
        #expect(try f.agentpen(["--", "/bin/sh", "-c", "cat ~/.netrc"], env: env).status == 0)
        let ids = Self.sessionIDs(state)
        try #require(ids.count == 2)
        let both = try f.agentpen(["watch"] + ids, env: env)
        #expect(both.status == 0 && both.stdout.contains("2 sessions · 0 running"), "\(both.stdout) \(both.stderr)")
        #expect(both.stdout.split(separator: "\n").contains { ($0.contains(ids[0]) || $0.contains(ids[1])) && $0.contains("secret-read") && $0.contains("/.netrc") },
                "\(both.stdout)")
    }
}
