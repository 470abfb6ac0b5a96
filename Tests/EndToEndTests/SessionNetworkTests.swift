import Foundation
import Testing

/// Sessions with the network (issue 13): the events each layer writes into the
/// session's events.jsonl, the refusals file the agent reads, `agentpen suggest`
/// fed back as flags, and `agentpen watch` read off a tmux screen while a real run
/// produces blocks. Inside NetworkTests: the world is shared.
extension NetworkTests {
@Suite struct SessionNetworkTests {
    static func sessionIDs(_ state: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state + "/agentpen/sessions")) ?? []).sorted()
    }

    static func events(_ state: String, _ id: String) -> [[String: Any]] {
        readEvents(state + "/agentpen/sessions/" + id + "/events.jsonl")
    }

    static func kind(_ e: [String: Any]) -> String { e["kind"] as? String ?? "" }
    static func subject(_ e: [String: Any]) -> String { e["subject"] as? String ?? "" }
    static func details(_ e: [String: Any]) -> [String: String] { e["details"] as? [String: String] ?? [:] }

    /// Waits inside the sandbox (bounded) until the refusals file names `name`.
    static func awaitRefusal(_ name: String) -> String {
        "i=0; while [ $i -lt 300 ] && ! grep -q -- '\(name)' \"$AGENTPEN_REFUSALS\"; do i=$((i+1)); sleep 0.05; done"
    }

    @Test func eachLayerWritesItsEventsAndTheAgentReadsWhy() throws {
        let f = try NetFixture()
        let state = f.root + "/state"
        // other.test is allowed but resolves to a private address; nothere.test is not allowed.
        let r = try f.sh(World.baseAllow + ["--allow", "other.test"], """
            curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
            curl -sS --max-time 5 --cacert ca.pem https://nothere.test/hello; echo "dns=$?"
            curl -sS --max-time 5 --cacert ca.pem https://other.test/hello; echo "private=$?"
            \(Self.awaitRefusal("other.test"))
            \(Self.awaitRefusal("nothere.test"))
            echo "file=$AGENTPEN_REFUSALS"
            cat "$AGENTPEN_REFUSALS"
            echo forged >> "$AGENTPEN_REFUSALS" 2>/dev/null; echo "append=$?"
            rm -f "$AGENTPEN_REFUSALS" 2>/dev/null; echo "rm=$?"
            mv "$(dirname "$AGENTPEN_REFUSALS")" /run/elsewhere 2>/dev/null; echo "mv=$?"
            ls -d "\(state)" 2>/dev/null; echo "state=$?"
            """, env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("hello from allowed.test"), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("dns=6"), "\(r.stdout)")
        // The refusals file, read inside during the run: each refusal with the flag that permits it.
        #expect(r.stdout.contains("file=/run/agentpen/session/refusals"), "\(r.stdout)")
        #expect(r.stdout.contains("nothere.test") && r.stdout.contains("--allow nothere.test"), "\(r.stdout)")
        #expect(r.stdout.contains("--allow-private other.test"), "\(r.stdout)")
        #expect(!r.stdout.contains("private=0"), "\(r.stdout)")
        for k in ["append", "rm", "mv", "state"] { #expect(!r.stdout.contains("\(k)=0"), "\(k) worked inside: \(r.stdout)") }
        #expect(!r.stdout.contains("forged"), "\(r.stdout)")

        let ids = Self.sessionIDs(state)
        try #require(ids.count == 1, "\(ids)")
        let ev = Self.events(state, ids[0])
        #expect(ev.allSatisfy { $0["v"] as? Int == 1 }, "\(ev)")
        let seqs = ev.compactMap { $0["seq"] as? Int }
        #expect(seqs == Array(1...ev.count), "seq: \(seqs)")
        #expect(Self.kind(ev.first ?? [:]) == "run-start" && Self.details(ev.first ?? [:])["hosts"] == "3", "\(ev)")
        #expect(Self.kind(ev.last ?? [:]) == "run-end", "\(ev)")
        #expect(ev.contains { Self.kind($0) == "dns-refused" && Self.subject($0) == "nothere.test"
                && Self.details($0)["permit"] == "--allow nothere.test" }, "\(ev)")
        #expect(ev.contains { Self.kind($0) == "connection-blocked" && Self.subject($0) == "other.test"
                && ($0["reason"] as? String ?? "").contains("private address")
                && Self.details($0)["permit"] == "--allow-private other.test" }, "\(ev)")
        let tunnel = ev.first { Self.kind($0) == "tunnel-closed" && Self.subject($0) == "allowed.test" }
        let td = Self.details(tunnel ?? [:])
        #expect(Int(td["bytes-up"] ?? "") ?? 0 > 100 && Int(td["bytes-down"] ?? "") ?? 0 > 100
                && Int(td["duration-ms"] ?? "") != nil && td["upstream"] == "198.18.0.10:443", "\(ev)")
        // The exit summary: counts per layer, then the blocked names (the last line).
        let lines = r.stderr.split(separator: "\n").map(String.init)
        let ended = lines.first { $0.hasPrefix("agentpen: session \(ids[0]) ended:") } ?? ""
        #expect(ended.contains("1 allowed") && ended.range(of: "dns-refused [0-9]+", options: .regularExpression) != nil
                && ended.contains("connection-blocked 1"), "\(r.stderr)")
        #expect(lines.last?.hasPrefix("agentpen: blocked ") == true && lines.last?.contains("nothere.test") == true, "\(r.stderr)")
    }

    @Test func suggestionsFedBackRunWithoutRefusals() throws {
        let f = try NetFixture()
        let state = f.root + "/state"
        let script = """
            curl -sS --max-time 5 --cacert ca.pem https://other.test/hello; echo " status=$?"
            """
        var flags = World.baseAllow
        var rounds: [String] = []
        // A refused name is suggested as --allow; once allowed, its private upstream as --allow-private.
        for round in 1...3 {
            let r = try f.sh(flags, script, env: ["XDG_STATE_HOME": state])
            let id = Self.sessionIDs(state).last ?? ""
            let s = try f.f.agentpen(["suggest", id], env: ["XDG_STATE_HOME": state])
            #expect(s.status == 0, "\(s.stderr)")
            rounds.append("round \(round): \(r.stdout) / \(s.stdout)")
            let line = s.stdout.split(separator: "\n").first { $0.hasPrefix("--allow") }.map(String.init)
            guard let line else {
                #expect(round == 3 && r.stdout.contains("hello from other.test") && r.stdout.contains(" status=0"), "\(rounds)")
                #expect(s.stdout.contains("nothing was refused"), "\(s.stdout)")
                let refusals = Self.events(state, id).filter { ["dns-refused", "connection-blocked"].contains(Self.kind($0)) }
                #expect(refusals.isEmpty, "\(refusals)")
                return
            }
            #expect(s.stdout.contains("host other.test"), "no config line: \(s.stdout)")
            if round == 1 { #expect(line == "--allow other.test", "\(s.stdout)") }
            if round == 2 { #expect(line == "--allow-private other.test", "\(s.stdout)") }
            flags += line.split(separator: " ").map(String.init)
        }
        Issue.record("suggestions did not converge: \(rounds)")
    }

    @Test func watchShowsALiveSessionInATerminal() throws {
        let f = try NetFixture()
        let state = f.root + "/state"
        try f.f.write(f.project + "/dnsq.py", OutputNetworkTests.query)
        let fifo = f.project + "/go.fifo"
        #expect(mkfifo(fifo, 0o666) == 0)
        let hostile = OutputNetworkTests.hex(Array("\u{1b}[2Jhostile".utf8))
        let run = try Launched(f.f, World.baseAllow + ["--", "/bin/sh", "-c", """
            curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
            curl -sS --max-time 5 https://other.test/; curl -sS --max-time 5 https://other.test/
            /usr/bin/python3 dnsq.py \(hostile)
            echo ready > ready.txt
            cat go.fifo >/dev/null
            curl -sS --max-time 5 https://late.other.test/
            echo done > done.txt
            cat go.fifo >/dev/null
            """], env: ["XDG_STATE_HOME": state])
        defer { run.killLeftovers() }
        try #require(waitUntil(60) { f.f.read(f.project + "/ready.txt") != nil }, "\(run.stderr)")
        let id = Self.sessionIDs(state).last ?? ""

        // Attaches late, to the newest session; colour on (NO_COLOR unset in the pane).
        let tmux = try Tmux(f.root, command: "env -u NO_COLOR XDG_STATE_HOME=\(state) HOME=\(f.f.home) \(Agentpen.binary) watch; echo WATCH-EXIT=$?; cat")
        defer { tmux.stop() }
        // A second watcher, for scripts, attached at the same time.
        let jsonOut = f.root + "/watch.json"
        let json = try spawn([Agentpen.binary, "watch", "--json", id], env: f.f.environment(extra: ["XDG_STATE_HOME": state]),
                             cwd: f.root, stdout: jsonOut, stderr: f.root + "/watch.err")
        var screen = ""
        let shown = waitUntil(30) {
            screen = tmux.capture()
            return screen.contains("session \(id)") && screen.contains("hostile.test")
                && screen.range(of: #"[0-9]+ +dns-refused +other\.test"#, options: .regularExpression) != nil
        }
        #expect(shown, "screen:\n\(screen)")
        #expect(screen.contains("running"), "\(screen)")
        #expect(screen.contains("project \(f.project)") && screen.contains("agent sh"), "\(screen)")
        #expect(screen.range(of: #"allowed\.test +1 conn"#, options: .regularExpression) != nil, "traffic: \(screen)")
        // The hostile name is shown escaped: its ESC did not clear the screen.
        #expect(screen.contains(#"\x1b[2jhostile.test"#), "\(screen)")
        #expect(tmux.capture(escapes: true).contains("\u{1b}["), "no colour")
        // A decision made while watching appears.
        #expect(writeAll(fifo, "go\n"))
        #expect(waitUntil(30) { tmux.capture().contains("late.other.test") }, "\(tmux.capture())")
        #expect(waitUntil(30) { f.f.read(f.project + "/done.txt") != nil })
        #expect(writeAll(fifo, "go\n"))
        #expect(run.finish(within: 60) == 0, "\(run.stderr)")
        #expect(waitUntil(30) { tmux.capture().contains("WATCH-EXIT=0") }, "\(tmux.capture())")
        #expect(tmux.capture().contains("ended"), "\(tmux.capture())")

        var status: Int32 = 0
        #expect(waitUntil(30) { waitpid(json, &status, WNOHANG) == json } && status == 0, "watch --json did not end")
        let text = f.f.read(jsonOut) ?? ""
        let lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.count == text.split(separator: "\n").count, "\(text)")
        let seqs = lines.compactMap { $0["seq"] as? Int }
        #expect(seqs == Array(1...max(1, seqs.count)) && seqs.count == Self.events(state, id).count, "\(seqs)")
        #expect(lines.contains { Self.subject($0) == "late.other.test" } && Self.kind(lines.last ?? [:]) == "run-end", "\(text)")
    }
}
}

/// A tmux server of the test's own (`-S` socket in the fixture), one pane running `command`.
final class Tmux {
    let socket: String
    init(_ dir: String, command: String, width: Int = 160, height: Int = 50) throws {
        socket = dir + "/tmux.sock"
        // The server tmux forks keeps the client's stdout and stderr: files, not
        // pipes, so nothing waits for it to close them.
        let client = try spawn(["/usr/bin/tmux", "-S", socket, "-f", "/dev/null", "new-session", "-d", "-x", String(width),
                                "-y", String(height), command],
                               env: ["PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "LANG": "C.UTF-8"], cwd: dir,
                               stdout: dir + "/tmux.out")
        var status: Int32 = 0
        guard waitUntil(30, { waitpid(client, &status, WNOHANG) == client }), status == 0 else {
            kill(client, SIGKILL)
            throw TestFailure("tmux new-session failed (\(status)): \((try? String(contentsOfFile: dir + "/tmux.out", encoding: .utf8)) ?? "")")
        }
    }

    /// The pane's text (with `escapes`, its colour sequences too).
    func capture(escapes: Bool = false) -> String {
        (try? runProgram("/usr/bin/tmux", ["-S", socket, "capture-pane", "-p"] + (escapes ? ["-e"] : []),
                         env: ["PATH": "/usr/bin:/bin"], cwd: "/"))?.stdout ?? ""
    }

    /// Ends the server. Through spawn(), not Foundation's Process: the tmux server
    /// keeps what the client inherits, and a leaked server outlived CI runs.
    func stop() {
        guard let pid = try? spawn(["/usr/bin/tmux", "-S", socket, "kill-server"], env: ["PATH": "/usr/bin:/bin"], cwd: "/",
                                   stdout: "/dev/null") else { return }
        var status: Int32 = 0
        if !waitUntil(10, { waitpid(pid, &status, WNOHANG) == pid }) { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
    }
}
