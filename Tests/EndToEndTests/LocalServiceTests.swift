import Foundation
import Testing

/// Issue 11 (net): `--allow-host-port PORT` (the sandbox's 127.0.0.1:PORT reaches
/// this machine's) and `--publish PORT` (this machine's 127.0.0.1:PORT reaches a
/// server inside). Neither exists without its flag, and each reaches only its port.
extension NetworkTests {
    @Suite struct LocalServices {
        @Test func allowHostPortReachesThatPortOnly() throws {
            let f = try NetFixture()
            for d in ["/a", "/b"] { try FileManager.default.createDirectory(atPath: f.root + d, withIntermediateDirectories: true) }
            let allowedService = try HostListener(dir: f.root + "/a", unix: false)
            defer { allowedService.stop() }
            let otherService = try HostListener(dir: f.root + "/b", unix: false)
            defer { otherService.stop() }
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let a = allowedService.port, b = otherService.port
            let probes = ["tcp 127.0.0.1 \(a)", "tcp 127.0.0.1 \(b)", "tcp ::1 \(a)", "tcp 127.0.1.1 \(a)"]
            let (r, p) = try f.probe(["--hop", "direct", "--log", log, "--allow-host-port", String(a)] + World.baseAllow, probes)
            #expect(p["tcp 127.0.0.1 \(a)"]?.detail.contains("HOST-SERVICE") == true, "\(p) \(r.stderr)")
            for k in probes.dropFirst() {
                #expect(p[k]?.detail.contains("HOST-SERVICE") != true, "\(k) reached a host service: \(String(describing: p[k]))")
            }
            #expect(otherService.accepted.isEmpty, "another host port was reached: \(otherService.accepted)")
            #expect(allowedService.accepted.count == 1, "\(allowedService.accepted)")
            let ev = readEvents(log).filter { $0["kind"] as? String == "connection-allowed" }
            #expect(ev.contains { ($0["reason"] as? String ?? "").contains("--allow-host-port \(a)") }, "\(ev)")
            try #expect(Arrivals.unexpected(mark.since()).isEmpty)
        }

        @Test func withoutTheFlagNoHostPortIsReachable() throws {
            let f = try NetFixture()
            let service = try HostListener(dir: f.root, unix: false)
            defer { service.stop() }
            let (r, p) = try f.probe(["--hop", "direct"] + World.baseAllow,
                                     ["tcp 127.0.0.1 \(service.port)", "tcp ::1 \(service.port)"])
            #expect(p.count == 2, "\(r.stdout) \(r.stderr)")
            for (k, v) in p { #expect(v.outcome == "refused", "\(k): \(v)") }
            #expect(service.accepted.isEmpty, "\(service.accepted)")
        }

        /// A server inside on 127.0.0.1:PORT that answers every connection until
        /// the test writes `done` into the project (bounded).
        static func insideServer(_ port: UInt16) -> String {
            """
            /usr/bin/python3 -c '
            import os, select, socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port))); s.listen(8)
            open("ready", "w").close()
            for _ in range(4000):
                if os.path.exists("done"): break
                if select.select([s], [], [], 0.05)[0]:
                    c, _a = s.accept(); c.sendall(b"served from inside"); c.close()
            '
            """
        }

        func fromOutside(_ f: NetFixture, _ port: UInt16) throws -> ProbeResult? {
            let out = try runProgram("/usr/bin/python3", [f.project + "/probe.py", "tcp 127.0.0.1 \(port)"],
                                     env: f.f.environment(), cwd: f.project)
            return Probe.parse(out.stdout)["tcp 127.0.0.1 \(port)"]
        }

        @Test(arguments: [true, false])
        func publishLetsThisMachineReachAServerInside(_ published: Bool) throws {
            let f = try NetFixture()
            let log = f.root + "/events.jsonl"
            let port = freePort()
            let args = ["--hop", "direct", "--log", log] + (published ? ["--publish", String(port)] : [])
                + World.baseAllow + ["--", "/bin/sh", "-c", Self.insideServer(port)]
            let l = try Launched(f.f, args)
            defer { l.killLeftovers() }
            let ready = waitUntil(60) { FileManager.default.fileExists(atPath: f.project + "/ready") }
            #expect(ready, "the server inside did not start: \(l.stderr)")
            let got = try fromOutside(f, port)
            try f.f.write(f.project + "/done", "")
            let status = l.finish(within: 60)
            #expect(status == 0, "\(String(describing: status)) \(l.stderr)")
            if published {
                #expect(got?.detail.contains("served from inside") == true, "\(String(describing: got)) \(l.stderr)")
                let ev = readEvents(log).filter { $0["kind"] as? String == "connection-allowed" }
                #expect(ev.contains { $0["subject"] as? String == "published port \(port)" }, "\(ev)")
            } else {
                #expect(got?.outcome == "refused", "reached without --publish: \(String(describing: got))")
            }
        }
    }
}
