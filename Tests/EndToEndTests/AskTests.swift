import Foundation
import Testing

/// Issue 13 (ask): `--ask` in the test world. A TLS connection to an unlisted
/// name is held (nothing dialled) until `agentpen allow` answers on the
/// session's control socket, or the time runs out. The world's servers are all
/// in 198.18.0.0/15, so an approved name is then refused as a private upstream
/// (approval is `--allow`, never `--allow-private`): the events show the hold,
/// the decision, and that only then was the name resolved and vetted. Bytes
/// through an approved connection: HoldProxyTests.
extension NetworkTests {
@Suite struct AskTests {
    typealias S = SessionNetworkTests

    struct Run {
        let f: NetFixture
        let state: String
        let config: String
        var env: [String: String] { ["XDG_STATE_HOME": state, "XDG_CONFIG_HOME": config] }

        init() throws {
            f = try NetFixture()
            state = f.root + "/state"
            config = f.root + "/config"
            try FileManager.default.createDirectory(atPath: config + "/agentpen", withIntermediateDirectories: true)
        }

        func id() -> String? { waitUntil(60) { !S.sessionIDs(state).isEmpty } ? S.sessionIDs(state).last : nil }

        func events(_ id: String) -> [[String: Any]] { S.events(state, id) }

        /// Waits (bounded) for the n-th connection-held event for `host`.
        func held(_ id: String, _ host: String, count: Int = 1) -> [String: Any]? {
            var found: [[String: Any]] = []
            _ = waitUntil(60) {
                found = events(id).filter { S.kind($0) == "connection-held" && S.subject($0) == host }
                return found.count >= count
            }
            return found.count >= count ? found[count - 1] : nil
        }

        func allow(_ args: [String]) throws -> Agentpen.Result { try f.f.agentpen(["allow"] + args, env: env) }
    }

    static func curl(_ host: String, _ tag: String) -> String {
        "curl -sS --max-time 120 --cacert ca.pem https://\(host)/hello; echo \" \(tag)=$?\""
    }

    @Test func eachDecisionAnswersAHeldConnection() throws {
        let r = try Run()
        let run = try Launched(r.f.f, ["--ask", "--", "/bin/sh", "-c", [
            Self.curl("allowed.test", "once"), Self.curl("other.test", "deny"),
            Self.curl("a.wild.test", "session"), Self.curl("a.wild.test", "session2"),
            Self.curl("b.wild.test", "save"), "echo finished"].joined(separator: "\n")], env: r.env)
        defer { run.killLeftovers() }
        let id = try #require(r.id(), "\(run.stderr)")

        // Held: the name resolved inside, nothing dialled or even resolved outside yet.
        let h = try #require(r.held(id, "allowed.test"), "\(run.stderr) \(r.events(id))")
        #expect(S.details(h)["agent"] == "sh" && S.details(h)["permit"] == "--allow allowed.test", "\(h)")
        // The process inside that owns the connecting socket.
        #expect(S.details(h)["process"]?.range(of: #"^pid [0-9]+ curl$"#, options: .regularExpression) != nil, "\(h)")
        #expect(!r.events(id).contains { S.subject($0) == "allowed.test" && ["connection-blocked", "connection-allowed"].contains(S.kind($0)) })
        // Nothing was printed over the agent's terminal but the start line.
        #expect(!run.stderr.contains("allowed.test"), "\(run.stderr)")
        let once = try r.allow(["allowed.test", "--once", "--session-id", id])
        #expect(once.status == 0 && once.stderr.contains("1 held connection"), "\(once.stderr)")
        // Once: released, then resolved and vetted like any allowed name (private here: refused).
        #expect(waitUntil(60) { r.events(id).contains { S.kind($0) == "connection-blocked" && S.subject($0) == "allowed.test"
                && S.details($0)["decision"] == "once" && ($0["reason"] as? String ?? "").contains("every address refused") } },
                "\(r.events(id))")

        _ = try #require(r.held(id, "other.test"), "\(r.events(id))")
        let deny = try r.allow(["other.test", "--deny"])   // the newest session by default
        #expect(deny.status == 0, "\(deny.stderr)")
        #expect(waitUntil(60) { r.events(id).contains { S.kind($0) == "connection-blocked" && S.subject($0) == "other.test"
                && S.details($0)["decision"] == "deny" && ($0["reason"] as? String ?? "").contains("denied by the user") } })

        _ = try #require(r.held(id, "a.wild.test"), "\(r.events(id))")
        #expect(try r.allow(["a.wild.test", "--session", "--session-id", id]).status == 0)
        // The second connection to it is not held: decided for the session.
        #expect(waitUntil(60) { r.events(id).filter { S.kind($0) == "connection-blocked" && S.subject($0) == "a.wild.test"
                && S.details($0)["decision"] == "session" }.count == 2 }, "\(r.events(id))")
        #expect(r.events(id).filter { S.kind($0) == "connection-held" && S.subject($0) == "a.wild.test" }.count == 1)

        _ = try #require(r.held(id, "b.wild.test"), "\(r.events(id))")
        let save = try r.allow(["b.wild.test", "--save", "project", "--session-id", id])
        #expect(save.status == 0 && save.stderr.contains("saved in \(r.config)/agentpen/allowed.toml"), "\(save.stderr)")
        #expect(run.finish(within: 120) == 0, "\(run.stderr)")
        #expect(run.stdout.contains("finished"), "\(run.stdout)")
        for tag in ["once", "deny", "session", "session2", "save"] { #expect(!run.stdout.contains(" \(tag)=0"), "\(run.stdout)") }

        // A decision for nothing held, and for a run that ended, is refused.
        let none = try r.allow(["nothing.test", "--deny", "--session-id", id])
        #expect(none.status == 2, "\(none.stderr)")
        // Saved beside the user's config, which is never written; the next run has the host.
        let saved = r.f.f.read(r.config + "/agentpen/allowed.toml") ?? ""
        #expect(saved.contains("[project.\"\(r.f.project)\"]") && saved.contains("\"b.wild.test\""), "\(saved)")
        #expect(!FileManager.default.fileExists(atPath: r.config + "/agentpen/config.toml"))
        let cfg = try r.f.f.agentpen(["config", "--", "/bin/true"], env: r.env)
        #expect(cfg.stdout.contains("allow = b.wild.test") && cfg.stdout.contains("allowed.toml"), "\(cfg.stdout)")
    }

    @Test func noDecisionInTimeIsRefusedAndTheGlobalKeysDecide() throws {
        let r = try Run()
        try r.f.f.write(r.config + "/agentpen/config.toml", "ask = true\nask_timeout = 1\n")
        // The project file may neither turn asking on nor off.
        try r.f.f.write(r.f.project + "/.agentpen.toml", "ask = false\nask_timeout = 3600\n")
        let t = try r.f.sh([], Self.curl("allowed.test", "timeout"), env: r.env)
        #expect(t.stdout.contains(" timeout=") && !t.stdout.contains(" timeout=0"), "\(t.stdout) \(t.stderr)")
        #expect(t.stderr.contains("ask ignored") || t.stderr.contains("ask: ignored") || t.stderr.contains(".agentpen.toml: ask"), "\(t.stderr)")
        let id = try #require(S.sessionIDs(r.state).last)
        let ev = r.events(id)
        #expect(ev.contains { S.kind($0) == "connection-held" && S.details($0)["timeout-s"] == "1" }, "\(ev)")
        #expect(ev.contains { S.kind($0) == "connection-blocked" && S.subject($0) == "allowed.test"
                && S.details($0)["decision"] == "timeout" && ($0["reason"] as? String ?? "").contains("no decision within 1 s") }, "\(ev)")
        // A global `ask = false` turns asking off entirely: --ask is refused.
        try r.f.f.write(r.config + "/agentpen/config.toml", "ask = false\n")
        let off = try r.f.sh(["--ask"], "true", env: r.env)
        #expect(off.status == 2 && off.stderr.contains("asking is turned off"), "\(off.stderr)")
    }

    @Test func theSandboxCannotApproveForItself() throws {
        let r = try Run()
        try r.f.f.write(r.config + "/agentpen/config.toml", "ask_timeout = 5\n")
        let state = r.state
        let run = try Launched(r.f.f, ["--ask", "--", "/bin/sh", "-c", """
            curl -sS --max-time 120 --cacert ca.pem https://allowed.test/hello > /dev/null 2>&1 &
            i=0; while [ $i -lt 1200 ] && [ ! -e go ]; do i=$((i+1)); sleep 0.05; done; echo " go=$i"
            ls "\(state)" 2>/dev/null; echo " state=$?"
            ls "\(state)"/agentpen/sessions/*/control 2>/dev/null; echo " listed=$?"
            for s in "\(state)"/agentpen/sessions/*/control /run/agentpen/session/control; do
              /usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"allow allowed.test session\\n"); print(s.recv(100))' "$s" 2>/dev/null; echo " connect=$?"
            done
            "\(Agentpen.binary)" allow allowed.test --session >/dev/null 2>&1; echo " binary=$?"
            agentpen allow allowed.test --session >/dev/null 2>&1; echo " path=$?"
            XDG_STATE_HOME="\(state)" "\(Agentpen.binary)" allow allowed.test --session >/dev/null 2>&1; echo " xdg=$?"
            ls -a /run/agentpen/session; echo " view=$?"
            wait
            """], env: r.env)
        defer { run.killLeftovers() }
        let id = try #require(r.id(), "\(run.stderr)")
        _ = try #require(r.held(id, "allowed.test"), "\(r.events(id))")
        // The sandbox tries while its connection is held; then the time runs out.
        try r.f.f.write(r.f.project + "/go", "")
        #expect(run.finish(within: 180) == 0, "\(run.stderr)")
        let out = run.stdout
        for k in ["state", "listed", "connect", "binary", "path", "xdg"] { #expect(!out.contains(" \(k)=0"), "\(k) worked inside: \(out)") }
        #expect(out.contains(" view=0") && !out.contains("control\n"), "the session's view holds no control socket: \(out)")
        #expect(!out.contains(" go=1200"), "the hold was not seen from outside in time: \(out)")
        let ev = r.events(id)
        #expect(!ev.contains { ["session", "once", "save-agent", "save-project"].contains(S.details($0)["decision"] ?? "") }, "\(ev)")
        #expect(ev.contains { S.kind($0) == "connection-blocked" && S.details($0)["decision"] == "timeout" }, "\(ev)")
    }

    @Test func aHeldConnectionNotifiesThroughTheHostProgramOnly() throws {
        let r = try Run()
        // A notify-send of our own, outside the home and anything the sandbox can write.
        let bin = r.f.root + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let out = r.f.root + "/notified"
        try r.f.f.write(bin + "/notify-send", """
            #!/bin/sh
            printf '%s\\n' "$@" > \(out).args
            env > \(out).env
            echo NOTIFY-STDOUT; echo NOTIFY-STDERR >&2
            """, mode: 0o755)
        var env = r.env
        env["AGENTPEN_NOTIFY_SEND"] = bin + "/notify-send"
        env["SECRET_TOKEN"] = "hunter2"
        env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/tmp/evil-bus"
        let run = try Launched(r.f.f, ["--ask", "--", "/bin/sh", "-c", Self.curl("allowed.test", "held")], env: env)
        defer { run.killLeftovers() }
        let id = try #require(r.id(), "\(run.stderr)")
        _ = try #require(r.held(id, "allowed.test"), "\(r.events(id))")
        #expect(waitUntil(30) { r.f.f.read(out + ".env") != nil }, "notify-send was not run")
        #expect(try r.allow(["allowed.test", "--deny", "--session-id", id]).status == 0)
        #expect(run.finish(within: 120) == 0, "\(run.stderr)")
        let args = r.f.f.read(out + ".args") ?? ""
        #expect(args.contains("agentpen: allowed.test is waiting") && args.contains("agentpen allow allowed.test"), "\(args)")
        #expect(args.contains("pid ") && args.contains("curl"), "no process named: \(args)")
        // A fixed environment: nothing of the caller's, the bus from the uid, not from the caller.
        let seen = (r.f.f.read(out + ".env") ?? "").split(separator: "\n").map(String.init)
        #expect(!seen.contains { $0.contains("hunter2") || $0.contains("evil-bus") || $0.hasPrefix("HOME=") }, "\(seen)")
        #expect(seen.contains { $0.hasPrefix("DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/\(getuid())/bus") }, "\(seen)")
        // Nothing over the agent's terminal.
        #expect(!run.stdout.contains("NOTIFY-") && !run.stderr.contains("NOTIFY-"), "\(run.stdout) \(run.stderr)")
        // The exit summary counts the hold apart from the refusals.
        let ended = run.stderr.split(separator: "\n").first { $0.contains("ended:") } ?? ""
        #expect(ended.contains("1 held for a decision (--ask)") && !ended.contains("connection-held"), "\(run.stderr)")
    }

    @Test func watchShowsThePromptAndAnswersIt() throws {
        let r = try Run()
        let run = try Launched(r.f.f, ["--ask", "--", "/bin/sh", "-c", Self.curl("allowed.test", "held")
            + "\ni=0; while [ $i -lt 1200 ] && [ ! -e done ]; do i=$((i+1)); sleep 0.05; done"], env: r.env)
        defer { run.killLeftovers() }
        let id = try #require(r.id(), "\(run.stderr)")
        let tmux = try Tmux(r.f.root, command: "env -u NO_COLOR XDG_STATE_HOME=\(r.state) XDG_CONFIG_HOME=\(r.config) HOME=\(r.f.f.home) \(Agentpen.binary) watch; echo WATCH-EXIT=$?; cat")
        defer { tmux.stop() }
        _ = try #require(r.held(id, "allowed.test"), "\(r.events(id))")
        var screen = ""
        let shown = waitUntil(30) {
            screen = tmux.capture()
            return screen.contains("WAITING allowed.test wants to connect (agent sh, process pid ") && screen.contains("[s] this session")
        }
        #expect(shown, "screen:\n\(screen)")
        #expect(screen.contains("agentpen allow allowed.test"), "\(screen)")
        tmux.keys("s")
        #expect(waitUntil(60) { r.events(id).contains { S.kind($0) == "connection-blocked" && S.subject($0) == "allowed.test"
                && S.details($0)["decision"] == "session" } }, "\(r.events(id)) \(tmux.capture())")
        #expect(waitUntil(30) { tmux.capture().contains("ok session allowed.test") }, "\(tmux.capture())")
        #expect(!tmux.capture().contains("WAITING"), "the prompt is gone once answered: \(tmux.capture())")
        try r.f.f.write(r.f.project + "/done", "")
        #expect(run.finish(within: 120) == 0, "\(run.stderr)")
        #expect(waitUntil(30) { tmux.capture().contains("WATCH-EXIT=0") }, "\(tmux.capture())")
    }
}
}

extension Tmux {
    /// Types `keys` into the pane.
    func keys(_ keys: String) {
        _ = try? runProgram("/usr/bin/tmux", ["-S", socket, "send-keys", "-l", keys], env: ["PATH": "/usr/bin:/bin"], cwd: "/")
    }
}
