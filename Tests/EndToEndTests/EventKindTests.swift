import Foundation
import Testing

/// Issue 13: each event kind is produced by a real run and read back from the
/// log. Most kinds have their own suites (SessionNetworkTests, RefusedFlowTests,
/// PersistenceAuditTests, SyscallEventTests, SecretDecoyTests, AuditTests,
/// AskTests); these are the kinds no other end-to-end test read from a log.
@Suite struct EventKindTests {
    static func kind(_ e: [String: Any]) -> String { (e["kind"] as? String) ?? "" }
    static func subject(_ e: [String: Any]) -> String { (e["subject"] as? String) ?? "" }

    /// persistence-found: a file the user's shell runs later (.envrc) is reported,
    /// not changed; setup: the bench's measurement switch announces itself.
    @Test func persistenceFoundAndSetupAreLogged() throws {
        let f = try Fixture()
        let log = f.root + "/events.jsonl"
        let r = try f.agentpen(["--log", log, "--", "/bin/sh", "-c", "echo 'echo planted' > .envrc"],
                               env: ["AGENTPEN_BENCH_DROP_ALLOWED_EVENTS": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let ev = readEvents(log)
        #expect(ev.contains { Self.kind($0) == "persistence-found" && Self.subject($0).hasSuffix("/.envrc") }, "\(ev)")
        #expect(ev.contains { Self.kind($0) == "setup" && Self.subject($0) == "AGENTPEN_BENCH_DROP_ALLOWED_EVENTS" }, "\(ev)")
        #expect(f.read(f.project + "/.envrc") == "echo planted\n", "a reported file is left as it is")
    }
}

extension NetworkTests {
    /// failure: an allowed NAME:PORT whose server refuses the connection.
    @Suite struct EventKindNetworkTests {
        @Test func aFailedDialIsLoggedAsAFailure() throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let r = try f.sh(["--log", log, "--allow-private", "allowed.test:8444"], """
                curl -sS --max-time 10 http://allowed.test:8444/; echo " status=$?"
                """)
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            #expect(!r.stdout.contains("status=0"), "\(r.stdout)")
            let ev = readEvents(log)
            #expect(ev.contains { EventKindTests.kind($0) == "failure" && EventKindTests.subject($0) == "allowed.test"
                    && (($0["reason"] as? String) ?? "").contains("could not connect") }, "\(ev)")
        }
    }
}
