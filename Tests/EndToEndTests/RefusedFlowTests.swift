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
        // The dns probe says "noanswer" when its send fails; the error is what counts.
        #expect((got?.outcome == "refused" || got?.outcome == "noanswer") && x.errors.contains { got?.detail.hasPrefix($0 + ":") == true },
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
        @Test(arguments: ["direct", "splice", "gateway"])
        func tcpIsRefusedAtOnceAndReported(_ hop: String) throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let reset = ["ECONNRESET", "ECONNREFUSED"]
            let refusals = [
                Refusal(probe: "tcp 198.18.0.10 8080", errors: reset, subject: "tcp 198.18.0.10:8080",
                        protocolName: "tcp", address: "198.18.0.10", port: "8080"),
                Refusal(probe: "tcp 198.18.0.10 443", errors: reset, subject: "tcp 198.18.0.10:443",
                        protocolName: "tcp", address: "198.18.0.10", port: "443"),
                Refusal(probe: "tcp fd0c::10 8080", errors: reset, subject: "tcp [fd0c::10]:8080",
                        protocolName: "tcp", address: "fd0c::10", port: "8080"),
                Refusal(probe: "tcp fd0c::1 443", errors: reset, subject: "tcp [fd0c::1]:443",
                        protocolName: "tcp", address: "fd0c::1", port: "443"),
                // The gateway itself: on the pasta hops routed through the tap (its
                // source the tap's address), on the direct hop on loopback like the rest.
                Refusal(probe: "tcp 198.18.0.1 22", errors: reset, subject: "tcp 198.18.0.1:22",
                        protocolName: "tcp", address: "198.18.0.1", port: "22"),
                Refusal(probe: "tcp 198.18.0.1 8080", errors: reset, subject: "tcp 198.18.0.1:8080",
                        protocolName: "tcp", address: "198.18.0.1", port: "8080"),
            ]
            let mark = try Arrivals.mark()
            let (r, p) = try f.probe(["--log", log] + World.baseAllow, refusals.map(\.probe) + ["tls 127.0.0.1 allowed.test"],
                                     env: ["AGENTPEN_HOP": hop])
            #expect(p["tls 127.0.0.1 allowed.test"]?.detail == "hello from allowed.test", "control: \(p) \(r.stderr)")
            expectRefusedAndReported(refusals, r, p, log: log)
            let upstream = Arrivals.unexpected(try mark.since(), allowing: ["198.18.0.10:443"])
            #expect(upstream.isEmpty, "arrived in the world: \(upstream.map(\.line).joined(separator: "\n"))")
        }

        /// An allowed name's own address on a port nothing serves there (allowed.test
        /// is allowed for TLS on 443 only; a.wild.test gets a pooled address from the
        /// DNS responder): refused at once, and reported with the name the address
        /// stands for. Both hops that give each name its own address.
        @Test(arguments: ["direct", "gateway"])
        func tcpToAnAllowedNamesAddressOnAnotherPortIsRefusedAndReportedWithTheName(_ hop: String) throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let reset = ["ECONNRESET", "ECONNREFUSED"]
            let refusals = [
                Refusal(probe: "tcp allowed.test 80", errors: reset, subject: "tcp 127.0.1.1:80",
                        protocolName: "tcp", address: "127.0.1.1", port: "80"),
                Refusal(probe: "tcp a.wild.test 22", errors: reset, subject: "tcp 127.0.16.1:22",
                        protocolName: "tcp", address: "127.0.16.1", port: "22"),
            ]
            let mark = try Arrivals.mark()
            let (r, p) = try f.probe(["--log", log] + World.baseAllow,
                                     refusals.map(\.probe) + ["tls allowed.test allowed.test"], env: ["AGENTPEN_HOP": hop])
            #expect(p["tls allowed.test allowed.test"]?.detail == "hello from allowed.test", "control: \(p) \(r.stderr)")
            expectRefusedAndReported(refusals, r, p, log: log)
            let events = readEvents(log)
            for (x, name) in zip(refusals, ["allowed.test", "a.wild.test"]) {
                let d = event(events, x)?["details"] as? [String: String]
                #expect(d?["name"] == name, "\(x.probe): the event does not name \(name): \(String(describing: d))")
            }
            try expectNothingArrived(mark, allowing: ["198.18.0.10:443"], "an allowed name on another port")
        }

        /// UDP to a world host (v4 and v6, QUIC's port too) and DNS to an outside
        /// resolver: the send fails with EPERM, and the event names the queried name.
        @Test func udpAndOutsideDNSAreRefusedAtOnceAndReported() throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let refusals = [
                Refusal(probe: "udp 198.18.0.10 9999", errors: ["EPERM"], subject: "udp 198.18.0.10:9999",
                        protocolName: "udp", address: "198.18.0.10", port: "9999"),
                Refusal(probe: "udp 198.18.0.10 443", errors: ["EPERM"], subject: "udp 198.18.0.10:443",
                        protocolName: "udp", address: "198.18.0.10", port: "443"),
                Refusal(probe: "udp fd0c::10 9999", errors: ["EPERM"], subject: "udp [fd0c::10]:9999",
                        protocolName: "udp", address: "fd0c::10", port: "9999"),
                Refusal(probe: "dns 198.18.0.1 exfil.example.com", errors: ["EPERM"], subject: "udp 198.18.0.1:53",
                        protocolName: "udp", address: "198.18.0.1", port: "53"),
                Refusal(probe: "dns fd0c::1 other.test", errors: ["EPERM"], subject: "udp [fd0c::1]:53",
                        protocolName: "udp", address: "fd0c::1", port: "53"),
            ]
            let mark = try Arrivals.mark()
            let (r, p) = try f.probe(["--log", log] + World.baseAllow, refusals.map(\.probe))
            expectRefusedAndReported(refusals, r, p, log: log)
            let events = readEvents(log)
            let dns4 = event(events, refusals[3])?["details"] as? [String: String]
            let dns6 = event(events, refusals[4])?["details"] as? [String: String]
            #expect(dns4?["query"] == "exfil.example.com", "\(String(describing: dns4))")
            #expect(dns6?["query"] == "other.test", "\(String(describing: dns6))")
            try expectNothingArrived(mark, "UDP")
        }

        /// An ICMP echo request on a connected echo socket (as ping sends it) fails at
        /// once: ICMP at its send with EPERM; ICMPv6 (whose echo sockets never see the
        /// firewall's verdict) at its first read with EACCES, the firewall answering
        /// it as administratively prohibited. Each is reported with its address.
        @Test(arguments: ["direct", "splice", "gateway"])
        func icmpIsRefusedAtOnceAndReported(_ hop: String) throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let (r, p) = try f.probe(["--log", log] + World.baseAllow, ["ping 198.18.0.1", "ping fd0c::1"],
                                     env: ["AGENTPEN_HOP": hop])
            let events = readEvents(log)
            for (k, subject, proto, address, errors) in [("ping 198.18.0.1", "icmp 198.18.0.1", "icmp", "198.18.0.1", ["send EPERM:"]),
                                                         ("ping fd0c::1", "icmpv6 fd0c::1", "icmpv6", "fd0c::1",
                                                          ["send EPERM:", "recv EACCES:"])] {
                #expect(p[k]?.outcome == "refused" && errors.contains { p[k]?.detail.hasPrefix($0) == true },
                        "\(k) did not fail at once with \(errors): \(String(describing: p[k])) \(r.stderr)")
                #expect(events.contains { e in
                    let d = e["details"] as? [String: String]
                    return e["kind"] as? String == "connection-blocked" && e["subject"] as? String == subject
                        && d?["protocol"] == proto && d?["address"] == address && d?["icmp-type"] == "echo-request"
                }, "\(k): no event \(subject): \(events)")
                #expect(r.stderr.contains("agentpen: blocked \(subject): "), "\(k): \(r.stderr)")
            }
            let summary = r.stderr.split(separator: "\n").last.map(String.init) ?? ""
            #expect(summary.contains("connection-blocked icmp 198.18.0.1") && summary.contains("connection-blocked icmpv6 fd0c::1"),
                    "\(summary)")
            // Nothing else is reported: the firewall's answer to the sandbox is no refused flow.
            let other = events.filter { e in
                e["kind"] as? String == "connection-blocked" && (e["subject"] as? String).map {
                    $0.hasPrefix("icmp") && $0 != "icmp 198.18.0.1" && $0 != "icmpv6 fd0c::1" } == true
            }
            #expect(other.isEmpty, "reports for packets the sandbox did not send: \(other)")
            try expectNothingArrived(mark, "ICMP")
        }

        /// A flood of refused flows: the allowed path still works, the exit summary
        /// stays one bounded line, and the log holds a bounded number of events.
        @Test func aFloodOfRefusedFlowsIsBounded() throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            try f.f.write(f.project + "/flood.py", """
                import socket, sys
                n = 0
                for port in range(20000, 23000):
                    for fam, host in ((socket.AF_INET, "198.18.0.10"), (socket.AF_INET6, "fd0c::10")):
                        s = socket.socket(fam, socket.SOCK_DGRAM)
                        try:
                            s.sendto(b"x", (host, port))
                        except OSError:
                            n += 1
                        s.close()
                for i in range(300):
                    s = socket.socket()
                    s.settimeout(2)
                    try:
                        s.connect(("198.18.0.10", 30000 + i))
                        s.recv(1)
                    except OSError:
                        n += 1
                    s.close()
                print("refused=%d" % n)
                """)
            let mark = try Arrivals.mark()
            let r = try f.sh(["--log", log] + World.baseAllow, """
                /usr/bin/python3 flood.py
                curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
                """)
            #expect(r.stdout.contains("refused=6300"), "\(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("hello from allowed.test"), "the allowed path failed: \(r.stdout) \(r.stderr)")
            let blocked = readEvents(log).filter { $0["kind"] as? String == "connection-blocked" }
            #expect(blocked.count <= 1100, "\(blocked.count) events for 6300 refusals: not bounded")
            #expect(blocked.count >= 100, "too few refusals reported: \(blocked.count)")
            let summary = r.stderr.split(separator: "\n").last.map(String.init) ?? ""
            // Every refused packet counted once: the itemised ones, their repeats, and
            // the firewall's count of those over the log rate.
            #expect(summary.hasPrefix("agentpen: blocked 6300: ") && summary.count < 100_000, "summary: \(summary.prefix(300))")
            let live = r.stderr.split(separator: "\n").filter { $0.hasPrefix("agentpen: blocked ") }.count
            #expect(live <= 202, "\(live) live lines")
            try expectNothingArrived(mark, allowing: ["198.18.0.10:443"], "flood")
        }
    }
}
