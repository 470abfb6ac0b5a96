import CShim
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// A readiness loop: one epoll set and one thread. A watch on a queue gets each
/// readiness report handed to its queue (all such watches of the process are on
/// `shared`); a watch on a loop is run by the loop's thread. It replaces Dispatch's read and write sources, which have a race on
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
/// The loop is also an executor: work posted with `async` runs on its thread,
/// in order, and `LoopTimer`s fire there from one deadline heap (the epoll
/// wait's timeout, no timer thread). A watch made with `on: loop` runs its
/// handler on the loop's thread itself, with no hand-over to a worker: the
/// proxy's connections (SNIProxy's, the forwarder's, --publish's, their
/// dialers and relays) live on a loop, so a readiness report costs one
/// thread's wake-up instead of two, and a deadline none; the listeners accept
/// on a loop too, and the connection stays on its listener's loop. Nothing on a loop's
/// thread may block (no getaddrinfo, no blocking connect, no `sync` onto a
/// queue): it would stall every connection of that loop.
///
/// Invariant (under `state`'s lock): `entries[fd]` lists exactly the live
/// watches on fd; `armed` is a superset of what the kernel may report next
/// for it, empty after a report was taken.
final class EventLoop: Sendable {
    static let shared = EventLoop()

    /// The loops connections run on: `shared` and as many more as make one per
    /// core (at least two). Each listener takes the next one, and the
    /// connections it accepts live there.
    static let pool: [EventLoop] = [shared] + (1..<max(2, ProcessInfo.processInfo.activeProcessorCount)).map { _ in EventLoop() }
    private static let poolCounter = Mutex(0)

    /// The loop a new connection lives on (round-robin).
    static func next() -> EventLoop {
        pool[poolCounter.withLock { $0 &+= 1; return $0 & Int.max } % pool.count]
    }

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

    /// Work posted from any thread; `sleeping`: the loop's thread is (about to
    /// be) in epoll_wait, so a post from elsewhere must signal `wakeFD`.
    private struct Posted {
        var work: [@Sendable () -> Void] = []
        var sleeping = false
        var signalled = false
    }
    private let posted = Mutex(Posted())
    private let wakeFD: Int32
    /// The token of `wakeFD`'s registration: no watch's (descriptor numbers are
    /// below 2^31, generations start at 1).
    private static let wakeToken: UInt64 = 0
    /// The loop's thread, once it runs (pthread_self).
    private let loopThread = Atomic<UInt>(0)
    /// Only ever touched on the loop's thread.
    private let own = ThreadOwned()

    /// The deadline heap (a binary min-heap on `LoopTimer.at`).
    /// `@unchecked Sendable`: only the loop's thread reads or writes it.
    private final class ThreadOwned: @unchecked Sendable {
        var heap: [LoopTimer] = []
    }

    private init() {
        let ep = ap_epoll_create()
        // Without an epoll set the proxy cannot watch a single socket: nothing it
        // could do would be confined traffic, so this is fatal, loudly.
        precondition(ep >= 0, "agentpen: epoll_create1 failed: \(String(cString: strerror(-ep)))")
        epoll = ep
        let wake = ap_eventfd()
        precondition(wake >= 0, "agentpen: eventfd failed: \(String(cString: strerror(-wake)))")
        wakeFD = wake
        precondition(ap_epoll_arm(ep, wake, 1, UInt32(AP_READY_READ), Self.wakeToken) == 0, "agentpen: cannot watch the loop's eventfd")
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

    // MARK: - The executor

    /// True on this loop's thread.
    var isCurrent: Bool { loopThread.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Traps off the loop's thread (the state of what lives on the loop is
    /// unguarded anywhere else).
    func preconditionOnThread(file: StaticString = #fileID, line: UInt = #line) {
        precondition(isCurrent, "agentpen: not on the event loop's thread", file: file, line: line)
    }

    /// Runs `work` on the loop's thread, after what was posted before it. From
    /// the loop's own thread it runs after the current report's handler.
    func async(_ work: @escaping @Sendable () -> Void) {
        let signal = posted.withLock { p in
            p.work.append(work)
            guard p.sleeping, !p.signalled else { return false }
            p.signalled = true
            return true
        }
        if signal { _ = ap_eventfd_signal(wakeFD) }
    }

    /// `async` for work made on the loop's thread that stays there: it need not
    /// be Sendable, as it never crosses to another thread.
    func later(_ work: @escaping () -> Void) {
        preconditionOnThread()
        nonisolated(unsafe) let work = work
        async { work() }
    }

    // MARK: - Deadlines (on the loop's thread)

    fileprivate func insert(_ t: LoopTimer) {
        var h = own.heap
        own.heap = []
        t.index = h.count
        h.append(t)
        siftUp(&h, t.index)
        own.heap = h
    }

    fileprivate func delete(_ t: LoopTimer) {
        guard t.index >= 0 else { return }
        var h = own.heap
        own.heap = []
        let i = t.index
        let last = h.removeLast()
        t.index = -1
        if i < h.count {
            h[i] = last
            last.index = i
            siftDown(&h, i)
            siftUp(&h, last.index)
        }
        own.heap = h
    }

    private func siftUp(_ h: inout [LoopTimer], _ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard h[i].at < h[parent].at else { break }
            h.swapAt(i, parent)
            h[i].index = i
            h[parent].index = parent
            i = parent
        }
    }

    private func siftDown(_ h: inout [LoopTimer], _ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < h.count && h[l].at < h[m].at { m = l }
            if r < h.count && h[r].at < h[m].at { m = r }
            guard m != i else { break }
            h.swapAt(i, m)
            h[i].index = i
            h[m].index = m
            i = m
        }
    }

    /// Fires every timer that is due; returns the nanoseconds to the next one
    /// (-1: none).
    private func fireDue() -> Int64 {
        while let first = own.heap.first {
            let now = DispatchTime.now().uptimeNanoseconds
            guard first.at <= now else { return Int64(first.at - now) }
            delete(first)
            first.fire()
        }
        return -1
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

    /// Reports to hand on. A watch on a queue gets its handler there; one on
    /// the loop runs right here when this is the loop's thread taking a report
    /// (`inline`), else later on the loop's thread (never inside another
    /// handler: `setEnabled` and `ran` may be called from one).
    private func deliver(_ watches: [Watch], inline: Bool = false) {
        for w in watches {
            if let q = w.queue { q.async { w.fire() } }
            else if inline { w.fire() }
            else { async { w.fire() } }
        }
    }

    // MARK: - The loop's thread

    private func run() {
        // Signals are for the main thread's handlers, never this one.
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)
        loopThread.store(UInt(pthread_self()), ordering: .relaxed)
        // A short slice: this thread runs briefly on each wake-up, for every
        // connection of the loop, and a connection waits while it waits for a
        // CPU. Without it, on a busy machine the fair scheduler counts all the
        // loop's work against one thread and lets it wait behind a compiler's
        // slice (~130 µs per wake-up measured, against ~45 µs for the threads
        // of the old hand-over design). At the same nice: nothing privileged.
        errno = 0
        let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        if errno == 0 { _ = ap_sched_slice(nice, 100_000) }
        let max = 64
        var ready = [UInt32](repeating: 0, count: max)
        var tokens = [UInt64](repeating: 0, count: max)
        while true {
            // What was posted so far, then due deadlines, then the reports.
            // Work posted meanwhile waits for the next round (a relay that
            // yields after a burst posts itself: the others' reports come
            // first), with a wait that does not block.
            let work = posted.withLock { p in
                defer { p.work = [] }
                return p.work
            }
            for w in work { w() }
            var timeout = fireDue()
            let more = posted.withLock { p in
                if p.work.isEmpty { p.sleeping = true }
                return !p.work.isEmpty
            }
            if more { timeout = 0 }
            let n = ap_epoll_wait(epoll, &ready, &tokens, Int32(max), timeout)
            posted.withLock { $0.sleeping = false }
            if n == -EINTR { continue }
            precondition(n >= 0, "agentpen: epoll_wait failed: \(String(cString: strerror(-n)))")
            let tell: [Watch] = state.withLock { s in
                var tell: [Watch] = []
                for i in 0..<Int(n) {
                    if tokens[i] == Self.wakeToken {
                        // Drained and armed again only here, so a post after
                        // this wakes the next wait.
                        _ = ap_eventfd_drain(wakeFD)
                        posted.withLock { $0.signalled = false }
                        _ = ap_epoll_arm(epoll, wakeFD, 0, UInt32(AP_READY_READ), Self.wakeToken)
                        continue
                    }
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
            deliver(tell, inline: true)
        }
    }
}

/// A deadline kept by an `EventLoop`: its work runs on the loop's thread once
/// the time has come, unless cancelled or moved first. Made, scheduled and
/// cancelled on the loop's thread only.
/// `@unchecked Sendable`: every field is touched on the loop's thread only
/// (asserted in each method).
final class LoopTimer: @unchecked Sendable {
    let loop: EventLoop
    /// Due time, DispatchTime's uptime nanoseconds.
    fileprivate var at: UInt64 = 0
    /// Position in the loop's heap; -1 when not scheduled.
    fileprivate var index = -1
    private let work: () -> Void

    init(on loop: EventLoop, _ work: @escaping () -> Void) {
        self.loop = loop
        self.work = work
    }

    /// Fires `seconds` from now (moved if already scheduled).
    func schedule(after seconds: TimeInterval) {
        loop.preconditionOnThread()
        if index >= 0 { loop.delete(self) }
        at = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9)
        loop.insert(self)
    }

    /// When it is due (DispatchTime's uptime nanoseconds), once scheduled.
    var due: UInt64 { at }

    /// Never fires (until scheduled again).
    func cancel() {
        loop.preconditionOnThread()
        loop.delete(self)
    }

    fileprivate func fire() { work() }
}
