import Dispatch
import Foundation
import Glibc
import Testing
@testable import AgentpenProxy

/// The proxy's own readiness loop (EventLoop, Watch), which replaced Dispatch's
/// read and write sources after they crashed under load ("Source finalized
/// twice", notes.md). Every wait here is on an event; the semaphores' timeouts
/// only stop a hung test, they never decide a pass.
@Suite struct WatchTests {
    /// A connected nonblocking unix stream pair.
    static func pair() -> (Int32, Int32) {
        var sv: [Int32] = [-1, -1]
        let r = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv)
        precondition(r == 0, "socketpair: \(errno)")
        return (sv[0], sv[1])
    }

    static func put(_ fd: Int32, _ text: String) {
        let n = text.utf8CString.withUnsafeBytes { send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
        precondition(n == text.utf8.count)
    }

    /// Only against a hang: a pass is never decided by time.
    static var hangGuard: DispatchTime { .now() + 120 }

    /// A watch that ran once and was then disabled is not run for new data;
    /// one left enabled is (the control, so the test can fail).
    @Test func aDisabledWatchIsNotRunAndAnEnabledOneIs() {
        for disable in [true, false] {
            let q = DispatchQueue(label: "watch.test")
            let (x, xPeer) = Self.pair(), (y, yPeer) = Self.pair()
            let xRuns = Locked(0)
            let seen = Locked(-1)
            let first = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
            let wx = Watch.read(x, queue: q, group: nil) {
                var b = [UInt8](repeating: 0, count: 16)
                _ = recv(x, &b, 16, Int32(MSG_DONTWAIT))
                if xRuns.withLock({ $0 += 1; return $0 }) == 1 { first.signal() }
            }
            let wy = Watch.read(y, queue: q, group: nil) {
                // x was made ready before y, on the same queue: an enabled x ran first.
                seen.withLock { $0 = xRuns.withLock { $0 } }
                done.signal()
            }
            q.sync { wx.enable() }
            Self.put(xPeer, "a")
            #expect(first.wait(timeout: Self.hangGuard) == .success)
            q.sync {
                if disable { wx.disable() }
                wy.enable()
            }
            Self.put(xPeer, "x")
            Self.put(yPeer, "y")
            #expect(done.wait(timeout: Self.hangGuard) == .success)
            q.sync { wx.cancel(); wy.cancel() }
            #expect(seen.withLock { $0 } == (disable ? 1 : 2), "disabled: \(disable)")
            for fd in [x, xPeer, y, yPeer] { close(fd) }
        }
    }

    /// Level-triggered: a handler that takes one byte per call is called again
    /// while bytes are left, and not after they are gone.
    @Test func aWatchRunsAgainWhileTheDescriptorStaysReady() {
        let q = DispatchQueue(label: "watch.test")
        let (x, peer) = Self.pair()
        let got = Locked("")
        let done = DispatchSemaphore(value: 0)
        let w = Watch.read(x, queue: q, group: nil) {
            var b: UInt8 = 0
            if recv(x, &b, 1, Int32(MSG_DONTWAIT)) == 1 {
                let s = got.withLock { $0.append(Character(UnicodeScalar(b))); return $0 }
                if s == "0123456789" { done.signal() }
            }
        }
        Self.put(peer, "0123456789")
        q.sync { w.enable() }
        #expect(done.wait(timeout: Self.hangGuard) == .success)
        q.sync { w.cancel() }
        #expect(got.withLock { $0 } == "0123456789")
        close(x); close(peer)
    }

    /// A hang-up is ready both ways: a read watch and a write watch on one
    /// descriptor both run (the relay's half-close leaves exactly this).
    @Test func aHangUpRunsTheReadAndTheWriteWatchOfOneDescriptor() {
        let q = DispatchQueue(label: "watch.test")
        let (x, peer) = Self.pair()
        let ran = Locked(Set<String>())
        let both = DispatchSemaphore(value: 0)
        @Sendable func note(_ what: String) { if ran.withLock({ $0.insert(what); return $0.count }) == 2 { both.signal() } }
        let r = Watch.read(x, queue: q, group: nil) { note("read") }
        let w = Watch.write(x, queue: q, group: nil) { note("write") }
        _ = shutdown(x, Int32(SHUT_WR))
        close(peer)
        q.sync { r.enable(); w.enable() }
        #expect(both.wait(timeout: Self.hangGuard) == .success)
        q.sync { r.disable(); w.disable() }
        q.sync { r.cancel(); w.cancel() }
        #expect(ran.withLock { $0 } == ["read", "write"])
        close(x)
    }

    /// After `cancel` the handler never runs again, even with a report already
    /// queued; the cancel handler and the group follow; the descriptor can be
    /// closed and its number reused by a new watch at once.
    @Test func aCancelledWatchNeverRunsAndItsNumberCanBeReused() {
        let q = DispatchQueue(label: "watch.test")
        let (x, peer) = Self.pair()
        let afterCancel = Locked(0)
        let cancelled = Locked(false)
        let isCancelled = Locked(false)
        let group = DispatchGroup()
        let w = Watch.read(x, queue: q, group: group, onCancel: { cancelled.withLock { $0 = true } }) {
            if isCancelled.withLock({ $0 }) { afterCancel.withLock { $0 += 1 } }
        }
        Self.put(peer, "ready")
        // Enabled and cancelled in one turn of the queue: the loop may already
        // have queued a report, which must find the watch gone.
        q.sync { w.enable(); isCancelled.withLock { $0 = true }; w.cancel() }
        #expect(group.wait(timeout: Self.hangGuard) == .success)
        #expect(cancelled.withLock { $0 })
        close(x)
        let (z, zPeer) = Self.pair()
        let reused = DispatchSemaphore(value: 0)
        let wz = Watch.read(z, queue: q, group: nil) {
            var b = [UInt8](repeating: 0, count: 8)
            _ = recv(z, &b, 8, Int32(MSG_DONTWAIT))
            reused.signal()
        }
        q.sync { wz.enable() }
        Self.put(zPeer, "z")
        #expect(reused.wait(timeout: Self.hangGuard) == .success)
        q.sync { wz.cancel() }
        #expect(afterCancel.withLock { $0 } == 0)
        close(z); close(zPeer); close(peer)
    }

    /// The pattern that crashed libdispatch (notes.md): a read and a write watch
    /// on one socket that reports EPOLLIN|EPOLLOUT|EPOLLHUP at once, the write
    /// watch disabled by its first run, both cancelled when the read sees the
    /// end, from several queues at a time. Every pair must end exactly once:
    /// each cancel handler once, no handler after cancel, every pair closed.
    @Test func readAndWriteWatchesOnHungUpSocketsEndExactlyOnce() {
        let pairs = 20_000, lanes = 8
        let queues = (0..<4).map { DispatchQueue(label: "watch.lane\($0)") }
        let cancels = Locked(0), late = Locked(0), ended = Locked(0), closed = Locked(0)
        let all = DispatchGroup()
        for lane in 0..<lanes {
            all.enter()
            DispatchQueue.global().async {
                let step = DispatchSemaphore(value: 0)
                for i in 0..<(pairs / lanes) {
                    let (x, y) = Self.pair()
                    let q = DispatchQueue(label: "watch.pair", target: queues[(lane + i) % queues.count])
                    let g = DispatchGroup()
                    let over = Locked(false)
                    let box = Locked<(Watch?, Watch?)>((nil, nil))
                    let w = Watch.write(x, queue: q, group: g, onCancel: { cancels.withLock { $0 += 1 } }) {
                        if over.withLock({ $0 }) { late.withLock { $0 += 1 } }
                        box.withLock { $0.1 }?.disable()
                    }
                    let r = Watch.read(x, queue: q, group: g, onCancel: { cancels.withLock { $0 += 1 } }) {
                        if over.withLock({ $0 }) { late.withLock { $0 += 1 }; return }
                        var b = [UInt8](repeating: 0, count: 64)
                        if recv(x, &b, 64, Int32(MSG_DONTWAIT)) == 0 {
                            over.withLock { $0 = true }
                            ended.withLock { $0 += 1 }
                            let (rw, ww) = box.withLock { $0 }
                            rw?.cancel(); ww?.cancel()
                        }
                    }
                    box.withLock { $0 = (r, w) }
                    g.notify(queue: q) {
                        close(x); close(y)
                        closed.withLock { $0 += 1 }
                        box.withLock { $0 = (nil, nil) }
                        step.signal()
                    }
                    _ = shutdown(x, Int32(SHUT_WR))
                    q.sync { r.enable(); w.enable() }
                    _ = shutdown(y, Int32(SHUT_WR))
                    if step.wait(timeout: Self.hangGuard) != .success { break }
                }
                all.leave()
            }
        }
        #expect(all.wait(timeout: Self.hangGuard) == .success)
        #expect(ended.withLock { $0 } == pairs)
        #expect(cancels.withLock { $0 } == 2 * pairs)
        #expect(late.withLock { $0 } == 0)
        #expect(closed.withLock { $0 } == pairs)
    }
}
