import AgentpenEvents
import AgentpenPolicy
import Foundation
import Glibc
import Testing
@testable import AgentpenProxy

@Suite struct ForwarderTests {
    @Test func splicesToTheFixedTarget() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let fwd = Forwarder(target: .loopbackV4, port: upstream.port)
        let port = try fwd.start(bindAddress: "127.0.0.1", port: 0)
        defer { fwd.stop() }
        let c = try Net.connect(port)
        defer { close(c) }
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        Thread.detachNewThread {
            try? Net.sendAll(c, payload)
            Net.shutdownWrite(c)
        }
        let (data, end) = Net.read(c, timeout: 10)
        #expect(data == payload)
        #expect(end == .eof)
        #expect(eventually { fwd.connectionCount == 0 })
    }

    @Test func deadTargetClosesTheClientWithAnEvent() throws {
        let (fd, deadPort) = try Net.listen()
        close(fd)
        let events = EventCapture()
        let fwd = Forwarder(target: .loopbackV4, port: deadPort, events: events)
        let port = try fwd.start(bindAddress: "127.0.0.1", port: 0)
        defer { fwd.stop() }
        let c = try Net.connect(port)
        defer { close(c) }
        let (_, end) = Net.read(c, timeout: 5)
        #expect(end == .eof || end == .reset)
        #expect(events.wait { $0.kind == .failure } != nil)
    }
}

@Suite struct DNSResponderTests {
    func ask(_ port: UInt16, v6: Bool = false, _ query: [UInt8]) -> [UInt8]? {
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        Net.setTimeouts(fd, seconds: 2)
        var sent = -1
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            a.sin6_addr.__in6_u.__u6_addr8.15 = 1
            sent = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, query, query.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var a = Net.loopback(port)
            sent = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, query, query.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard sent == query.count else { return nil }
        var buf = [UInt8](repeating: 0, count: 1500)
        let n = recv(fd, &buf, buf.count, 0)
        return n > 0 ? Array(buf[0..<n]) : nil
    }

    func query(_ name: String, type: UInt16 = 1) -> [UInt8] {
        var m: [UInt8] = [0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for l in name.split(separator: ".") { m += [UInt8(l.utf8.count)] + Array(l.utf8) }
        return m + [0, 0, UInt8(type), 0, 1]
    }

    @Test func answersAllowedNamesAndRefusesTheRest() throws {
        let events = EventCapture()
        let dns = DNSResponder(allowlist: Allowlist([try HostPattern("api.example.com")]), events: events)
        let port = try dns.start(bindAddress: "127.0.0.1", port: 0)
        let port6 = try? dns.start(bindAddress: "::1", port: 0)
        defer { dns.stop() }
        let ok = try #require(ask(port, query("api.example.com")))
        #expect(ok[3] & 0x0f == 0)
        #expect(Array(ok.suffix(4)) == [127, 0, 0, 1])
        let no = try #require(ask(port, query("evil.example.com")))
        #expect(no[3] & 0x0f == 3)
        let aaaa = try #require(ask(port, query("api.example.com", type: 28)))
        #expect(aaaa[3] & 0x0f == 0 && aaaa[7] == 0)
        // A response sent to it is ignored (no reply loops).
        var resp = query("api.example.com")
        resp[2] |= 0x80
        #expect(ask(port, resp) == nil)
        if let port6 {
            let v6 = try #require(ask(port6, v6: true, query("api.example.com")))
            #expect(Array(v6.suffix(4)) == [127, 0, 0, 1])
        }
        #expect(events.wait { $0.kind == .dnsAnswered && $0.subject == "api.example.com" && $0.details["type"] == "A" } != nil)
        #expect(events.wait { $0.kind == .dnsRefused && $0.subject == "evil.example.com" } != nil)
        #expect(events.wait { $0.kind == .dnsRefused && $0.subject == "(malformed query)" } != nil)
    }
}

@Suite struct EventLogTests {
    @Test func summaryIsBoundedAndCountsEverything() {
        let log = EventLog()
        for i in 0..<(EventLog.summaryLimit + 50) {
            log.record(Event(.dnsRefused, subject: "n\(i).example", reason: "not in the allowlist"))
        }
        log.record(Event(.dnsRefused, subject: "n0.example", reason: "again"))
        let s = log.summary()?.rendered ?? ""
        #expect(s.hasPrefix("blocked \(EventLog.summaryLimit + 51): "))
        #expect(s.contains("dns-refused n0.example ×2"))
        #expect(s.hasSuffix("50 more (see --log)"))
    }

    @Test func nothingBlockedNoSummary() {
        let log = EventLog()
        log.record(Event(.connectionAllowed, subject: "a.example", reason: "allowed"))
        #expect(log.summary() == nil)
    }
}
