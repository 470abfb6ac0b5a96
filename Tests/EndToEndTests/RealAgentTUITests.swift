import Foundation
import Testing

/// The real Claude Code TUI (no `-p`) inside agentpen, on a terminal: a tmux server of
/// the test's own gives it a pty of a fixed size, the test reads the screen
/// (capture-pane) and types (send-keys, a bracketed paste), resizes the window and
/// presses Ctrl-C, as a user would. Against the scripted model server of the world
/// (tests/world/models.py), so inside NetworkTests with every other suite that uses it.
extension NetworkTests {
    @Suite(.enabled(if: RealAgents.runnable, RealAgents.skipReason))
    struct RealAgentTUITests {}
}

/// One tmux server with one window, its socket in the fixture: only this server is
/// ever addressed (and killed), never another on the machine.
final class TmuxTerminal {
    static let tmux = "/usr/bin/tmux"
    /// Screen polls before a wait gives up: about two minutes at 40 ms, only against a hang.
    static let polls = 3000
    let socket: String
    private let env: [String: String]
    let target = "apw"

    init(socket: String, home: String) {
        self.socket = socket
        // No user configuration, UTF-8 forced (-u, below), nothing of the caller's environment.
        env = ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home]
    }

    /// One tmux client call. Not through Foundation's Process: it watches a child's
    /// exit through a socket the child inherits, and the server tmux leaves behind
    /// would hold it (spawn passes no descriptor but the output files).
    @discardableResult
    func tmux(_ args: [String]) throws -> Agentpen.Result {
        let out = socket + ".out", err = socket + ".err"
        let pid = try spawn([Self.tmux, "-u", "-f", "/dev/null", "-S", socket] + args, env: env, stdout: out, stderr: err)
        var status: Int32 = 0
        guard waitUntil(30, { waitpid(pid, &status, WNOHANG) == pid }) else {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            throw TestFailure("tmux \(args) did not return")
        }
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let r = Agentpen.Result(status: code, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                                stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
        if r.status != 0 { throw TestFailure("tmux \(args): \(r.status) \(r.stderr)") }
        return r
    }

    /// Starts the server with a detached window of `width`×`height` running `argv`;
    /// returns the server's pid.
    func start(width: Int, height: Int, cwd: String, _ argv: [String]) throws -> pid_t {
        try tmux(["new-session", "-d", "-s", target, "-x", String(width), "-y", String(height), "-c", cwd, "--"] + argv)
        let pid = try tmux(["display-message", "-p", "-t", target, "#{pid}"]).stdout
        guard let p = pid_t(pid.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestFailure("tmux did not say its pid: \(pid)")
        }
        return p
    }

    /// The visible screen, one line per row ("" once the window is gone).
    func screen() -> String { (try? tmux(["capture-pane", "-p", "-t", target]).stdout) ?? "" }

    /// Polls the screen until `done` holds for it; returns that screen.
    @discardableResult
    func wait(_ what: String, _ done: (String) -> Bool) throws -> String {
        var last = ""
        for _ in 0..<Self.polls {
            last = screen()
            if done(last) { return last }
            usleep(40_000)
        }
        throw TestFailure("the screen never showed \(what); last screen:\n\(last)")
    }

    /// Does `act` when the screen shows `ready`, until it shows `done`. An input the
    /// program dropped (typed before its box listened, or while it was drawn again)
    /// is given again once it had `settle` polls to take effect; never while `done`.
    @discardableResult
    func drive(_ what: String, settle: Int = 75, ready: (String) -> Bool = { _ in true },
               _ act: () throws -> Void, until done: (String) -> Bool) throws -> String {
        var last = "", since = settle
        for _ in 0..<Self.polls {
            last = screen()
            if done(last) { return last }
            if since >= settle && ready(last) {
                try act()
                since = 0
            } else {
                since += 1
            }
            usleep(40_000)
        }
        throw TestFailure("the screen never showed \(what); last screen:\n\(last)")
    }

    /// Keys by tmux name (Enter, Up, C-c …).
    func keys(_ names: String...) throws { try tmux(["send-keys", "-t", target] + names) }
    /// Text typed literally, key by key.
    func type(_ text: String) throws { try tmux(["send-keys", "-t", target, "-l", text]) }
    /// `file`'s content pasted as a terminal paste (bracketed, as the program asked for).
    func paste(file: String) throws {
        try tmux(["load-buffer", "-b", "apw", file])
        try tmux(["paste-buffer", "-p", "-d", "-b", "apw", "-t", target])
    }
    func resize(width: Int, height: Int) throws {
        try tmux(["resize-window", "-t", target, "-x", String(width), "-y", String(height)])
    }

    /// Ends this server (and so what still runs in its window); fails quietly once it is gone.
    func killServer() { _ = try? tmux(["kill-server"]) }
}

/// agentpen running the real `claude` in a TmuxTerminal, its exit status written to a
/// file when it ends, and every process of the run recorded.
final class ClaudeTUIRun {
    let term: TmuxTerminal
    let statusFile: String
    let tree: ProcessTree
    let server: ProcInfo?

    /// The script in the window waits on a FIFO until the process tree is watched, so
    /// nothing agentpen starts can be missed; then runs agentpen with exactly `env`.
    init(_ f: Fixture, name: String, args: [String], env: [String: String], width: Int = 100, height: Int = 30) throws {
        term = TmuxTerminal(socket: f.root + "/\(name).sock", home: f.root)
        statusFile = f.root + "/\(name).status"
        let gate = f.root + "/\(name).go"
        guard mkfifo(gate, 0o600) == 0 else { throw TestFailure("mkfifo \(gate): \(errno)") }
        let q = { (s: String) in "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let assignments = env.sorted { $0.key < $1.key }.map { q($0.key + "=" + $0.value) }
        let script = """
            read go < \(q(gate))
            env -i \(assignments.joined(separator: " ")) \((([Agentpen.binary] + args).map(q)).joined(separator: " "))
            echo $? > \(q(statusFile + ".tmp")) && mv \(q(statusFile + ".tmp")) \(q(statusFile))

            """
        try f.write(f.root + "/\(name).sh", script)
        let pid = try term.start(width: width, height: height, cwd: f.project, ["/bin/sh", f.root + "/\(name).sh"])
        server = ProcInfo.read(pid)
        tree = ProcessTree(root: pid)
        // Open the gate (bounded: ENXIO until the script has opened its end).
        var fd: Int32 = -1
        for _ in 0..<TmuxTerminal.polls {
            fd = open(gate, O_WRONLY | O_NONBLOCK)
            if fd >= 0 || errno != ENXIO { break }
            usleep(10_000)
        }
        guard fd >= 0 else { throw TestFailure("the script in the tmux window never opened \(gate): \(term.screen())") }
        _ = write(fd, "go\n", 3)
        close(fd)
    }

    /// agentpen's exit status, once it has ended (nil while it runs).
    var status: Int32? {
        (try? String(contentsOfFile: statusFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Waits (bounded) for agentpen to end; its status.
    func finish() throws -> Int32 {
        for _ in 0..<TmuxTerminal.polls {
            if let s = status { return s }
            usleep(40_000)
        }
        throw TestFailure("agentpen did not end; last screen:\n\(term.screen())")
    }

    /// The agent: what the innermost bubblewrap started (the exec helper, which
    /// becomes the agent by exec; its name is the binary's, not "claude" here).
    var agent: ProcInfo? {
        let all = tree.processes
        let bwraps = Set(all.filter { $0.comm == "bwrap" }.map(\.pid))
        return all.first { bwraps.contains($0.ppid) && $0.comm != "bwrap" && $0.isAlive }
    }

    /// What of the run is still alive, the tmux server included (bounded wait).
    func leftovers() -> [ProcInfo] {
        var left = tree.leftovers(within: 30)
        if let server, !waitUntil(30, { !server.isAlive }) { left.append(server) }
        return left
    }

    deinit {
        term.killServer()
        tree.killLeftovers()
        tree.stop()
    }
}

/// Claude's screen, read as its user reads it.
enum ClaudeScreen {
    static func lines(_ screen: String) -> [String] {
        screen.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// The prompt box: the last line that starts with "❯" right under a border of "─".
    static func inputLine(_ screen: String) -> (line: String, border: Int)? {
        let l = lines(screen)
        guard let i = l.lastIndex(where: { $0.hasPrefix("❯") }), i > 0 else { return nil }
        let border = l[i - 1]
        guard !border.isEmpty, border.allSatisfy({ $0 == "─" }) else { return nil }
        return (l[i], border.count)
    }

    /// The box's width when it is drawn for exactly `width` columns: a redraw, not
    /// tmux re-wrapping lines drawn for another width.
    static func promptBox(_ screen: String, width: Int) -> Bool { inputLine(screen)?.border == width }

    /// A line of Claude's own: "● TEXT" (the prompt's echo carries the text too).
    static func says(_ screen: String, _ text: String) -> Bool {
        lines(screen).contains { $0.trimmingCharacters(in: .whitespaces) == "● " + text }
    }
}

extension NetworkTests.RealAgentTUITests {
    @Suite struct Claude {
        /// A returning user's interactive session: it draws its prompt box, takes a
        /// pasted prompt, asks at its permission prompt before the model's tool call
        /// (a project file written) and shows the answer; it is drawn again for a new
        /// width; one Ctrl-C clears the input and ends nothing; two end it, agentpen
        /// with status 0 and nothing of the run left.
        @Test func interactiveSession() throws {
            let f = try NetFixture()
            let path = try RealAgents.installClaude(home: f.f.home)
            let ca = f.f.home + "/corp-ca/world.pem"
            try f.f.write(ca, try String(contentsOfFile: World.ca, encoding: .utf8))
            let key = "sk-ant-apw-test"
            let extra = ["ANTHROPIC_API_KEY": key, "NODE_EXTRA_CA_CERTS": ca, "TERM": "xterm-256color"]
            let hosts = try RealAgents.allowedHosts(f.f, ["claude"], env: extra, path: path)
            #expect(hosts.contains("api.anthropic.com"), "\(hosts)")
            // The config a returning user has (in ~/.claude, where the preset keeps it):
            // onboarding done, the key approved (by its last 20 characters), the project
            // trusted. A new user's screens come first otherwise.
            let project = URL(fileURLWithPath: f.project).resolvingSymlinksInPath().path
            let version = try RealAgents.version("claude")
            let config: [String: Any] = [
                "hasCompletedOnboarding": true, "lastOnboardingVersion": version, "lastReleaseNotesSeen": version,
                "theme": "dark", "numStartups": 3,
                "customApiKeyResponses": ["approved": [String(key.suffix(20))], "rejected": [String]()],
                "projects": [project: ["hasTrustDialogAccepted": true, "allowedTools": [String]()]],
            ]
            try f.f.write(f.f.home + "/.claude/.claude.json",
                          String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self), mode: 0o600)
            let log = f.root + "/events.jsonl"
            // Manual permission mode: 2.1.327's default (auto) asks the model to judge each
            // tool call, which the scripted model cannot; manual asks the user: the test.
            let args = hosts.flatMap { ["--allow-private", $0] } + ["--log", log, "--", "claude", "--permission-mode", "default"]
            let script = ModelScript(steps: ["echo written-by-tui > tui-output.txt; echo write-rc=$?"],
                                     final: "The TUI session is done.")
            try f.f.write(f.root + "/prompt.txt", script.prompt)
            let models = try ModelLog.mark()
            let files = Leftovers(f.f)

            let run = try ClaudeTUIRun(f.f, name: "tui", args: args, env: f.f.environment(extra: extra, path: path))
            let t = run.term
            // (1) It draws: the prompt box across the window, empty.
            let first = try t.wait("the prompt box 100 wide") { ClaudeScreen.promptBox($0, width: 100) }
            #expect(!first.contains("Choose the text style") && !first.contains("Do you want to use this API key?"), "\(first)")

            // (2) Input reaches it: the script as a terminal paste, Enter, the tool call allowed by key.
            try t.drive("the pasted prompt", { try t.paste(file: f.root + "/prompt.txt") }) { $0.contains("[Pasted text #1") }
            let ask = try t.drive("the permission prompt", ready: { ClaudeScreen.inputLine($0)?.line.contains("[Pasted text #1") == true },
                                  { try t.keys("Enter") }) { $0.contains("Do you want to proceed?") }
            #expect(ask.contains("echo written-by-tui > tui-output.txt"), "\(ask)")
            let answered = try t.drive("the final answer", ready: { $0.contains("Do you want to proceed?") },
                                       { try t.keys("1") }) { ClaudeScreen.says($0, script.final) }
            #expect(ClaudeScreen.lines(answered).contains { $0.contains("⎿") && $0.contains("write-rc=0") }, "\(answered)")
            #expect(f.f.read(f.project + "/tui-output.txt") == "written-by-tui\n")
            #expect(script.results(models).contains { $0.contains("write-rc=0") }, "\(script.requests(models))")
            let reqs = script.requests(models)
            #expect(!reqs.isEmpty && reqs.allSatisfy { $0.sni == "api.anthropic.com" && $0.path.hasPrefix("/v1/messages") },
                    "\(reqs)")

            // (3) Resized: the box is drawn again for the new width.
            try t.resize(width: 72, height: 30)
            try t.wait("the prompt box 72 wide") { ClaudeScreen.promptBox($0, width: 72) }

            // (4) One Ctrl-C clears the input and ends nothing, past the double-press window.
            try t.drive("the draft in the prompt box", { try t.type("draft-to-be-cleared") }) {
                ClaudeScreen.inputLine($0)?.line.contains("draft-to-be-cleared") == true
            }
            let agent = run.agent
            #expect(agent != nil, "no agent among \(run.tree.processes)")
            try t.keys("C-c")
            let hint = try t.wait("the Ctrl-C hint and an empty prompt") {
                $0.contains("Press Ctrl-C again to exit") && ClaudeScreen.inputLine($0)?.line.trimmingCharacters(in: .whitespaces) == "❯"
            }
            try t.wait("the hint gone") { !$0.contains("Press Ctrl-C again to exit") && ClaudeScreen.inputLine($0) != nil }
            #expect(run.status == nil && agent?.isAlive == true, "after one Ctrl-C: \(run.tree.processes)\n\(hint)")

            // (5) Two Ctrl-C: it ends, agentpen with status 0, nothing of the run left.
            try t.drive("agentpen's end", ready: { !$0.contains("Press Ctrl-C again to exit") },
                        { try? t.keys("C-c", "C-c") }) { _ in run.status != nil }
            #expect(try run.finish() == 0)
            #expect(run.leftovers().isEmpty, "left running: \(run.leftovers())")
            #expect(files.fresh().isEmpty, "left behind: \(files.fresh())")
            let blocked = readEvents(log).filter {
                ($0["kind"] as? String) == "connection-blocked" && ($0["subject"] as? String) == "api.anthropic.com"
            }
            #expect(blocked.isEmpty, "\(blocked)")
        }
    }
}
