import AgentpenEvents
import AgentpenPolicy
import Foundation
import Glibc
import AgentpenTestSupport
import Testing
@testable import AgentpenProxy

/// End-to-end on loopback: a client socket → SNIProxy → a local test server.
@Suite struct SNIProxyTests {
    static let allow = Allowlist([try! HostPattern("ok.test.example"), try! HostPattern("*.wild.test.example")])

    struct Rig {
        let proxy: SNIProxy
        let port: UInt16
        let events: EventCapture
        let resolved: Counter
    }

    /// A proxy whose resolver maps every name to 127.0.0.1 and whose upstream
    /// port is the test server's.
    func rig(upstream: TestServer?, permitLoopback: Bool = true, allow: Allowlist = SNIProxyTests.allow,
             configure: (inout ProxyConfig) -> Void = { _ in }) throws -> Rig {
        _ = Net.ignorePipe
        var config = ProxyConfig(upstreamPort: upstream?.port ?? 9, permitLoopbackUpstreamForTests: permitLoopback)
        configure(&config)
        let events = EventCapture()
        let resolved = Counter()
        let proxy = SNIProxy(allowlist: allow, events: events, config: config) { _ in
            resolved.bump()
            return [.loopbackV4]
        }
        let port = try proxy.start()
        return Rig(proxy: proxy, port: port, events: events, resolved: resolved)
    }

    @Test func allowedNameRelaysBothWaysExactly() throws {
        let got = Locked<[UInt8]>([])
        let upstream = try TestServer.echo(record: { b in got.withLock { $0 = b } })
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let hello = HelloBuilder.hello("ok.test.example", keyShare: 1500) + Array("early data after the hello".utf8)
        let c = try Net.connect(r.port)
        defer { close(c) }
        try Net.sendAll(c, hello)
        let (echo, _) = Net.read(c, upTo: hello.count)
        #expect(echo == hello)
        Net.shutdownWrite(c)
        let (rest, end) = Net.read(c)
        #expect(rest.isEmpty && end == .eof)
        #expect(eventually { got.withLock { $0 } == hello })
        let e = try #require(r.events.wait { $0.kind == .connectionAllowed })
        #expect(e.subject == "ok.test.example")
        #expect(e.details["upstream"] == "127.0.0.1:\(upstream.port)")
        #expect(e.details["pattern"] == "ok.test.example")
        #expect(eventually { r.proxy.connectionCount == 0 })
    }

    @Test func wildcardMatchAndECHIsLogged() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        let hello = HelloBuilder.hello("a.b.wild.test.example", ech: true)
        try Net.sendAll(c, hello)
        #expect(Net.read(c, upTo: hello.count).0 == hello)
        let e = try #require(r.events.wait { $0.kind == .connectionAllowed })
        #expect(e.details["ech"] != nil)
        #expect(e.reason.contains("*.wild.test.example"))
    }

    @Test func largeTransferIsByteExact() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let total = 64 << 20
        // A prime-length random block, so misplaced chunks cannot line up by chance.
        var rng = SystemRandomNumberGenerator()
        let block = (0..<1_000_003).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let hello = HelloBuilder.hello("ok.test.example")
        let c = try Net.connect(r.port, timeout: 30)
        defer { close(c) }
        let start = Date()
        let sent = Locked<Bool>(false)
        Thread.detachNewThread {
            try? Net.sendAll(c, hello)
            var off = 0
            block.withUnsafeBytes { b in
                while off < total {
                    let pos = off % block.count
                    let n = min(block.count - pos, total - off, 1 << 20)
                    if (try? Net.sendAll(c, UnsafeRawBufferPointer(rebasing: b[pos..<(pos + n)]))) == nil { return }
                    off += n
                }
            }
            Net.shutdownWrite(c)
            sent.withLock { $0 = true }
        }
        #expect(Net.read(c, upTo: hello.count, timeout: 10).0 == hello)
        var received = 0
        var mismatch = false
        var buf = [UInt8](repeating: 0, count: 1 << 18)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let n = recv(c, &buf, buf.count, 0)
            if n <= 0 { break }
            // Compare against the stream at this offset, piece by piece across block wraps.
            var i = 0
            while i < n {
                let pos = (received + i) % block.count
                let k = min(n - i, block.count - pos)
                let same = buf.withUnsafeBytes { rb in block.withUnsafeBytes { bb in
                    memcmp(rb.baseAddress! + i, bb.baseAddress! + pos, k) == 0 } }
                if !same { mismatch = true }
                i += k
            }
            received += n
        }
        let seconds = Date().timeIntervalSince(start)
        #expect(received == total)
        #expect(!mismatch)
        #expect(sent.withLock { $0 })
        print("relay: \(total >> 20) MiB echoed through the proxy in \(String(format: "%.2f", seconds)) s "
              + "(\(String(format: "%.0f", Double(total) / seconds / 1e6)) MB/s each way)")
    }

    @Test func deniedNameIsClosedAndNothingIsDialled() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("evil.example"))
        let (data, end) = Net.read(c, timeout: 5)
        #expect(data.isEmpty)
        #expect(end == .eof || end == .reset)
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(e.subject == "evil.example")
        #expect(e.reason == "not in the allowlist")
        #expect(e.details["client"]?.hasPrefix("127.0.0.1:") == true)
        #expect(r.resolved.value == 0)
        usleep(100_000)
        #expect(upstream.accepted == 0)
        // The apex of a wildcard is not allowed either.
        let c2 = try Net.connect(r.port)
        defer { close(c2) }
        try Net.sendAll(c2, HelloBuilder.hello("wild.test.example"))
        #expect(Net.read(c2, timeout: 5).0.isEmpty)
        #expect(r.events.wait { $0.kind == .connectionBlocked && $0.subject == "wild.test.example" } != nil)
        #expect(upstream.accepted == 0)
    }

    @Test func noSNIAndGarbageAreClosed() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        for (i, bytes) in [HelloBuilder.hello(nil), Array("GET / HTTP/1.1\r\nHost: ok.test.example\r\n\r\n".utf8)].enumerated() {
            let c = try Net.connect(r.port)
            defer { close(c) }
            try Net.sendAll(c, bytes)
            let (data, end) = Net.read(c, timeout: 5)
            #expect(data.isEmpty && (end == .eof || end == .reset), "case \(i)")
        }
        #expect(r.events.wait { $0.subject == "(no SNI)" && $0.reason.contains("without a server name") } != nil)
        #expect(r.events.wait { $0.subject == "(no SNI)" && $0.reason.hasPrefix("invalid ClientHello") } != nil)
        #expect(upstream.accepted == 0)
        #expect(r.resolved.value == 0)
    }

    @Test func loopbackUpstreamIsRefusedByDefault() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        // Even with --allow-private for the name.
        let allow = Allowlist([try HostPattern("ok.test.example", allowsPrivateUpstream: true)])
        let r = try rig(upstream: upstream, permitLoopback: false, allow: allow)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("ok.test.example"))
        let (data, _) = Net.read(c, timeout: 5)
        #expect(data.isEmpty)
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(e.subject == "ok.test.example")
        #expect(e.reason.contains("127.0.0.1 is a loopback address"))
        #expect(upstream.accepted == 0)
    }

    @Test func privateUpstreamNeedsThePermission() throws {
        let events = EventCapture()
        let allow = Allowlist([try HostPattern("priv.test.example"), try HostPattern("ok.test.example", allowsPrivateUpstream: true)])
        // 198.18.0.1 is never dialled: the first name is refused before, the
        // second fails to connect quickly (nothing routes there in the test).
        let proxy = SNIProxy(allowlist: allow, events: events,
                             config: ProxyConfig(connectTimeout: 0.3)) { name in
            name == "priv.test.example" ? [IPAddress(10, 1, 2, 3), IPAddress(169, 254, 169, 254)] : [IPAddress(169, 254, 169, 254)]
        }
        let port = try proxy.start()
        defer { proxy.stop() }
        let c = try Net.connect(port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("priv.test.example"))
        #expect(Net.read(c, timeout: 5).0.isEmpty)
        let e = try #require(events.wait { $0.kind == .connectionBlocked })
        #expect(e.reason.contains("10.1.2.3 is a private address"))
        #expect(e.reason.contains("cloud metadata"))
        // Link-local stays refused with the permission.
        let c2 = try Net.connect(port)
        defer { close(c2) }
        try Net.sendAll(c2, HelloBuilder.hello("ok.test.example"))
        #expect(Net.read(c2, timeout: 5).0.isEmpty)
        let e2 = try #require(events.wait { $0.kind == .connectionBlocked && $0.subject == "ok.test.example" })
        #expect(e2.reason.contains("link-local"))
    }

    @Test func helloOneByteAtATime() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        Net.setNoDelay(c)
        let hello = HelloBuilder.hello("ok.test.example")
        for b in hello {
            try Net.sendAll(c, [b])
            usleep(1000)
        }
        #expect(Net.read(c, upTo: hello.count).0 == hello)
        try Net.sendAll(c, Array("after".utf8))
        #expect(Net.read(c, upTo: 5).0 == Array("after".utf8))
    }

    @Test func helloSplitOverRecordsAndSegments() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        Net.setNoDelay(c)
        let msg = HelloBuilder.message(sni: "ok.test.example", keyShare: 1500)
        let bytes = HelloBuilder.records(msg, fragments: [700])
        try Net.sendAll(c, Array(bytes[0..<300]))
        usleep(50_000)
        try Net.sendAll(c, Array(bytes[300...]))
        #expect(Net.read(c, upTo: bytes.count).0 == bytes)
    }

    @Test func clientClosingMidHelloIsRecorded() throws {
        let r = try rig(upstream: nil)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        let hello = HelloBuilder.hello("ok.test.example")
        try Net.sendAll(c, Array(hello[0..<50]))
        usleep(50_000)
        Net.shutdownWrite(c)
        #expect(r.events.wait { $0.reason.contains("before the ClientHello was complete") } != nil)
        close(c)
    }

    @Test func halfCloseKeepsTheOtherDirection() throws {
        // The server reads to end of stream, then answers, then closes.
        let upstream = try TestServer { s in
            let (got, _) = Net.read(s, timeout: 10)
            let reply = Array("reply after your EOF: \(got.count) bytes".utf8)
            try? Net.sendAll(s, reply)
            close(s)
        }
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        let hello = HelloBuilder.hello("ok.test.example")
        try Net.sendAll(c, hello + [1, 2, 3])
        Net.shutdownWrite(c)
        let (data, end) = Net.read(c, timeout: 10)
        #expect(String(decoding: data, as: UTF8.self) == "reply after your EOF: \(hello.count + 3) bytes")
        #expect(end == .eof)
    }

    /// Idle timeout 2 s against traffic every 0.2 s for 3 s: a gap would have to
    /// stretch tenfold on a loaded machine to close it early, and the traffic lasts
    /// longer than the timeout, so a timer that traffic does not reset fails it.
    @Test func idleTimeoutClosesButTrafficKeepsItOpen() throws {
        let idle = 2.0
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream) { $0.idleTimeout = idle }
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        let hello = HelloBuilder.hello("ok.test.example")
        try Net.sendAll(c, hello)
        #expect(Net.read(c, upTo: hello.count).0 == hello)
        let start = DispatchTime.now()
        var lastSend = start
        while DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds < UInt64(idle * 1.5 * 1e9) {
            lastSend = DispatchTime.now()
            try Net.sendAll(c, [7])
            #expect(Net.read(c, upTo: 1, timeout: 30).0 == [7])
            usleep(200_000)
        }
        // Then silence: closed, and never sooner than the idle timeout after the
        // last byte (the proxy cannot have seen it before it was sent). Measured on
        // the monotonic clock from that send, so a slow machine cannot fail it.
        let (data, end) = Net.read(c, timeout: 30)
        let waited = Double(DispatchTime.now().uptimeNanoseconds - lastSend.uptimeNanoseconds) / 1e9
        #expect(data.isEmpty && (end == .eof || end == .reset))
        #expect(waited >= idle && waited < 30, "closed \(waited) s after the last byte")
    }

    @Test func perClientCapIsEnforced() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream) { $0.maxConnectionsPerClient = 3 }
        defer { r.proxy.stop() }
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<3 { held.append(try Net.connect(r.port)) }
        #expect(eventually { r.proxy.connectionCount == 3 })
        let over = try Net.connect(r.port)
        defer { close(over) }
        try? Net.sendAll(over, HelloBuilder.hello("ok.test.example"))
        let (data, end) = Net.read(over, timeout: 5)
        #expect(data.isEmpty && (end == .eof || end == .reset))
        let e = try #require(r.events.wait { $0.reason.contains("concurrent connections") })
        #expect(e.kind == .connectionBlocked)
        // Freeing one slot admits a new connection.
        close(held.removeLast())
        try Net.sendAll(held[0], [0x17])   // garbage: closed by the proxy, frees another slot
        #expect(eventually { r.proxy.connectionCount <= 2 })
        let ok = try Net.connect(r.port)
        defer { close(ok) }
        let hello = HelloBuilder.hello("ok.test.example")
        try Net.sendAll(ok, hello)
        #expect(Net.read(ok, upTo: hello.count).0 == hello)
    }

    /// One client that sends nothing and one that sends the first 20 bytes of a hello.
    static func silentAndPartialClients(_ port: UInt16) throws -> (silent: Int32, partial: Int32) {
        let silent = try Net.connect(port)
        let partial: Int32
        do { partial = try Net.connect(port) } catch { close(silent); throw error }
        do { try Net.sendAll(partial, Array(HelloBuilder.hello("ok.test.example")[0..<20])) } catch {
            close(silent); close(partial); throw error
        }
        return (silent, partial)
    }

    /// A client that sends nothing, or half a hello, holds up nobody: another is
    /// relayed while both still wait (their deadline is far off, so no clock is
    /// read). A proxy that served one handshake at a time never relays it.
    @Test func silentClientDoesNotDelayOthers() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream) { $0.handshakeTimeout = 300 }
        defer { r.proxy.stop() }
        let (silent, partial) = try Self.silentAndPartialClients(r.port)
        defer { close(silent); close(partial) }
        #expect(eventually { r.proxy.connectionCount == 2 })
        let c = try Net.connect(r.port)
        defer { close(c) }
        let hello = HelloBuilder.hello("ok.test.example")
        try Net.sendAll(c, hello)
        #expect(Net.read(c, upTo: hello.count).0 == hello)
        // Both still open: nothing to read, no end of stream, no timeout event.
        for fd in [silent, partial] {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            #expect(poll(&p, 1, 0) == 0, "a waiting client was closed (revents \(p.revents))")
        }
        #expect(!r.events.all.contains { $0.reason.contains("no complete ClientHello within") })
    }

    /// The silent ones are closed at the handshake deadline, with an event each.
    @Test func silentClientsTimeOut() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream) { $0.handshakeTimeout = 1 }
        defer { r.proxy.stop() }
        let (silent, partial) = try Self.silentAndPartialClients(r.port)
        defer { close(silent); close(partial) }
        let (d1, e1) = Net.read(silent, timeout: 30)
        let (d2, e2) = Net.read(partial, timeout: 30)
        // The partial one had unread (peeked) bytes, so the kernel resets rather than ends it.
        #expect(d1.isEmpty && d2.isEmpty && e1 == .eof && (e2 == .eof || e2 == .reset))
        #expect(eventually(timeout: 30) { r.events.all.filter { $0.reason.contains("no complete ClientHello within") }.count == 2 })
        #expect(upstream.accepted == 0)
    }

    @Test func upstreamResetReachesTheClient() throws {
        let upstream = try TestServer { s in
            _ = Net.read(s, upTo: 10, timeout: 5)
            try? Net.sendAll(s, Array("partial".utf8))
            usleep(50_000)
            Net.resetClose(s)
        }
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("ok.test.example"))
        let (data, end) = Net.read(c, timeout: 5)
        #expect(String(decoding: data, as: UTF8.self) == "partial")
        #expect(end == .reset || end == .eof)
        #expect(eventually { r.proxy.connectionCount == 0 })
    }

    @Test func upstreamRefusingIsAFailureEvent() throws {
        // A port nobody listens on, and nobody else can take meanwhile: bound, never
        // listening (a connect is reset), held until the test ends.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = Net.loopback(0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        try #require(bound)
        let deadPort = UInt16(bigEndian: a.sin_port)
        let events = EventCapture()
        let proxy = SNIProxy(allowlist: Self.allow, events: events,
                             config: ProxyConfig(upstreamPort: deadPort, permitLoopbackUpstreamForTests: true)) { _ in
            [.loopbackV4, .loopbackV4]
        }
        let port = try proxy.start()
        defer { proxy.stop() }
        let c = try Net.connect(port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("ok.test.example"))
        #expect(Net.read(c, timeout: 5).0.isEmpty)
        let e = try #require(events.wait { $0.kind == .failure })
        #expect(e.reason.contains("could not connect"))
    }

    @Test func stopClosesEverything() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        let relaying = try Net.connect(r.port)
        defer { close(relaying) }
        let hello = HelloBuilder.hello("ok.test.example")
        try Net.sendAll(relaying, hello)
        #expect(Net.read(relaying, upTo: hello.count).0 == hello)
        let pending = try Net.connect(r.port)
        defer { close(pending) }
        #expect(eventually { r.proxy.connectionCount == 2 })
        r.proxy.stop()
        #expect(Net.read(relaying, timeout: 5).1 == .eof)
        #expect(Net.read(pending, timeout: 5).1 == .eof)
        #expect(eventually { r.proxy.connectionCount == 0 })
        // And no longer listening.
        #expect(eventually { (try? Net.connect(r.port)).map { close($0); return false } ?? true })
    }
}

extension Net {
    static func setNoDelay(_ fd: Int32) {
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }
}
