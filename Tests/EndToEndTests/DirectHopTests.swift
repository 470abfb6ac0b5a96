import Foundation
import Testing

/// Issue 11 (net): per-name addresses, the direct hop (sockets made inside the
/// namespace, served by agentpen; no pasta) and `--allow HOST:PORT`, checked with
/// the real binary in the test world, on the direct hop and on `--hop pasta`
/// (pasta's tap, the forwarder inside telling the proxy what each connection is for). Every test reads the arrival log around its
/// action: what must be refused never reaches a server.
extension NetworkTests {
    @Suite struct DirectHop {
        static let direct = ["--hop", "direct"]
        static func hop(_ h: String) -> [String] { ["--hop", h] }

        private func events(_ log: String, _ kind: String) -> [[String: Any]] {
            readEvents(log).filter { $0["kind"] as? String == kind }
        }

        @Test(arguments: ["direct", "pasta"])
        func allowedNamesWorkAndEachHasItsOwnAddress(_ hop: String) throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let r = try f.sh(Self.hop(hop) + ["--log", log] + World.baseAllow + ["--allow-private", "v6only.test"], """
                getent hosts allowed.test v6only.test
                /usr/bin/python3 probe.py 'dns 127.0.0.1 a.wild.test' 'dns 127.0.0.1 b.wild.test' 'gai a.wild.test'
                curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
                curl -sS --max-time 10 --cacert ca.pem https://a.wild.test/hello
                curl -sS --max-time 10 --cacert ca.pem https://v6only.test/hello
                git -c http.sslCAInfo="$PWD/ca.pem" clone -q https://allowed.test/repo.git cloned && cat cloned/README
                ip -o link | wc -l; { ip route; ip -6 route; } | grep -vc ' dev lo\\b' ; echo routes-end
                """)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("127.0.1.1       allowed.test") && r.stdout.contains("127.0.1.2       v6only.test"),
                    "exact names do not have their own addresses: \(r.stdout)")
            let p = Probe.parse(r.stdout)
            let a = p["dns 127.0.0.1 a.wild.test"]?.detail ?? "", b = p["dns 127.0.0.1 b.wild.test"]?.detail ?? ""
            #expect(a.hasPrefix("rcode=0 addrs=127.0.16.") && b.hasPrefix("rcode=0 addrs=127.0.16.") && a != b,
                    "wildcard names do not get addresses of their own: \(a) \(b)")
            // The same name keeps its address (getaddrinfo asks again).
            #expect(p["gai a.wild.test"].map { "rcode=0 addrs=" + $0.detail } == a, "\(p)")
            for n in ["allowed.test", "a.wild.test", "v6only.test"] {
                #expect(r.stdout.contains("hello from \(n)"), "\(n): \(r.stdout) \(r.stderr)")
            }
            #expect(r.stdout.contains("hello from the test repo"), "git clone failed: \(r.stdout) \(r.stderr)")
            if hop == "direct" {
                // Loopback only: one link, and no route through anything but loopback.
                #expect(r.stdout.contains("\n1\n0\nroutes-end"), "the namespace is not loopback-only: \(r.stdout)")
            }
            let allowed = events(log, "connection-allowed").compactMap { $0["subject"] as? String }
            #expect(Set(allowed).isSuperset(of: ["allowed.test", "a.wild.test", "v6only.test"]), "\(allowed)")
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: ["198.18.0.10:443", "fd0c::10:443"]).isEmpty, "\(arrived)")
        }

        @Test(arguments: ["direct", "pasta"])
        func anSNIOtherThanTheAddresssNameIsRefusedAndReported(_ hop: String) throws {
            // 127.0.1.1 stands for allowed.test. An SNI of another allowed name (a
            // wildcard's) on it is refused: the address decides, then the SNI must agree.
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let (r, p) = try f.probe(Self.hop(hop) + ["--log", log] + World.baseAllow,
                                     ["tls 127.0.1.1 a.wild.test noverify", "tls 127.0.1.1 other.test noverify",
                                      "tls 127.0.1.1 allowed.test", "tls 127.0.0.1 allowed.test",
                                      "tls 127.0.16.200 a.wild.test noverify"])
            #expect(p["tls 127.0.1.1 allowed.test"]?.detail == "hello from allowed.test", "control: \(p) \(r.stderr)")
            // 127.0.0.1 stands for no name: routed by SNI, as before per-name addresses.
            #expect(p["tls 127.0.0.1 allowed.test"]?.detail == "hello from allowed.test", "\(p)")
            for k in ["tls 127.0.1.1 a.wild.test noverify", "tls 127.0.1.1 other.test noverify",
                      "tls 127.0.16.200 a.wild.test noverify"] {
                #expect(p[k]?.outcome == "refused", "\(k): \(String(describing: p[k]))")
            }
            let blocked = events(log, "connection-blocked")
            #expect(blocked.contains { $0["subject"] as? String == "a.wild.test"
                && ($0["reason"] as? String ?? "").contains("does not match allowed.test") }, "\(blocked)")
            #expect(blocked.contains { ($0["reason"] as? String ?? "").contains("does not match allowed.test")
                && $0["subject"] as? String == "other.test" }, "\(blocked)")
            #expect(r.stderr.contains("agentpen: blocked a.wild.test"), "not told on stderr: \(r.stderr)")
            let arrived = try mark.since()
            // Two upstream connections, the control and the 127.0.0.1 one, and at most
            // one more for each refused hello on 127.0.1.1: an allowed name's address
            // is dialled (its vetted address only) while the hello is on its way, and
            // the dial is abandoned, or its connection closed unsent, when the hello
            // is refused (whichever comes first; EarlyDialTests counts the bytes: none).
            // 127.0.16.200 stands for no name: nothing is dialled for it.
            #expect(Arrivals.unexpected(arrived, allowing: ["198.18.0.10:443"]).isEmpty, "\(arrived)")
            #expect((2...4).contains(arrived.filter { $0.ev == "arrive" && $0["dport"] == "443" }.count), "\(arrived)")
        }

        @Test(arguments: ["direct", "pasta"])
        func plainHTTPToAnAllowedHostAndPort(_ hop: String) throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let r = try f.sh(Self.hop(hop) + ["--log", log, "--allow-private", "allowed.test:80"], """
                curl -sS --max-time 10 http://allowed.test/hello; echo " http=$?"
                curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello; echo " tls=$?"
                curl -sS --max-time 10 http://allowed.test:8080/; echo " other-port=$?"
                /usr/bin/python3 probe.py 'tcp 127.0.0.1 80' 'tcp 127.0.1.7 80'
                """)
            #expect(r.stdout.contains("hello from allowed.test\n http=0"), "plain HTTP failed: \(r.stdout) \(r.stderr)")
            // A name allowed with a port only has no TLS on 443, and no other port.
            #expect(!r.stdout.contains(" tls=0") && !r.stdout.contains(" other-port=0"), "\(r.stdout)")
            let p = Probe.parse(r.stdout)
            // Port 80 on an address that stands for no name: accepted, refused, closed at once.
            for k in ["tcp 127.0.0.1 80", "tcp 127.0.1.7 80"] {
                #expect(p[k]?.outcome == "refused" || p[k]?.detail == "b''" || p[k]?.detail.hasPrefix("b'ECONNRESET") == true,
                        "\(k): \(String(describing: p[k]))")
            }
            let allowed = events(log, "connection-allowed")
            #expect(allowed.contains { $0["subject"] as? String == "allowed.test"
                && ($0["details"] as? [String: String])?["upstream"] == "198.18.0.10:80" }, "\(allowed)")
            let blocked = events(log, "connection-blocked")
            #expect(blocked.contains { $0["subject"] as? String == "allowed.test"
                && ($0["reason"] as? String ?? "").contains("port 443") }, "\(blocked)")
            #expect(blocked.contains { ($0["subject"] as? String ?? "").hasPrefix("127.0.1.7:80") }, "\(blocked)")
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: ["198.18.0.10:80"]).isEmpty, "\(arrived)")
            #expect(arrived.filter { $0.ev == "arrive" && $0["dport"] == "80" }.count == 1, "\(arrived)")
        }

        @Test(arguments: ["direct", "pasta"])
        func aPrivateTCPServiceNeedsAllowPrivate(_ hop: String) throws {
            // A database-style service: plain TCP to a private address. The world's
            // 8080 bait answers every connection; it is reached only with --allow-private.
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let (r, p) = try f.probe(Self.hop(hop) + ["--log", log, "--allow-private", "allowed.test:8080",
                                                    "--allow", "other.test:8080"],
                                     ["tcp allowed.test 8080", "tcp other.test 8080"])
            #expect(p["tcp allowed.test 8080"]?.detail.contains("HTTP/1.0 200") == true, "\(p) \(r.stderr)")
            #expect(p["tcp other.test 8080"]?.detail.contains("HTTP/1.0") != true, "\(p)")
            let blocked = events(log, "connection-blocked")
            #expect(blocked.contains { $0["subject"] as? String == "other.test"
                && ($0["reason"] as? String ?? "").contains("private address") }, "\(blocked)")
            let arrived = try mark.since()
            let upstream = arrived.filter { $0.ev == "arrive" && $0["dport"] == "8080" }
            #expect(upstream.count == 1 && upstream.allSatisfy { $0["src"] == World.host4 }, "\(upstream)")
        }

        @Test func refusedTCPAndIPLiteralsGoNowhere() throws {
            let f = try NetFixture()
            let mark = try Arrivals.mark()
            let probes = ["tcp 198.18.0.10 443", "tcp 198.18.0.1 8080", "tcp fd0c::10 443", "udp 198.18.0.1 53",
                          "tcp 127.0.1.1 22", "dns 198.18.0.1 allowed.test"]
            let (r, p) = try f.probe(Self.direct + World.baseAllow, probes)
            #expect(p.count == probes.count, "\(r.stdout) \(r.stderr)")
            for k in probes { #expect(p[k]?.outcome != "connected" && p[k]?.outcome != "sent", "\(k): \(String(describing: p[k]))") }
            try #expect(Arrivals.unexpected(mark.since()).isEmpty)
        }

        @Test func aNamePortIsRefusedOnTheSpliceHop() throws {
            let f = try NetFixture()
            let r = try f.sh(["--allow-private", "allowed.test:80"], "echo RAN", env: ["AGENTPEN_HOP": "splice"])
            #expect(r.status == 2 && !r.stdout.contains("RAN"), "\(r.status) \(r.stderr)")
            #expect(r.stderr.contains("allowed.test:80") && r.stderr.contains("--hop direct"), "\(r.stderr)")
            for flag in [["--allow-host-port", "11434"], ["--publish", "8000"]] {
                let q = try f.sh(["--hop", "pasta"] + flag + World.baseAllow, "echo RAN")
                #expect(q.status == 2 && !q.stdout.contains("RAN") && q.stderr.contains("--hop direct"), "\(flag): \(q.stderr)")
            }
        }

        /// On the pasta hop the sandbox can reach the proxy's port through the
        /// gateway, as the forwarder does; without the run's token its header (or
        /// none) is refused and reported, and nothing is dialled.
        @Test func aForgedForwarderHeaderIsRefused() throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            var r: Agentpen.Result
            var attempts = 0
            repeat {
                attempts += 1
                let port = freePort()
                r = try f.sh(["--hop", "pasta", "--log", log] + World.baseAllow, """
                    gw=$(ip -4 route | awk '$1 != "default" {print $1; exit}')
                    /usr/bin/python3 -c '
                    import socket, sys
                    for payload in (b"AGENTPEN/1 00000000000000000000000000000000 127.0.1.1 443 allowed.test\\n",
                                    b"AGENTPEN/1 guess 127.0.1.1 80 allowed.test\\nGET / HTTP/1.0\\r\\n\\r\\n"):
                        s = socket.create_connection((sys.argv[1], \(port)), timeout=5)
                        s.sendall(payload)
                        try: print("got", s.recv(64))
                        except OSError as e: print("error", e)
                    ' "$gw"
                    """, env: ["AGENTPEN_PROXY_PORT": String(port)])
            } while proxyPortTaken(r.status, r.stderr) && attempts < 5
            #expect(r.stdout.contains("got b''") || r.stdout.contains("error"), "\(r.stdout) \(r.stderr)")
            #expect(!r.stdout.contains("HTTP/"), "\(r.stdout)")
            let blocked = readEvents(log).filter { $0["kind"] as? String == "connection-blocked"
                && $0["subject"] as? String == "(forwarder header)" }
            #expect(blocked.count == 2, "\(readEvents(log))")
            try #expect(Arrivals.unexpected(mark.since()).isEmpty)
        }
    }
}
