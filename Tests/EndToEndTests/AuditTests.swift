import Foundation
import Testing

/// Issue 13 (ask): `--audit` in the test world. The name allowlist is not
/// enforced, every unlisted name is recorded as would-block, loopback and private
/// upstreams stay refused (every server of the world is in 198.18.0.0/15, so here
/// each audited name ends refused as private, and `agentpen suggest` names the
/// --allow-private it needs), everything else stays confined. The round trip: the
/// suggestion fed back as flags runs with no refusals.
extension NetworkTests {
@Suite struct AuditTests {
    typealias S = SessionNetworkTests

    @Test func auditRecordsWouldBlockAndItsSuggestionRunsWithoutRefusals() throws {
        let f = try NetFixture()
        let state = f.root + "/state"
        let env = ["XDG_STATE_HOME": state]
        let script = """
            curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello; echo " allowed=$?"
            curl -sS --max-time 10 --cacert ca.pem https://a.wild.test/hello; echo " wild=$?"
            """
        let audit = try f.sh(["--audit"], script + """

            curl -sS --max-time 5 https://loopback-name.test/; echo " loopback=$?"
            curl -sS --max-time 5 https://metadata.test/; echo " metadata=$?"
            curl -sS --max-time 5 --cacert ca.pem https://allowed.test:8443/; echo " port=$?"
            getent hosts db.localhost; echo " localhost=$?"
            curl -sS --max-time 5 --cacert ca.pem --resolve allowed.test:443:198.18.0.10 https://allowed.test/; echo " literal=$?"
            """, env: env)
        #expect(audit.status == 0, "\(audit.stdout) \(audit.stderr)")
        // Private and loopback upstreams stay refused; ports, IP literals and localhost names too.
        for k in ["allowed", "wild", "loopback", "metadata", "port", "localhost", "literal"] {
            #expect(!audit.stdout.contains(" \(k)=0"), "\(k) got through: \(audit.stdout)")
        }
        let id = try #require(S.sessionIDs(state).last)
        let ev = S.events(state, id)
        #expect(S.details(ev.first ?? [:])["unlisted"] == "pass", "\(ev.first ?? [:])")
        for name in ["allowed.test", "a.wild.test"] {
            #expect(ev.contains { S.kind($0) == "would-block" && S.subject($0) == name
                    && S.details($0)["permit"] == "--allow \(name)" }, "no would-block for \(name): \(ev)")
            #expect(ev.contains { S.kind($0) == "dns-answered" && S.subject($0) == name && S.details($0)["unlisted"] == "true" }, "\(ev)")
            #expect(ev.contains { S.kind($0) == "connection-blocked" && S.subject($0) == name
                    && ($0["reason"] as? String ?? "").contains("every address refused")
                    && S.details($0)["permit"] == "--allow-private \(name)" }, "\(ev)")
        }
        #expect(ev.contains { S.kind($0) == "connection-blocked" && S.subject($0) == "loopback-name.test"
                && ($0["reason"] as? String ?? "").contains("loopback") }, "\(ev)")
        #expect(!ev.contains { S.kind($0) == "connection-allowed" }, "\(ev)")
        #expect(!ev.contains { S.kind($0) == "would-block" && S.subject($0).contains("localhost") }, "\(ev)")
        // The exit summary: counts with would-block, and the names on a line of their own.
        #expect(audit.stderr.contains("--audit: every other host goes through"), "\(audit.stderr)")
        #expect(audit.stderr.contains("would-block (--audit)"), "\(audit.stderr)")
        let wouldLine = audit.stderr.split(separator: "\n").first { $0.hasPrefix("agentpen: would block ") } ?? ""
        #expect(wouldLine.contains("allowed.test") && wouldLine.contains("a.wild.test"), "\(audit.stderr)")

        let s = try f.f.agentpen(["suggest", id], env: env)
        #expect(s.status == 0, "\(s.stderr)")
        let flags = try #require(s.stdout.split(separator: "\n").first { $0.hasPrefix("--allow") }).split(separator: " ").map(String.init)
        #expect(flags.contains("allowed.test") && flags.contains("a.wild.test"), "\(s.stdout)")
        #expect(s.stdout.contains("host allowed.test"), "no config line: \(s.stdout)")
        #expect(!flags.contains { $0.contains("localhost") || $0.contains("loopback-name") || $0.contains("metadata") }, "\(s.stdout)")

        // Fed back, without --audit: everything the agent needed works, nothing is refused.
        let back = try f.sh(flags, script, env: env)
        #expect(back.stdout.contains("hello from allowed.test") && back.stdout.contains(" allowed=0")
                && back.stdout.contains(" wild=0"), "\(flags): \(back.stdout) \(back.stderr)")
        let id2 = try #require(S.sessionIDs(state).last)
        #expect(id2 != id)
        let refusals = S.events(state, id2).filter { ["dns-refused", "connection-blocked", "would-block"].contains(S.kind($0)) }
        #expect(refusals.isEmpty, "\(refusals)")
        #expect(S.details(S.events(state, id2).first ?? [:])["unlisted"] == "refuse")
    }

    @Test func auditNeedsTheDirectHopAndExcludesAsk() throws {
        let f = try NetFixture()
        let r = try f.sh(["--audit"], "true", env: World.pastaHop)
        #expect(r.status == 2 && r.stderr.contains("--audit needs --hop direct"), "\(r.stderr)")
        let both = try f.sh(["--audit", "--ask"], "true")
        #expect(both.status == 2 && both.stderr.contains("cannot be combined"), "\(both.stderr)")
    }
}
}
