import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import AgentpenTestSupport
import Foundation
import Glibc
import Testing
@testable import AgentpenProxy

/// Issue 13 (ask, audit): the proxy under the unlisted-name policy, with
/// per-name addresses as on the direct hop (listeners on 127.0.16.x of this
/// machine's loopback stand in for the sandbox's).
@Suite struct UnlistedProxyTests {
    static let allow = Allowlist([try! HostPattern("ok.test.example")])

    struct Rig {
        let proxy: SNIProxy
        let port: UInt16
        let events: EventCapture
        let names: NameTable
        let resolved: Counter
    }

    func rig(_ policy: UnlistedNames, upstream: TestServer?, permitLoopback: Bool = true,
             resolveTo: IPAddress = .loopbackV4, upstreamProxy: UpstreamProxy? = nil,
             events: EventCapture = EventCapture(), approver: (any Approver)? = nil) throws -> Rig {
        _ = Net.ignorePipe
        var config = ProxyConfig(upstreamPort: upstream?.port ?? 9, permitLoopbackUpstreamForTests: permitLoopback)
        config.unlisted = policy
        config.upstreamProxy = upstreamProxy
        // Listeners on one port of several loopback addresses; that port stands for 443.
        let first = try listener(IPAddress(127, 0, 16, 1), 0)
        let port = try #require(Sock.address(first, peer: false)?.1)
        let listeners = try [first] + [IPAddress(127, 0, 16, 2), IPAddress(127, 0, 16, 3), .loopbackV4].map { try listener($0, port) }
        config.tlsPort = port
        let names = NameTable(NameAddresses(Self.allow, unlisted: policy))
        let resolved = Counter()
        let proxy = SNIProxy(allowlist: Self.allow, events: events, config: config, names: names, approver: approver) { _ in
            resolved.bump()
            return [resolveTo]
        }
        for l in listeners { try proxy.adopt(listener: Descriptor(l)) }
        return Rig(proxy: proxy, port: port, events: events, names: names, resolved: resolved)
    }

    func sockaddrIn(_ address: IPAddress, _ port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        let b = address.bytes
        a.sin_addr.s_addr = (UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24)
        return a
    }

    func listener(_ address: IPAddress, _ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var a = sockaddrIn(address, port)
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0, listen(fd, 64) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        return fd
    }

    func connect(_ address: IPAddress, _ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddrIn(address, port)
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
        Net.setTimeouts(fd, seconds: 10)
        return fd
    }

    @Test func passLetsAnUnlistedNameThroughAndRecordsWouldBlock() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(.pass, upstream: upstream)
        defer { r.proxy.stop() }
        let address = try #require(r.names.address(for: "unlisted.example"))
        let c = try connect(address, r.port)
        defer { close(c) }
        let hello = HelloBuilder.hello("unlisted.example")
        try Net.sendAll(c, hello)
        #expect(Net.read(c, upTo: hello.count).0 == hello)
        let w = try #require(r.events.wait { $0.kind == .wouldBlock })
        #expect(w.subject == "unlisted.example")
        #expect(w.details["permit"] == "--allow unlisted.example")
        #expect(!w.isRefusal, "let through: not a refusal the sandbox reads about")
        let a = try #require(r.events.wait { $0.kind == .connectionAllowed })
        #expect(a.subject == "unlisted.example" && a.details["pattern"] == "(audit)")
    }

    @Test func passStillRefusesLoopbackAndPrivateUpstreams() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        for target in [IPAddress.loopbackV4, IPAddress(10, 1, 2, 3), IPAddress(192, 168, 1, 1)] {
            let r = try rig(.pass, upstream: upstream, permitLoopback: false, resolveTo: target)
            defer { r.proxy.stop() }
            let address = try #require(r.names.address(for: "inside.example"))
            let c = try connect(address, r.port)
            defer { close(c) }
            try Net.sendAll(c, HelloBuilder.hello("inside.example"))
            #expect(Net.read(c, timeout: 5).0.isEmpty)
            let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
            #expect(e.reason.hasPrefix("every address refused"), "\(target): \(e.reason)")
            // Only private answers name the flag that would permit them (suggest shows it to the user).
            #expect(e.details["permit"] == (target == .loopbackV4 ? nil : "--allow-private inside.example"), "\(target)")
        }
        #expect(upstream.accepted == 0)
    }

    @Test(arguments: [UnlistedNames.pass, .hold])
    func theSNIMustEqualTheNameTheAddressStandsFor(_ policy: UnlistedNames) throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(policy, upstream: upstream)
        defer { r.proxy.stop() }
        let address = try #require(r.names.address(for: "decoy.example"))
        let c = try connect(address, r.port)
        defer { close(c) }
        // The allowed name's SNI on an unlisted name's address is refused too.
        for sni in ["other.example", "ok.test.example"] {
            let c = try connect(address, r.port)
            defer { close(c) }
            try Net.sendAll(c, HelloBuilder.hello(sni))
            #expect(Net.read(c, timeout: 5).0.isEmpty)
            let e = try #require(r.events.wait { $0.kind == .connectionBlocked && $0.subject == sni })
            #expect(e.details["address-stands-for"] == "decoy.example")
        }
        #expect(r.resolved.value == 0 && upstream.accepted == 0)
        #expect(r.events.all.allSatisfy { $0.kind != .wouldBlock && $0.kind != .connectionAllowed })
    }

    @Test func passNeverGoesThroughTheUpstreamProxy() throws {
        // The upstream proxy would pick the address: nothing could be vetted.
        let proxyServer = try TestServer.echo()
        defer { proxyServer.stop() }
        let up = try UpstreamProxy(url: "http://127.0.0.1:\(proxyServer.port)")
        let r = try rig(.pass, upstream: proxyServer, upstreamProxy: up)
        defer { r.proxy.stop() }
        let c = try connect(try #require(r.names.address(for: "unlisted.example")), r.port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("unlisted.example"))
        #expect(Net.read(c, timeout: 5).0.isEmpty)
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(e.reason.contains("does not send it through the upstream proxy"), "\(e.reason)")
        #expect(proxyServer.accepted == 0)
    }

    @Test func anAddressNeverHandedOutStaysRefused() throws {
        let r = try rig(.pass, upstream: nil)
        defer { r.proxy.stop() }
        let c = try connect(IPAddress(127, 0, 16, 3), r.port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("guess.example"))
        #expect(Net.read(c, timeout: 5).0.isEmpty)
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(e.reason == "no allowed name has this address and port")
    }

    @Test func refuseIsTodaysRun() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(.refuse, upstream: upstream)
        defer { r.proxy.stop() }
        #expect(r.names.address(for: "unlisted.example") == nil)
        // By SNI on 127.0.0.1: refused as before.
        let c = try connect(.loopbackV4, r.port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("unlisted.example"))
        #expect(Net.read(c, timeout: 5).0.isEmpty)
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(e.reason == "not in the allowlist")
        #expect(upstream.accepted == 0)
    }

    @Test func holdWithNobodyToAskRefuses() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(.hold, upstream: upstream)
        defer { r.proxy.stop() }
        let address = try #require(r.names.address(for: "unlisted.example"))
        let c = try connect(address, r.port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("unlisted.example"))
        #expect(Net.read(c, timeout: 5).0.isEmpty)
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(e.subject == "unlisted.example" && e.details["permit"] == "--allow unlisted.example")
        #expect(r.resolved.value == 0 && upstream.accepted == 0)
    }
}
