import Foundation
import Testing

/// The real agents (tests/agents/install.sh) complete scripted sessions inside
/// agentpen, in the test world, against the scripted model servers
/// (tests/world/models.py) that answer under the real API names. Each step is a
/// shell command the model asks the agent to run; the test checks what the sandbox
/// did with it from outside (files, the event log, the arrival log) and from the
/// tool result the agent sent back to the model.
// Inside NetworkTests: the world is shared (the arrival log, the servers), so the
// real agents run one test at a time with every other suite that uses it.
extension NetworkTests {
    @Suite(.enabled(if: RealAgents.runnable, RealAgents.skipReason))
    struct RealAgentNetworkTests {}
}

/// The steps every agent runs, and what each must have come back as.
enum SessionSteps {
    static let steps = [
        "cat ~/.ssh/id_ed25519 ~/.aws/credentials; echo secret-rc=$?",
        "curl -sS --max-time 10 https://other.test/hello; echo denied-rc=$?",
        "curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello; echo allowed-rc=$?",
        "echo written-by-agent > agent-output.txt; echo write-rc=$?",
        "echo evil > .git/hooks/pre-commit; echo hook-rc=$?",
    ]

    /// Checks each tool result (in step order) and the project afterwards.
    static func check(_ results: [String], _ f: NetFixture, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(results.count == steps.count, "tool results sent back: \(results)", sourceLocation: sourceLocation)
        guard results.count == steps.count else { return }
        // Nothing of the real files: agentpen's empty decoys read (rc 0), or nothing there (rc 1).
        #expect(!results[0].contains("SECRET-") && (results[0].contains("secret-rc=0") || results[0].contains("secret-rc=1")),
                "secrets: \(results[0])", sourceLocation: sourceLocation)
        #expect(results[1].contains("denied-rc=6") && !results[1].contains("hello from"), "denied host: \(results[1])",
                sourceLocation: sourceLocation)
        #expect(results[2].contains("hello from allowed.test") && results[2].contains("allowed-rc=0"),
                "allowed host: \(results[2])", sourceLocation: sourceLocation)
        #expect(results[3].contains("write-rc=0"), "project write: \(results[3])", sourceLocation: sourceLocation)
        #expect(f.f.read(f.project + "/agent-output.txt") == "written-by-agent\n", sourceLocation: sourceLocation)
        #expect(results[4].contains("hook-rc=") && !results[4].contains("hook-rc=0"), "hook: \(results[4])",
                sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/hooks/pre-commit"), sourceLocation: sourceLocation)
    }

    /// The denied host was refused and reported, and nothing else was but the hosts
    /// the preset file names as not allowed (`presetDenied`).
    static func checkEvents(_ log: String, _ r: Agentpen.Result, presetDenied: Set<String> = [],
                            sourceLocation: SourceLocation = #_sourceLocation) {
        let ev = readEvents(log)
        let blocked = Set(ev.filter { ["dns-refused", "connection-blocked"].contains($0["kind"] as? String ?? "") }
            .compactMap { $0["subject"] as? String })
        #expect(blocked.contains("other.test") && blocked.subtracting(presetDenied) == ["other.test"],
                "blocked: \(blocked)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains("agentpen: blocked other.test"), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    /// What reached the world: the proxy's connections to the model server and to allowed.test.
    static let upstream: Set<String> = ["198.18.0.20:443", "198.18.0.10:443"]
}

extension NetworkTests.RealAgentNetworkTests {
    @Suite struct Claude {
        @Test func scriptedPrintSessionAsTheUserHasIt() throws {
            let f = try NetFixture()
            let path = try RealAgents.installClaude(home: f.f.home)
            // The world's CA as a corporate CA bundle in the home: passed through by default.
            let ca = f.f.home + "/corp-ca/world.pem"
            try f.f.write(ca, try String(contentsOfFile: World.ca, encoding: .utf8))
            let env = ["ANTHROPIC_API_KEY": "sk-ant-apw-test", "NODE_EXTRA_CA_CERTS": ca]
            let hosts = try RealAgents.allowedHosts(f.f, ["claude"], env: env, path: path)
            #expect(hosts.contains("api.anthropic.com"), "\(hosts)")
            let allow = (hosts + ["allowed.test"]).flatMap { ["--allow-private", $0] }
            let script = ModelScript(steps: SessionSteps.steps, final: "All five steps ran.")
            let log = f.root + "/events.jsonl"
            let models = try ModelLog.mark()
            let mark = try Arrivals.mark()
            let r = try f.f.agentpen(allow + ["--log", log, "--",
                                              "claude", "-p", script.prompt, "--dangerously-skip-permissions"],
                                     env: env, path: path, timeout: 240)
            #expect(r.status == 0, "claude: \(r.status) \(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("All five steps ran."), "final answer: \(r.stdout)")
            let reqs = script.requests(models)
            #expect(reqs.allSatisfy { $0.sni == "api.anthropic.com" && $0.path.hasPrefix("/v1/messages") }, "\(reqs)")
            SessionSteps.check(script.results(models), f)
            SessionSteps.checkEvents(log, r)
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: SessionSteps.upstream).isEmpty, "\(Arrivals.unexpected(arrived, allowing: SessionSteps.upstream))")
            // Every request Claude made went to the hosts the preset allows.
            let other = models.since().filter { !hosts.contains($0.sni) }
            #expect(other.isEmpty, "requests to hosts outside the preset: \(other)")
            // Its config and login stay in the home for the next run.
            #expect(FileManager.default.fileExists(atPath: f.f.home + "/.claude/.claude.json"),
                    "\((try? FileManager.default.contentsOfDirectory(atPath: f.f.home + "/.claude")) ?? [])")
        }
    }
}

extension NetworkTests.RealAgentNetworkTests {
    @Suite struct Codex {
        /// `codex exec` with Codex's default sandbox mode: every step must run (Codex's
        /// own bubblewrap cannot start inside agentpen; the preset turns it off).
        @Test(arguments: ["standalone", "venv"])
        func scriptedExecSession(_ layout: String) throws {
            let f = try NetFixture()
            var command = "codex", path: String
            if layout == "standalone" {
                path = try RealAgents.installCodexStandalone(home: f.f.home)
            } else {
                (command, path) = try RealAgents.codexVenv()
            }
            let env = ["OPENAI_API_KEY": "sk-apw-test", "SSL_CERT_FILE": f.project + "/ca.pem"]
            let hosts = try RealAgents.allowedHosts(f.f, [command], env: env, path: path)
            #expect(hosts.contains("api.openai.com"), "\(hosts)")
            let allow = (hosts + ["allowed.test"]).flatMap { ["--allow-private", $0] }
            let script = ModelScript(steps: SessionSteps.steps, final: "Codex ran all five steps.")
            let log = f.root + "/events.jsonl"
            let models = try ModelLog.mark()
            let mark = try Arrivals.mark()
            let r = try f.f.agentpen(allow + ["--log", log, "--", command, "exec", script.prompt],
                                     env: env, path: path, timeout: 240)
            #expect(r.status == 0, "codex: \(r.status) \(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("Codex ran all five steps."), "final answer: \(r.stdout)")
            #expect(!r.stderr.contains("No permissions to create new namespace"), "\(r.stderr)")
            let reqs = script.requests(models)
            #expect(reqs.allSatisfy { $0.sni == "api.openai.com" }, "\(reqs)")
            SessionSteps.check(script.results(models), f)
            SessionSteps.checkEvents(log, r, presetDenied: ["api.github.com", "ab.chatgpt.com"])
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: SessionSteps.upstream).isEmpty,
                    "\(Arrivals.unexpected(arrived, allowing: SessionSteps.upstream))")
            let other = models.since().filter { !hosts.contains($0.sni) }
            #expect(other.isEmpty, "requests to hosts outside the preset: \(other)")
            // Its sessions and config stay in ~/.codex for the next run.
            #expect(FileManager.default.fileExists(atPath: f.f.home + "/.codex/sessions"),
                    "\((try? FileManager.default.contentsOfDirectory(atPath: f.f.home + "/.codex")) ?? [])")
        }
    }
}

extension NetworkTests.RealAgentNetworkTests {
    @Suite struct Aider {
        /// aider from a pipx venv: the steps run through its /run command (--load), their
        /// output goes to the model with the message, and the answer comes back.
        @Test func scriptedMessageSession() throws {
            let f = try NetFixture()
            let path = try RealAgents.installAider(home: f.f.home)
            // aider writes a placeholder identity into .git/config when there is none, and
            // .git/config is read-only inside; users have one (here: the repository's).
            try f.f.git(["config", "user.name", "Test User"])
            try f.f.git(["config", "user.email", "test@apw.test"])
            try f.f.write(f.project + "/.apw-steps", SessionSteps.steps.map { "/run " + $0 }.joined(separator: "\n") + "\n")
            let env = ["OPENAI_API_KEY": "sk-apw-test", "SSL_CERT_FILE": f.project + "/ca.pem",
                       "REQUESTS_CA_BUNDLE": f.project + "/ca.pem"]
            let hosts = try RealAgents.allowedHosts(f.f, ["aider"], env: env, path: path)
            #expect(hosts.contains("api.openai.com"), "\(hosts)")
            let allow = (hosts + ["allowed.test"]).flatMap { ["--allow-private", $0] }
            let script = ModelScript(steps: [], final: "Aider saw all five outputs.")
            let log = f.root + "/events.jsonl"
            let models = try ModelLog.mark()
            let mark = try Arrivals.mark()
            let r = try f.f.agentpen(allow + ["--log", log, "--",
                                              "aider", "--load", ".apw-steps", "--message", script.prompt, "--yes-always"],
                                     env: env, path: path, timeout: 300)
            #expect(r.status == 0, "aider: \(r.status) \(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("Aider saw all five outputs."), "final answer: \(r.stdout)")
            let reqs = script.requests(models)
            #expect(reqs.allSatisfy { $0.sni == "api.openai.com" && $0.path == "/v1/chat/completions" }, "\(reqs)")
            SessionSteps.check(script.results(models), f)
            SessionSteps.checkEvents(log, r, presetDenied: ["pypi.org", "raw.githubusercontent.com", "us.i.posthog.com", "api.mixpanel.com"])
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: SessionSteps.upstream).isEmpty,
                    "\(Arrivals.unexpected(arrived, allowing: SessionSteps.upstream))")
            let other = models.since().filter { !hosts.contains($0.sni) }
            #expect(other.isEmpty, "requests to hosts outside the preset: \(other)")
            // Its state stays in ~/.aider for the next run.
            #expect(FileManager.default.fileExists(atPath: f.f.home + "/.aider/installs.json"),
                    "\((try? FileManager.default.contentsOfDirectory(atPath: f.f.home + "/.aider")) ?? [])")
        }
    }
}
