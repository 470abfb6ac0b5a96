import Foundation
import Testing

// MARK: - Start-up: bubblewrap builds the sandbox while the firewall loads (issue 11)

// The exec helper's gate itself (end of file or no gate: 125, never the command; the
// helper's own work done before it): AgentpenKernelTests.NotifyingProgramTests
// (the helper run directly needs the sealed program agentpen sends first).

extension NetworkTests {
    @Suite struct StartupGate {
        /// The firewall is in force at the agent's first action. An nft that holds
        /// its load until the agent has run (bounded: 3 s) records which came first;
        /// the agent's first act marks that it ran, then connects to an IP literal,
        /// which only a loaded firewall redirects to the catch-all (and reports).
        @Test(arguments: ["direct", "splice", "gateway"])
        func theAgentStartsOnlyOnceTheFirewallIsLoaded(_ hop: String) throws {
            let f = try NetFixture()
            let ran = f.project + "/ran", order = f.root + "/order", log = f.root + "/events.jsonl"
            let env = try Faults.fakeBin(f, "nft", """
                if [ "$1" = -f ]; then
                    i=0
                    while [ $i -lt 300 ] && [ ! -e '\(ran)' ]; do sleep 0.01; i=$((i + 1)); done
                    if [ -e '\(ran)' ]; then echo agent-first >> '\(order)'; else echo firewall-first >> '\(order)'; fi
                fi
                exec /usr/sbin/nft "$@"
                """).merging(["AGENTPEN_HOP": hop]) { $1 }
            let r = try f.f.agentpen(["--log", log] + World.baseAllow + ["--", "/bin/bash", "-c",
                                      "touch ran; (exec 3<>/dev/tcp/198.18.0.10/9) 2>/dev/null; echo DONE"], env: env)
            #expect(r.status == 0, "\(r.status) \(r.stderr)")
            #expect(r.stdout.contains("DONE"), "\(r.stdout) \(r.stderr)")
            let first = (try? String(contentsOfFile: order, encoding: .utf8)) ?? ""
            #expect(first == "firewall-first\n", "the agent ran before the firewall was loaded: \(first)")
            let refused = readEvents(log).contains { e in
                let d = e["details"] as? [String: String]
                return e["kind"] as? String == "connection-blocked" && d?["address"] == "198.18.0.10" && d?["port"] == "9"
            }
            #expect(refused, "the first connection was not refused by the firewall: \(readEvents(log))")
        }
    }
}
