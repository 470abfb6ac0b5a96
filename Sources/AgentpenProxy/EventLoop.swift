import CShim
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// The proxy's readiness loop: one epoll set and one thread for every watched
/// descriptor of the process, handing each readiness report to the watch's own
/// queue. It replaces Dispatch's read and write sources, which have a race on
/// Linux (notes.md, "a libdispatch race under load"): on EPOLLIN|EPOLLHUP the
/// manager thread and a worker can both finalize one source ("Source finalized
/// twice", a trap, or a use after free). Here nothing is finalized
/// asynchronously: `cancel` takes the watch out of the set before it returns.
///
/// Each descriptor is in the set at most once, with the union of its enabled
/// watches' interests, one-shot: after a report the kernel says nothing more
/// about it (hang-up included) until a watch re-arms it. So a hung-up socket
/// whose watches are disabled can never spin this thread, and a watch is never
/// reported twice before its handler ran. Every report carries the
/// descriptor's registration token (descriptor and generation), so a late
/// report for a descriptor number that was since closed and reused is dropped
/// rather than delivered to the new owner.
///
/// Invariant (under `state`'s lock): `entries[fd]` lists exactly the live
/// watches on fd; `armed` is a superset of what the kernel may report next
/// for it, empty after a report was taken.
final class EventLoop: Sendable {
    static let shared = EventLoop()

    struct Interest: OptionSet, Sendable {
        let rawValue: UInt32
        static let read = Interest(rawValue: UInt32(AP_READY_READ))
        static let write = Interest(rawValue: UInt32(AP_READY_WRITE))
    }

    /// One watch's state; its handler runs only when enabled, not cancelled,
    /// and not already `pending` (reported, its handler queued or running).
    private struct Registration {
        let watch: Watch
        var enabled = false
        var pending = false
    }

    private struct Entry {
        let generation: UInt32
        var watches: [ObjectIdentifier: Registration] = [:]
        var registered = false
        var armed: Interest = []
        /// The kernel refused the descriptor (closed, or not pollable): its
        /// watches were told once and are not armed again.
        var broken = false
    }

    private struct State {
        var entries: [Int32: Entry] = [:]
        var nextGeneration: UInt32 = 0
    }

    private let epoll: Int32
    private let state = Mutex(State())

    private init() {
        let ep = ap_epoll_create()
        // Without an epoll set the proxy cannot watch a single socket: nothing it
        // could do would be confined traffic, so this is fatal, loudly.
        precondition(ep >= 0, "agentpen: epoll_create1 failed: \(String(cString: strerror(-ep)))")
        epoll = ep
        // Its own detached thread for the process's life (a pthread: Foundation's
        // Thread would link Foundation and its calendar data into every process).
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
            loop.run()
            return nil
        }, box)
        precondition(rc == 0, "agentpen: cannot start the event loop's thread: \(String(cString: strerror(rc)))")
        pthread_detach(thread)
    }

    // MARK: - Called by Watch, on the watch's queue

    func add(_ w: Watch) {
        state.withLock { s in
            let id = ObjectIdentifier(w)
            if s.entries[w.fd] == nil {
                s.nextGeneration &+= 1
                s.entries[w.fd] = Entry(generation: s.nextGeneration)
            }
            s.entries[w.fd]!.watches[id] = Registration(watch: w)
        }
    }

    func setEnabled(_ w: Watch, _ on: Bool) {
        let tell: [Watch] = state.withLock { s in
            let id = ObjectIdentifier(w)
            guard var r = s.entries[w.fd]?.watches[id], r.enabled != on else { return [] }
            r.enabled = on
            s.entries[w.fd]!.watches[id] = r
            // Disabling is lazy: a report for a disabled watch is simply not
            // passed on, and the one-shot set keeps quiet after it.
            return on && !r.pending ? arm(w.fd, &s) : []
        }
        deliver(tell)
    }

    /// Out of the set before this returns: the descriptor may be closed or
    /// handed on right after.
    func remove(_ w: Watch) {
        state.withLock { s in
            guard var e = s.entries[w.fd], e.watches.removeValue(forKey: ObjectIdentifier(w)) != nil else { return }
            if e.watches.isEmpty {
                if e.registered { _ = ap_epoll_remove(epoll, w.fd) }
                s.entries[w.fd] = nil
            } else {
                s.entries[w.fd] = e
            }
        }
    }

    /// The handler may run: enabled and still registered. Clears `pending` when not.
    func mayRun(_ w: Watch) -> Bool {
        state.withLock { s in
            let id = ObjectIdentifier(w)
            guard var r = s.entries[w.fd]?.watches[id] else { return false }
            if r.enabled { return true }
            r.pending = false
            s.entries[w.fd]!.watches[id] = r
            return false
        }
    }

    /// After the handler ran: waits for the next report if still enabled.
    func ran(_ w: Watch) {
        let tell: [Watch] = state.withLock { s in
            let id = ObjectIdentifier(w)
            guard var r = s.entries[w.fd]?.watches[id] else { return [] }
            r.pending = false
            s.entries[w.fd]!.watches[id] = r
            return r.enabled ? arm(w.fd, &s) : []
        }
        deliver(tell)
    }

    // MARK: - Inside the lock

    /// Brings the kernel's interest in fd up to what its waiting watches want.
    /// Returns the watches to tell at once when the kernel refused the descriptor.
    private func arm(_ fd: Int32, _ s: inout State) -> [Watch] {
        guard var e = s.entries[fd], !e.broken else { return [] }
        var want: Interest = []
        for r in e.watches.values where r.enabled && !r.pending { want.insert(r.watch.interest) }
        guard !want.isEmpty, !e.armed.isSuperset(of: want) else { return [] }
        let token = UInt64(e.generation) << 32 | UInt64(UInt32(bitPattern: fd))
        var r = ap_epoll_arm(epoll, fd, e.registered ? 0 : 1, want.rawValue, token)
        // The table and the set disagree only if the descriptor was closed and
        // its number reused behind a live watch; follow the kernel.
        if r == -EEXIST { r = ap_epoll_arm(epoll, fd, 0, want.rawValue, token) }
        else if r == -ENOENT { r = ap_epoll_arm(epoll, fd, 1, want.rawValue, token) }
        if r == 0 {
            e.registered = true
            e.armed = want
            s.entries[fd] = e
            return []
        }
        // EBADF, EPERM: tell the waiting watches once, so their handlers meet the
        // error on their next call and end; never again (that would spin).
        e.broken = true
        var tell: [Watch] = []
        for (id, var reg) in e.watches where reg.enabled && !reg.pending {
            reg.pending = true
            e.watches[id] = reg
            tell.append(reg.watch)
        }
        s.entries[fd] = e
        return tell
    }

    private func deliver(_ watches: [Watch]) {
        for w in watches { w.queue.async { w.fire() } }
    }

    // MARK: - The loop's thread

    private func run() {
        // Signals are for the main thread's handlers, never this one.
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)
        let max = 64
        var ready = [UInt32](repeating: 0, count: max)
        var tokens = [UInt64](repeating: 0, count: max)
        while true {
            let n = ap_epoll_wait(epoll, &ready, &tokens, Int32(max))
            if n == -EINTR { continue }
            precondition(n >= 0, "agentpen: epoll_wait failed: \(String(cString: strerror(-n)))")
            let tell: [Watch] = state.withLock { s in
                var tell: [Watch] = []
                for i in 0..<Int(n) {
                    let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: tokens[i]))
                    let generation = UInt32(truncatingIfNeeded: tokens[i] >> 32)
                    // Dropped: a report for a registration that is gone.
                    guard var e = s.entries[fd], e.generation == generation else { continue }
                    e.armed = []
                    let got = Interest(rawValue: ready[i])
                    for (id, var r) in e.watches where r.enabled && !r.pending && !got.isDisjoint(with: r.watch.interest) {
                        r.pending = true
                        e.watches[id] = r
                        tell.append(r.watch)
                    }
                    s.entries[fd] = e
                    // Watches on fd that this report did not concern wait on.
                    tell += arm(fd, &s)
                }
                return tell
            }
            deliver(tell)
        }
    }
}
