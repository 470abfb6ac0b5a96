import AgentpenEvents
import AgentpenPolicy
import AgentpenTestSupport
import Dispatch
import Foundation
import Glibc
import Synchronization
import Testing
@testable import AgentpenProxy

/// Issue 11 (added latency per new connection): the connections run on the
/// event loops' threads and their deadlines are the loops' own (one heap per
/// loop, the epoll wait's timeout), not Dispatch timers. A deadline that no
/// longer fires is a slow-loris hold: a client that never completes its hello
/// keeps a connection (and, on a per-name address, an early-dialled upstream)
/// open. Each test here would pass with a deadline that fires only when some
/// other descriptor happens to wake the loop, or one that a busy loop never
/// reaches, or a heap that loses or repeats entries, only if that bug is absent.
@Suite struct LoopDeadlineTests {
    static let allow = Allowlist([try! HostPattern("ok.test.example")])

    static func proxy(handshakeTimeout: TimeInterval, upstreamPort: UInt16 = 9) -> (SNIProxy, EventCapture) {
        _ = Net.ignorePipe
        let events = EventCapture()
        let config = ProxyConfig(upstreamPort: upstreamPort, handshakeTimeout: handshakeTimeout, permitLoopbackUpstreamForTests: true)
        return (SNIProxy(allowlist: allow, events: events, config: config) { _ in [.loopbackV4] }, events)
    }

    static let deadlineReason = "no complete ClientHello within 1 s"

    /// In a process of its own, so that no other test's traffic wakes the loops:
    /// the only thing that can end this client's connection is its deadline.
    @Test func aSilentClientIsCutWhenNothingElseHappens() async {
        await #expect(processExitsWith: .success) {
            let (proxy, events) = LoopDeadlineTests.proxy(handshakeTimeout: 1)
            guard let port = try? proxy.start(), let c = try? Net.connect(port) else { exit(3) }
            // Bounded against a hang only: the deadline is 1 s.
            let (data, end) = Net.read(c, timeout: 60)
            guard data.isEmpty, end == .eof else { exit(4) }
            guard eventually({ proxy.connectionCount == 0 }) else { exit(5) }
            guard events.all.map(\.reason) == [LoopDeadlineTests.deadlineReason] else { exit(6) }
            exit(0)
        }
    }

    /// A client that trickles its hello one byte at a time keeps the loop busy
    /// with its own reports; its deadline still cuts it before the hello is whole.
    @Test func aTricklingClientIsCutAtItsDeadline() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let (proxy, events) = Self.proxy(handshakeTimeout: 1, upstreamPort: upstream.port)
        defer { proxy.stop() }
        let c = try Net.connect(try proxy.start())
        defer { close(c) }
        // ~1.7 KB: sent a byte per 20 ms that takes ~35 s, far past the deadline.
        let hello = HelloBuilder.hello("ok.test.example", keyShare: 1600)
        var sent = 0
        var cut = false
        while sent < hello.count - 1 {
            var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 20) != 0 { cut = true; break }
            guard hello[sent...sent].withUnsafeBytes({ send(c, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }) == 1 else { cut = true; break }
            sent += 1
        }
        #expect(cut, "the whole hello but one byte went in without the deadline cutting the client")
        let (data, end) = Net.read(c, timeout: 30)
        #expect(data.isEmpty && (end == .eof || end == .reset))
        #expect(eventually { proxy.connectionCount == 0 })
        #expect(events.all.map(\.reason) == [Self.deadlineReason])
        #expect(upstream.accepted == 0)
    }

    /// Many deadlines at once, most cancelled early (hellos that pass) and the
    /// rest due together: each silent client is cut and reported exactly once,
    /// no relayed one is, and the relays (their idle deadlines in the same heap)
    /// still carry bytes afterwards.
    @Test func manySilentClientsAmongRelayedOnesAreEachCutOnce() throws {
        let upstream = try TestServer.echo()
        defer { upstream.stop() }
        let (proxy, events) = Self.proxy(handshakeTimeout: 1, upstreamPort: upstream.port)
        defer { proxy.stop() }
        let port = try proxy.start()
        let n = 60
        var silent: [Int32] = [], relayed: [Int32] = []
        defer { for fd in silent + relayed { close(fd) } }
        let hello = HelloBuilder.hello("ok.test.example")
        for _ in 0..<n {
            silent.append(try Net.connect(port))
            let c = try Net.connect(port)
            relayed.append(c)
            try Net.sendAll(c, hello)
        }
        for c in relayed { #expect(Net.read(c, upTo: hello.count, timeout: 30).0 == hello) }
        for c in silent {
            let (data, end) = Net.read(c, timeout: 30)
            #expect(data.isEmpty && end == .eof)
        }
        #expect(eventually { events.all.filter { $0.reason == Self.deadlineReason }.count >= n })
        #expect(eventually { proxy.connectionCount == n })
        let cuts = events.all.filter { $0.reason == Self.deadlineReason }
        #expect(cuts.count == n, "\(cuts.count) deadline events for \(n) silent clients")
        #expect(Set(cuts.compactMap { $0.details["client"] }).count == n)
        #expect(events.all.filter { $0.kind == .connectionAllowed }.count == n)
        #expect(!events.all.contains { $0.kind == .tunnelClosed })
        let more = Array("still relaying".utf8)
        for c in relayed {
            try Net.sendAll(c, more)
            #expect(Net.read(c, upTo: more.count, timeout: 30).0 == more)
        }
    }

    /// The heap itself: timers scheduled, moved and cancelled in a scrambled
    /// order fire once each, never before their time, in the order of their
    /// times; the cancelled ones never.
    @Test func loopTimersFireOnceInOrderAndCancelledOnesNever() throws {
        let loop = EventLoop.pool[EventLoop.pool.count - 1]
        struct Fired { var order: [Int] = []; var early = 0 }
        let fired = Mutex(Fired())
        let done = DispatchSemaphore(value: 0)
        let count = 400
        let expected = Mutex(Set<Int>())
        let dues = Mutex([Int: UInt64]())
        loop.async {
            var timers: [LoopTimer] = []
            var rng = SystemRandomNumberGenerator()
            for i in 0..<count {
                let t = LoopTimer(on: loop) {
                    let now = DispatchTime.now().uptimeNanoseconds
                    let due = dues.withLock { $0[i]! }
                    let all = fired.withLock { f in
                        f.order.append(i)
                        if now < due { f.early += 1 }
                        return f.order.count
                    }
                    if all == expected.withLock({ $0.count }) { done.signal() }
                }
                timers.append(t)
                let delay = Double(Int.random(in: 0..<150, using: &rng)) / 1000
                t.schedule(after: delay)
                dues.withLock { $0[i] = t.due }
            }
            var live = Set(0..<count)
            for i in stride(from: 0, to: count, by: 3) { timers[i].cancel(); live.remove(i) }
            for i in stride(from: 1, to: count, by: 5) {
                timers[i].schedule(after: Double(Int.random(in: 0..<150, using: &rng)) / 1000)
                dues.withLock { $0[i] = timers[i].due }
                live.insert(i)
            }
            expected.withLock { $0 = live }
            // The timers outlive this block: the heap holds them until they fire.
            withExtendedLifetime(timers) {}
        }
        #expect(done.wait(timeout: .now() + 60) == .success)
        // Any late extra firing would show up here too.
        loop.async { done.signal() }
        _ = done.wait(timeout: .now() + 60)
        let f = fired.withLock { $0 }
        let want = expected.withLock { $0 }
        #expect(f.order.count == want.count && Set(f.order) == want)
        #expect(f.early == 0)
        let times = dues.withLock { d in f.order.map { d[$0]! } }
        #expect(times == times.sorted())
    }
}
