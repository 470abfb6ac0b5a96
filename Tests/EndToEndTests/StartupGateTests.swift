import Foundation
import Testing

// MARK: - Start-up: bubblewrap builds the sandbox while the firewall loads (issue 11)

/// The direct hop starts bubblewrap before the firewall is loaded, so that the
/// two overlap; the exec helper inside holds the agent at a gate that only the
/// namespace helper's byte opens. Without that byte the agent never starts.
@Suite struct StartupGateTests {
    /// A gate that reads end of file (the namespace helper failed or died before
    /// the firewall was in force): the command is never started, status 125, and
    /// the helper stops there (before its syscall filter). One byte lets it go on
    /// (here to the syscall filter, which fails on /dev/null: the gate was passed).
    @Test func aGateThatNeverOpensNeverStartsTheAgent() throws {
        let f = try Fixture()
        let marker = f.root + "/ran"
        // no_new_privs, as bubblewrap sets it before the helper runs (Landlock needs it).
        func exec(_ gate: String) throws -> Agentpen.Result {
            try runProgram("/bin/sh", ["-c", "exec /usr/bin/setpriv --no-new-privs \"$0\" __exec --gate 3 --syscall-notify 4 --rw /tmp -- /bin/sh -c 'touch \"$1\"' sh \"$1\" 4</dev/null \(gate)",
                                       Agentpen.binary, marker], env: f.environment(), cwd: f.project)
        }
        // fd 3: end of file at once, or not open at all.
        for gate in ["3</dev/null", "3<&-"] {
            let r = try exec(gate)
            #expect(r.status == 125, "\(gate): \(r.status) \(r.stderr)")
            #expect(!r.stderr.contains("syscall filter"), "\(gate): went past the gate: \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: marker), "\(gate): the command ran without its gate")
        }
        let opened = try exec("3<<'EOF'\nx\nEOF\n")
        #expect(opened.stderr.contains("syscall filter"), "one byte did not open the gate: \(opened.status) \(opened.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker), "the command ran without its syscall filter")
    }
}

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
