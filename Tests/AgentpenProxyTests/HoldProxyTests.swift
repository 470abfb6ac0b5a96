import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import AgentpenTestSupport
import Foundation
import Glibc
import Testing
@testable import AgentpenProxy

/// Issue 13 (ask): a connection to an unlisted name held by the proxy while
/// the HoldQueue waits for a decision: nothing resolved, nothing dialled, the
/// ClientHello still queued; then each outcome.
@Suite struct HoldProxyTests {
    struct Rig {
        let proxy: SNIProxy
        let port: UInt16
        let events: EventCapture
        let names: NameTable
        let resolved: Counter
        let holds: HoldQueue
    }

    /// UnlistedProxyTests' rig under the hold policy, with a HoldQueue as its approver.
    func rig(upstream: TestServer, timeout: Int = 60) throws -> Rig {
        let events = EventCapture()
        let holds = HoldQueue(events: events, timeout: timeout, agent: "test-agent")
        let r = try UnlistedProxyTests().rig(.hold, upstream: upstream, events: events, approver: holds)
        return Rig(proxy: r.proxy, port: r.port, events: events, names: r.names, resolved: r.resolved, holds: holds)
    }

    /// Connects to the host's per-name address, sends its hello, waits until it is held.
    func held(_ r: Rig, _ host: String, count: Int = 1) throws -> (fd: Int32, hello: [UInt8]) {
        let address = try #require(r.names.address(for: host))
        let c = try UnlistedProxyTests().connect(address, r.port)
        let hello = HelloBuilder.hello(host)
        try Net.sendAll(c, hello)
        #expect(eventually { r.events.all.filter { $0.kind == .connectionHeld && $0.subject == host }.count >= count })
        return (c, hello)
    }

    @Test func heldConnectionDialsNothingUntilAllowedOnce() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let (c, hello) = try held(r, "ask.example")
        defer { close(c) }
        let h = try #require(r.events.all.first { $0.kind == .connectionHeld })
        #expect(h.details["agent"] == "test-agent" && h.details["permit"] == "--allow ask.example" && h.details["hold"] == "1")
        #expect(!h.isRefusal)
        // Held: nothing resolved or dialled, no byte back.
        #expect(r.resolved.value == 0 && upstream.accepted == 0)
        #expect(r.holds.decide(ControlCommand(host: "ask.example", choice: .once)).hasPrefix("ok once ask.example: 1 held"))
        #expect(Net.read(c, upTo: hello.count).0 == hello, "the hello, held and never consumed, reaches upstream whole")
        let a = try #require(r.events.wait { $0.kind == .connectionAllowed })
        #expect(a.details["decision"] == "once" && a.details["pattern"] == "(asked)" && a.details["hold"] == "1")
        // Once: the next connection is held again.
        let (c2, _) = try held(r, "ask.example", count: 2)
        defer { close(c2) }
        #expect(r.holds.decide(ControlCommand(host: "ask.example", choice: .deny)).hasPrefix("ok deny"))
        #expect(Net.read(c2, timeout: 5).0.isEmpty)
        let d = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(d.details["decision"] == "deny" && d.reason.contains("denied by the user") && d.isRefusal)
        #expect(upstream.accepted == 1)
    }

    @Test func sessionApprovalCoversLaterConnections() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let (c, hello) = try held(r, "sess.example")
        defer { close(c) }
        #expect(r.holds.decide(ControlCommand(host: "sess.example", choice: .session)).hasPrefix("ok session"))
        #expect(Net.read(c, upTo: hello.count).0 == hello)
        // Later: straight through, no hold event.
        let c2 = try UnlistedProxyTests().connect(try #require(r.names.address(for: "sess.example")), r.port)
        defer { close(c2) }
        try Net.sendAll(c2, hello)
        #expect(Net.read(c2, upTo: hello.count).0 == hello)
        // The allowed event follows the bytes (the hello is spliced first): waited for.
        #expect(eventually { r.events.all.filter { $0.kind == .connectionAllowed && $0.details["decision"] == "session" }.count == 2 })
        #expect(r.events.all.filter { $0.kind == .connectionHeld }.count == 1)
    }

    @Test func noDecisionInTimeIsRefused() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream, timeout: 1)
        defer { r.proxy.stop() }
        let (c, _) = try held(r, "slow.example")
        defer { close(c) }
        // Ends by the queue's own timeout: the read returns when the proxy closes.
        #expect(Net.read(c, timeout: 30).0.isEmpty)
        let e = try #require(r.events.wait { $0.kind == .connectionBlocked })
        #expect(e.details["decision"] == "timeout" && e.reason.contains("no decision within 1 s"))
        #expect(r.resolved.value == 0 && upstream.accepted == 0)
        // A decision after the time ran out answers nothing.
        #expect(r.holds.decide(ControlCommand(host: "slow.example", choice: .once)).hasPrefix("error no connection"))
    }

    @Test func theSNIStillMustMatchAndHeldOnesEndWithTheRun() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        let address = try #require(r.names.address(for: "named.example"))
        let c = try UnlistedProxyTests().connect(address, r.port)
        defer { close(c) }
        try Net.sendAll(c, HelloBuilder.hello("other.example"))
        #expect(Net.read(c, timeout: 5).0.isEmpty)
        #expect(r.events.all.allSatisfy { $0.kind != .connectionHeld }, "a mismatched SNI is refused, never held")
        let (c2, _) = try held(r, "named.example")
        defer { close(c2) }
        r.holds.cancelAll()
        #expect(Net.read(c2, timeout: 5).0.isEmpty)
        #expect(r.events.wait { $0.kind == .connectionBlocked && $0.details["decision"] == "none" } != nil)
        r.proxy.stop()
        #expect(upstream.accepted == 0)
    }
}
