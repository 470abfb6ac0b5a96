import AgentpenEvents
import AgentpenPolicy
import Foundation
import Glibc
import AgentpenTestSupport
import Testing
@testable import AgentpenProxy

/// The SNI proxy dialling through an HTTP CONNECT proxy (a loopback stand-in):
/// the request it sends, the reply consumed exactly, a refusal reported.
@Suite struct UpstreamProxyTunnelTests {
    static let allow = Allowlist([try! HostPattern("ok.test.example"), try! HostPattern("direct.test.example")])

    /// A CONNECT proxy that records the request header and answers `reply`
    /// (in the same write as whatever follows it), then echoes when it was 2xx.
    static func fakeProxy(reply: String, record: @escaping @Sendable (String) -> Void) throws -> TestServer {
        try TestServer { c in
            var head: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while UpstreamProxy.replyHeaderEnd(head) == nil && head.count < 16384 {
                let n = recv(c, &buf, buf.count, 0)
                if n <= 0 { close(c); return }
                head += buf[0..<n]
            }
            record(String(decoding: head, as: UTF8.self))
            try? Net.sendAll(c, Array(reply.utf8))
            if reply.hasPrefix("HTTP/1.1 2") {
                while true {
                    let n = recv(c, &buf, buf.count, 0)
                    if n <= 0 { break }
                    if (try? Net.sendAll(c, Array(buf[0..<n]))) == nil { break }
                }
            }
            shutdown(c, Int32(SHUT_WR))
            close(c)
        }
    }

    func rig(_ proxyPort: UInt16, noProxy: [String] = [], direct: UInt16 = 9) throws -> (SNIProxy, UInt16, EventCapture, Counter) {
        _ = Net.ignorePipe
        // No loopback upstream allowed: the proxy's own address is the user's choice, not vetted;
        // a no_proxy name is vetted as always (the test's direct upstream is on loopback, so allowed here).
        var config = ProxyConfig(upstreamPort: direct, permitLoopbackUpstreamForTests: !noProxy.isEmpty)
        config.upstreamProxy = try UpstreamProxy(url: "http://apw:s3cr%3Aet@127.0.0.1:\(proxyPort)", noProxy: noProxy)
        let events = EventCapture()
        let resolved = Counter()
        let proxy = SNIProxy(allowlist: Self.allow, events: events, config: config) { _ in
            resolved.bump()
            return [.loopbackV4]
        }
        return (proxy, try proxy.start(), events, resolved)
    }

    @Test func connectsThroughTheProxyAndKeepsBytesAfterTheReply() throws {
        let request = Locked("")
        let up = try Self.fakeProxy(reply: "HTTP/1.1 200 Connection established\r\nVia: fake\r\n\r\nBANNER;") { r in request.withLock { $0 = r } }
        defer { up.stop() }
        let (proxy, port, events, resolved) = try rig(up.port)
        defer { proxy.stop() }
        let hello = HelloBuilder.hello("ok.test.example", keyShare: 1500)
        let c = try Net.connect(port)
        defer { close(c) }
        try Net.sendAll(c, hello)
        let want = Array("BANNER;".utf8) + hello
        let (got, _) = Net.read(c, upTo: want.count)
        #expect(got == want, "the bytes after the proxy's reply were lost or reordered")
        #expect(request.withLock { $0 } == "CONNECT ok.test.example:9 HTTP/1.1\r\nHost: ok.test.example:9\r\n"
                + "Proxy-Authorization: Basic YXB3OnMzY3I6ZXQ=\r\n\r\n")
        #expect(resolved.value == 0, "agentpen resolved the name itself")
        let e = try #require(events.wait { $0.kind == .connectionAllowed })
        #expect(e.details["upstream"] == "127.0.0.1:\(up.port)" && e.details["via-proxy"] == "CONNECT ok.test.example:9")
        #expect(e.details["proxy"] == "http://***@127.0.0.1:\(up.port)" && e.reason.contains("through the upstream proxy"))
        let text = events.all.map { $0.jsonLine() }.joined()
        #expect(!text.contains("s3cr") && !text.contains("apw:"), "\(text)")
    }

    @Test func aRefusalIsReportedWithTheProxysStatusLine() throws {
        let up = try Self.fakeProxy(reply: "HTTP/1.1 407 Proxy Authentication Required\u{1b}[2J\r\nProxy-Authenticate: Basic\r\n\r\n") { _ in }
        defer { up.stop() }
        let (proxy, port, events, _) = try rig(up.port)
        defer { proxy.stop() }
        let c = try Net.connect(port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("ok.test.example", keyShare: 100))
        let (got, end) = Net.read(c)
        #expect(got.isEmpty && (end == .eof || end == .reset), "\(got) \(String(describing: end))")
        let e = try #require(events.wait { $0.kind == .connectionBlocked })
        #expect(e.subject == "ok.test.example")
        #expect(e.details["proxy-status"] == "HTTP/1.1 407 Proxy Authentication Required?[2J", "\(e)")
        #expect(e.reason.contains("refused CONNECT ok.test.example:9: HTTP/1.1 407"), "\(e.reason)")
        #expect(!events.all.contains { $0.kind == .connectionAllowed })
        #expect(eventually { proxy.connectionCount == 0 })
    }

    @Test func notHTTPIsAFailure() throws {
        let up = try Self.fakeProxy(reply: "SSH-2.0-not-a-proxy\r\n\r\n") { _ in }
        defer { up.stop() }
        let (proxy, port, events, _) = try rig(up.port)
        defer { proxy.stop() }
        let c = try Net.connect(port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("ok.test.example", keyShare: 100))
        _ = Net.read(c)
        let e = try #require(events.wait { $0.kind == .failure })
        #expect(e.reason.contains("not HTTP"), "\(e.reason)")
    }

    @Test func aNoProxyNameIsDialledDirectly() throws {
        let request = Locked("")
        let up = try Self.fakeProxy(reply: "HTTP/1.1 200 OK\r\n\r\n") { r in request.withLock { $0 = r } }
        defer { up.stop() }
        let direct = try TestServer.echo()
        defer { direct.stop() }
        let (proxy, port, events, resolved) = try rig(up.port, noProxy: ["direct.test.example"], direct: direct.port)
        defer { proxy.stop() }
        let hello = HelloBuilder.hello("direct.test.example", keyShare: 100)
        let c = try Net.connect(port)
        defer { close(c) }
        try Net.sendAll(c, hello)
        let (got, _) = Net.read(c, upTo: hello.count)
        #expect(got == hello)
        #expect(resolved.value == 1 && up.accepted == 0 && direct.accepted == 1)
        let e = try #require(events.wait { $0.kind == .connectionAllowed })
        #expect(e.details["via-proxy"] == nil && e.details["upstream"] == "127.0.0.1:\(direct.port)")
        #expect(request.withLock { $0 }.isEmpty)
    }
}
