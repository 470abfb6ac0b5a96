import Foundation
import Testing

// MARK: - Every refused flow fails at once and is reported (issue 11)

/// A flow the sandbox may not make: the client must fail at once with its own
/// error (never a time-out), the refusal must be an event with protocol,
/// destination address and port (in --log, on stderr when it is not a terminal,
/// and in the exit summary), and nothing may arrive in the world.
private struct Refusal {
    var probe: String
    /// The client errors that count as "refused at once" for this flow.
    var errors: [String]
    var subject: String
    var protocolName: String
    var address: String
    var port: String?
}

/// The event in `events` for `r` (connection-blocked, with its details).
private func event(_ events: [[String: Any]], _ r: Refusal) -> [String: Any]? {
    events.first { e in
        guard e["kind"] as? String == "connection-blocked", e["subject"] as? String == r.subject,
              let d = e["details"] as? [String: String] else { return false }
        return d["protocol"] == r.protocolName && d["address"] == r.address && d["port"] == r.port
    }
}

private func expectRefusedAndReported(_ refusals: [Refusal], _ r: Agentpen.Result, _ p: [String: ProbeResult],
                                      log: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let events = readEvents(log)
    let summary = r.stderr.split(separator: "\n").last { $0.hasPrefix("agentpen: blocked ") }.map(String.init) ?? ""
    for x in refusals {
        let got = p[x.probe]
        #expect(got?.outcome == "refused" && x.errors.contains { got?.detail.hasPrefix($0 + ":") == true },
                "\(x.probe): expected \(x.errors) at once, got \(String(describing: got))", sourceLocation: sourceLocation)
        #expect(event(events, x) != nil, "\(x.probe): no event \(x.subject) in --log: \(events)",
                sourceLocation: sourceLocation)
        #expect(r.stderr.contains("agentpen: blocked \(x.subject): "), "\(x.probe): no live line: \(r.stderr)",
                sourceLocation: sourceLocation)
        #expect(summary.contains("connection-blocked \(x.subject)"), "\(x.probe): not in the summary: \(summary)",
                sourceLocation: sourceLocation)
    }
}

private func expectNothingArrived(_ mark: Arrivals, allowing: Set<String> = [], _ what: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
    let bad = Arrivals.unexpected(try mark.since(), allowing: allowing)
    #expect(bad.isEmpty, "\(what): arrived in the world: \(bad.map(\.line).joined(separator: "\n"))",
            sourceLocation: sourceLocation)
}

extension NetworkTests {
    @Suite struct RefusedFlows {
        /// TCP to an IP literal, to the gateway on another port, and over IPv6: the
        /// connection is reset at connect or at its first read.
        @Test(arguments: ["splice", "gateway"])
        func tcpIsRefusedAtOnceAndReported(_ hop: String) throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let reset = ["ECONNRESET", "ECONNREFUSED"]
            let refusals = [
                Refusal(probe: "tcp 198.18.0.10 8080", errors: reset, subject: "tcp 198.18.0.10:8080",
                        protocolName: "tcp", address: "198.18.0.10", port: "8080"),
                Refusal(probe: "tcp 198.18.0.10 443", errors: reset, subject: "tcp 198.18.0.10:443",
                        protocolName: "tcp", address: "198.18.0.10", port: "443"),
                Refusal(probe: "tcp 198.18.0.1 22", errors: reset, subject: "tcp 198.18.0.1:22",
                        protocolName: "tcp", address: "198.18.0.1", port: "22"),
                Refusal(probe: "tcp fd0c::10 8080", errors: reset, subject: "tcp [fd0c::10]:8080",
                        protocolName: "tcp", address: "fd0c::10", port: "8080"),
                Refusal(probe: "tcp fd0c::1 443", errors: reset, subject: "tcp [fd0c::1]:443",
                        protocolName: "tcp", address: "fd0c::1", port: "443"),
            ]
            let mark = try Arrivals.mark()
            let (r, p) = try f.probe(["--log", log] + World.baseAllow, refusals.map(\.probe) + ["tls 127.0.0.1 allowed.test"],
                                     env: ["AGENTPEN_HOP": hop])
            #expect(p["tls 127.0.0.1 allowed.test"]?.detail == "hello from allowed.test", "control: \(p) \(r.stderr)")
            expectRefusedAndReported(refusals, r, p, log: log)
            let upstream = Arrivals.unexpected(try mark.since(), allowing: ["198.18.0.10:443"])
            #expect(upstream.isEmpty, "arrived in the world: \(upstream.map(\.line).joined(separator: "\n"))")
        }

        /// An allowed name's address on another port. Until each name has its own
        /// address an allowed name shares 127.0.0.1 with the sandbox's own loopback,
        /// where the agent's own servers must keep working: the kernel refuses a port
        /// nothing listens on at once (ECONNREFUSED), and nothing leaves.
        @Test func tcpToAnAllowedNamesAddressOnAnotherPortFailsAtOnce() throws {
            let f = try NetFixture()
            let mark = try Arrivals.mark()
            let (r, p) = try f.probe(World.baseAllow, ["tcp allowed.test 8080", "tcp a.wild.test 22"])
            for k in ["tcp allowed.test 8080", "tcp a.wild.test 22"] {
                #expect(p[k]?.outcome == "refused" && (p[k]?.detail.hasPrefix("ECONNREFUSED:") == true
                                                       || p[k]?.detail.hasPrefix("ECONNRESET:") == true),
                        "\(k): \(String(describing: p[k])) \(r.stderr)")
            }
            try expectNothingArrived(mark, "an allowed name on another port")
        }
    }
}
