import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import AgentpenTestSupport
import Foundation
import Glibc
import Testing
@testable import AgentpenProxy

/// A listening socket on 127.0.0.1 that nobody accepts on until the test drains
/// it: each connection that reached it, with what it carried. The kernel's own
/// count (TCP_INFO's bytes_received) is taken too, so bytes followed by a reset
/// (which may discard them before a read) still count.
final class SilentUpstream {
    let fd: Int32
    let port: UInt16

    struct Arrival {
        var read: Int
        var received: UInt64
        var end: Net.End?
    }

    init() throws { (fd, port) = try Net.listen() }

    deinit { close(fd) }

    /// A connection is waiting to be accepted (bounded against a hang only).
    func pending(timeout: Double = 30) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, Int32(timeout * 1000)) == 1
    }

    /// Accepts every connection the kernel completed and reads each to its end.
    func drain() -> [Arrival] {
        var out: [Arrival] = []
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 0) == 1 else { return out }
            let c = accept(fd, nil, nil)
            if c < 0 { return out }
            let (bytes, end) = Net.read(c, timeout: 10)
            var info = [UInt8](repeating: 0, count: 256)
            var len = socklen_t(info.count)
            var received: UInt64 = 0
            // struct tcp_info: tcpi_bytes_received is the u64 at offset 128 (Linux 4.1).
            if getsockopt(c, Int32(IPPROTO_TCP), TCP_INFO, &info, &len) == 0, len >= 136 {
                received = info.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 128, as: UInt64.self) }
            }
            close(c)
            out.append(Arrival(read: bytes.count, received: received, end: end))
        }
    }
}

/// Issue 11 (added latency per new connection): on a per-name address the
/// connection's name is known before its first byte, so agentpen resolves,
/// vets and connects to the upstream while the ClientHello is on its way. A
/// hello that is then refused must not have sent one byte upstream, and must
/// be reported exactly as without the early dial (no trace of the dial).
@Suite struct EarlyDialTests {
    static let allow = Allowlist([try! HostPattern("ok.test.example"), try! HostPattern("*.wild.test.example")])

    /// UnlistedProxyTests' rig (the proxy, its port, events, names, resolutions counted).
    typealias Rig = UnlistedProxyTests.Rig

    /// Per-name addresses as on the direct hop: listeners on one port of the
    /// first exact names' addresses (ok.test.example's is 127.0.1.1), the first
    /// pooled one and 127.0.0.1, that port standing for 443; every name resolves to `resolveTo`.
    func rig(upstreamPort: UInt16, resolveTo: [IPAddress] = [.loopbackV4], permitLoopback: Bool = true,
             handshakeTimeout: TimeInterval = 10) throws -> Rig {
        _ = Net.ignorePipe
        var config = ProxyConfig(upstreamPort: upstreamPort, handshakeTimeout: handshakeTimeout,
                                 permitLoopbackUpstreamForTests: permitLoopback)
        let u = UnlistedProxyTests()
        let first = try u.listener(NameAddresses.exactBase, 0)
        let port = try #require(Sock.address(first, peer: false)?.1)
        let listeners = try [first] + [IPAddress(127, 0, 1, 2), NameAddresses.poolBase, .loopbackV4].map { try u.listener($0, port) }
        config.tlsPort = port
        let names = NameTable(NameAddresses(Self.allow))
        let resolved = Counter()
        let events = EventCapture()
        let proxy = SNIProxy(allowlist: Self.allow, events: events, config: config, names: names) { _ in
            resolved.bump()
            return resolveTo
        }
        for l in listeners { try proxy.adopt(listener: Descriptor(l)) }
        return Rig(proxy: proxy, port: port, events: events, names: names, resolved: resolved)
    }

    /// What a sandbox can send on an allowed name's address that is refused, the
    /// reason today's proxy records for it, and whether the client ends it.
    static let refusals: [(label: String, bytes: [UInt8], closes: Bool, subject: String, reason: String)] = [
        ("another allowed name's SNI", HelloBuilder.hello("a.wild.test.example"), false, "a.wild.test.example",
         "SNI a.wild.test.example does not match ok.test.example, the name this address stands for"),
        ("an unlisted SNI", HelloBuilder.hello("evil.example"), false, "evil.example",
         "SNI evil.example does not match ok.test.example, the name this address stands for"),
        ("no SNI", HelloBuilder.hello(nil), false, "(no SNI)", "ClientHello without a server name"),
        ("plain HTTP", Array("GET / HTTP/1.1\r\nHost: ok.test.example\r\n\r\n".utf8), false, "(no SNI)", "invalid ClientHello"),
        ("half a hello, then the end", Array(HelloBuilder.hello("ok.test.example").prefix(40)), true, "(no SNI)",
         "client closed before the ClientHello was complete"),
        ("nothing, then the end", [], true, "(no SNI)", "client closed without sending anything"),
    ]

    @Test(arguments: 0..<refusals.count)
    func aRefusedHelloSendsNothingUpstreamAndIsReportedAsBefore(_ i: Int) throws {
        let (label, bytes, closes, subject, reason) = Self.refusals[i]
        let upstream = try SilentUpstream()
        let r = try rig(upstreamPort: upstream.port)
        defer { r.proxy.stop() }
        let c = try UnlistedProxyTests().connect(r.address, r.port)
        defer { close(c) }
        // The early dial reached the upstream before the sandbox sent a byte.
        #expect(upstream.pending(), "\(label): no upstream connection before the hello")
        if !bytes.isEmpty { try Net.sendAll(c, bytes) }
        if closes { Net.shutdownWrite(c) }
        let (data, end) = Net.read(c, timeout: 10)
        #expect(data.isEmpty && (end == .eof || end == .reset), "\(label): \(data.count) bytes, \(String(describing: end))")
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked }, "\(label)")
        #expect(e.subject == subject && e.reason.hasPrefix(reason), "\(label): \(e.subject): \(e.reason)")
        // Out of the table only once the early upstream socket is closed.
        #expect(eventually { r.proxy.connectionCount == 0 }, "\(label)")
        let arrivals = upstream.drain()
        #expect(arrivals.count == 1, "\(label): \(arrivals.count) upstream connections")
        for a in arrivals {
            #expect(a.read == 0 && a.received == 0, "\(label): \(a.read) bytes read upstream, \(a.received) received")
            #expect(a.end == .reset || a.end == .eof, "\(label): upstream left \(String(describing: a.end))")
        }
        // Exactly the one event today's proxy records: nothing about the dial.
        #expect(r.events.all.map(\.kind) == [.connectionBlocked], "\(label): \(r.events.all.map { "\($0.kind) \($0.reason)" })")
    }

    @Test func aHelloThatNeverComesSendsNothingUpstream() throws {
        let upstream = try SilentUpstream()
        let r = try rig(upstreamPort: upstream.port, handshakeTimeout: 1)
        defer { r.proxy.stop() }
        let c = try UnlistedProxyTests().connect(r.address, r.port)
        defer { close(c) }
        #expect(upstream.pending())
        let (data, _) = Net.read(c, timeout: 10)
        #expect(data.isEmpty)
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(e.reason == "no complete ClientHello within 1 s")
        #expect(eventually { r.proxy.connectionCount == 0 })
        let arrivals = upstream.drain()
        #expect(arrivals.count == 1 && arrivals.allSatisfy { $0.read == 0 && $0.received == 0 && $0.end != .timeout },
                "\(arrivals)")
        #expect(r.events.all.map(\.kind) == [.connectionBlocked])
    }

    @Test func stoppingWithAnEarlyDialOpenClosesItUnsent() throws {
        let upstream = try SilentUpstream()
        let r = try rig(upstreamPort: upstream.port)
        let c = try UnlistedProxyTests().connect(r.address, r.port)
        defer { close(c) }
        #expect(upstream.pending())
        r.proxy.stop()
        #expect(eventually { r.proxy.connectionCount == 0 })
        let arrivals = upstream.drain()
        #expect(arrivals.count == 1 && arrivals.allSatisfy { $0.read == 0 && $0.received == 0 && $0.end != .timeout },
                "\(arrivals)")
        #expect(r.events.all.isEmpty, "\(r.events.all.map(\.reason))")
    }

    @Test func theAllowedHelloGoesUpstreamWholeOnTheEarlyConnection() throws {
        let got = Locked<[UInt8]>([])
        let upstream = try TestServer.echo(record: { b in got.withLock { $0 = b } })
        defer { upstream.stop() }
        let r = try rig(upstreamPort: upstream.port)
        defer { r.proxy.stop() }
        let c = try UnlistedProxyTests().connect(r.address, r.port)
        defer { close(c) }
        // Dialled before the hello: the upstream server has the connection already.
        #expect(eventually { upstream.accepted == 1 })
        let hello = HelloBuilder.hello("ok.test.example", keyShare: 1500) + Array("early data after the hello".utf8)
        try Net.sendAll(c, hello)
        #expect(Net.read(c, upTo: hello.count).0 == hello)
        Net.shutdownWrite(c)
        let (rest, end) = Net.read(c)
        #expect(rest.isEmpty && end == .eof)
        #expect(eventually { got.withLock { $0 } == hello })
        let closed = try #require(r.events.wait { $0.kind == .tunnelClosed })
        #expect(closed.details["bytes-up"] == String(hello.count))
        // The allowed event before the closed one, as always.
        #expect(r.events.all.map(\.kind) == [.connectionAllowed, .tunnelClosed])
        let a = try #require(r.events.all.first)
        #expect(a.subject == "ok.test.example" && a.details["upstream"] == "127.0.0.1:\(upstream.port)"
                && a.details["pattern"] == "ok.test.example", "\(a.details)")
        #expect(upstream.accepted == 1 && r.resolved.value == 1)
    }

    /// The early dial's failures are reported only for a hello that passed, and
    /// then exactly as without it; a refused hello reports only its refusal.
    @Test(arguments: [true, false])
    func aFailedEarlyDialIsReportedOnlyForAPassingHello(_ passing: Bool) throws {
        let closedPort: UInt16 = try {
            let (fd, port) = try Net.listen()
            close(fd)
            return port
        }()
        let cases: [(label: String, resolveTo: [IPAddress], permitLoopback: Bool, port: UInt16, reason: String)] = [
            ("no address", [], true, closedPort, "could not resolve ok.test.example"),
            ("only a loopback address", [.loopbackV4], false, closedPort,
             "every address refused: 127.0.0.1 is a loopback address"),
            ("nothing listening", [.loopbackV4], true, closedPort, "could not connect: connect 127.0.0.1:\(closedPort)"),
        ]
        for k in cases {
            let r = try rig(upstreamPort: k.port, resolveTo: k.resolveTo, permitLoopback: k.permitLoopback)
            defer { r.proxy.stop() }
            let c = try UnlistedProxyTests().connect(r.address, r.port)
            defer { close(c) }
            // The early dial has looked the name up before the hello.
            #expect(eventually { r.resolved.value == 1 }, "\(k.label)")
            try Net.sendAll(c, HelloBuilder.hello(passing ? "ok.test.example" : "evil.example"))
            #expect(Net.read(c, timeout: 10).0.isEmpty, "\(k.label)")
            #expect(eventually { r.proxy.connectionCount == 0 }, "\(k.label)")
            let events = r.events.all
            #expect(events.count == 1, "\(k.label): \(events.map { "\($0.kind) \($0.reason)" })")
            let e = try #require(events.first)
            if passing {
                #expect(e.subject == "ok.test.example" && e.reason.hasPrefix(k.reason), "\(k.label): \(e.reason)")
                #expect(e.kind == (k.label == "only a loopback address" ? .connectionBlocked : .failure), "\(k.label)")
            } else {
                #expect(e.kind == .connectionBlocked && e.subject == "evil.example" && e.reason.contains("does not match"),
                        "\(k.label): \(e.reason)")
            }
        }
    }
}

private extension UnlistedProxyTests.Rig {
    /// ok.test.example's own address (the connection's name before its first byte).
    var address: IPAddress { names.address(for: "ok.test.example")! }
}
