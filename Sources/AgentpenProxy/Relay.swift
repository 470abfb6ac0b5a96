import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

struct RelayConfig: Sendable {
    var idleTimeout: TimeInterval
    var pipeSize: Int
}

/// Moves bytes both ways between two connected nonblocking sockets until both
/// directions have ended, either side fails, or nothing moved for the idle
/// timeout. Each direction splices through its own pipe (falling back to a small
/// user-space buffer if no pipe can be had), so bytes stay in the kernel. All
/// state lives on one event loop's thread; its watches run the pumps there,
/// so there is no thread per connection and a slow peer only ever stalls its own direction.
/// `@unchecked Sendable`: all mutable state (`dirs`, `timer`, `closed`,
/// `onClose`) is owned by `loop`'s thread; `start` and `stop` only hop onto it and every
/// other method asserts it runs there. Invariant: once `closed`, no watch runs
/// a pump again and both descriptors are closed after every watch is gone.
final class Relay: @unchecked Sendable {
    enum End: Equatable, Sendable {
        case finished
        case idle
        case failed(String)
        case stopped
    }

    struct Stats: Sendable, Equatable {
        /// Bytes from the first socket to the second, and back.
        var forward = 0
        var backward = 0
    }

    private final class Direction {
        let src: Int32
        let dst: Int32
        /// The splice pipe, owned; nil when none could be had (the buffer is used).
        var pipe: Descriptor.Pipe?
        /// `pipe`'s numbers (-1 without one), lent to splice; valid while it is set.
        var pipeR: Int32 = -1
        var pipeW: Int32 = -1
        /// Bytes the pipe (or buffer) can take.
        var capacity = 0
        var buffer: UnsafeMutableRawPointer?
        var bufStart = 0
        var bufEnd = 0
        /// Bytes read from `src` and not yet written to `dst`.
        var inFlight = 0
        var eof = false
        var done = false
        var bytes = 0
        /// The pipe was offered a bigger size once already.
        var grown = false
        var readWatch: Watch?
        var writeWatch: Watch?

        init(src: Int32, dst: Int32) {
            self.src = src
            self.dst = dst
        }

        static let bufferSize = 16 * 1024

        /// Source to pipe/buffer: bytes moved, 0 at end of stream, or -errno.
        func fill() -> Int {
            let n: Int
            if pipeR >= 0 {
                n = Int(ap_splice(src, pipeW, capacity - inFlight, AP_SPLICE_F_MOVE | AP_SPLICE_F_NONBLOCK))
            } else {
                if buffer == nil { buffer = .allocate(byteCount: Self.bufferSize, alignment: 16) }
                let r = Glibc.read(src, buffer! + bufEnd, Self.bufferSize - bufEnd)
                if r < 0 { return -Int(errno) }
                bufEnd += r
                n = r
            }
            if n > 0 && n < Self.quickAckBelow { quickAck(src) }
            return n
        }

        /// Reads smaller than this acknowledge at once (see `quickAck`).
        static let quickAckBelow = 64 * 1024

        /// Sends the ACK for what was just read now instead of after the delayed-ACK
        /// timer. A relay never answers on the socket it reads from, so there is no
        /// reply for the ACK to ride on; and a sender that uses Nagle's algorithm
        /// (pasta's spliced and tap-side host sockets have no TCP_NODELAY) holds its
        /// next small segment until this ACK arrives: ~40 ms on every TLS flight
        /// that spans two writes (client Finished, then the request). The kernel
        /// falls back to delayed ACKs once the socket sends, so this is set after
        /// each small read; bulk reads do not need it.
        private func quickAck(_ fd: Int32) {
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, &one, socklen_t(MemoryLayout<Int32>.size))
        }

        /// Pipe/buffer to destination: bytes moved or -errno.
        func drain() -> Int {
            if pipeR >= 0 {
                return Int(ap_splice(pipeR, dst, inFlight, AP_SPLICE_F_MOVE | AP_SPLICE_F_NONBLOCK))
            }
            let n = Int(ap_send_nosignal(dst, buffer! + bufStart, bufEnd - bufStart))
            if n > 0 {
                bufStart += n
                if bufStart == bufEnd {
                    // An idle tunnel holds no user-space buffer.
                    bufStart = 0; bufEnd = 0
                    buffer?.deallocate(); buffer = nil
                }
            }
            return n
        }

        var room: Int { pipeR >= 0 ? capacity - inFlight : Self.bufferSize - bufEnd }

        func release() {
            pipeR = -1; pipeW = -1
            pipe = nil
            buffer?.deallocate(); buffer = nil
        }
    }

    let loop: EventLoop
    private let a: Int32
    private let b: Int32
    /// The two sockets' owners: dropped (closed) once no watch is left on them.
    private var ownedA: Descriptor?
    private var ownedB: Descriptor?
    private let config: RelayConfig
    private var dirs: [Direction] = []
    private var timer: LoopTimer?
    private var lastActivity: UInt64 = DispatchTime.now().uptimeNanoseconds
    private var closed = false
    private var onClose: ((End, Stats) -> Void)?

    /// Takes ownership of both sockets; they are closed when the relay ends.
    init(_ a: consuming Descriptor, _ b: consuming Descriptor, loop: EventLoop, config: RelayConfig,
         onClose: @escaping (End, Stats) -> Void) {
        self.a = a.raw
        self.b = b.raw
        ownedA = .some(a)
        ownedB = .some(b)
        self.loop = loop
        self.config = config
        self.onClose = onClose
    }

    func start() { loop.async { self.setUp() } }

    /// `start` for a caller already on the loop's thread: the relay is set up, and what
    /// both sockets already hold is moved, before this returns (no hop, so the
    /// ClientHello goes upstream at once).
    func startHere() {
        loop.preconditionOnThread()
        setUp()
    }

    /// Ends the relay from outside (proxy shutdown). Safe to call more than once.
    func stop() { loop.async { self.teardown(.stopped, reset: false) } }

    private func setUp() {
        loop.preconditionOnThread()
        guard !closed else { return }
        dirs = [Direction(src: a, dst: b), Direction(src: b, dst: a)]
        for (i, d) in dirs.enumerated() {
            if let p = try? Descriptor.pipe(nonBlocking: true) {
                d.pipeR = p.read.raw; d.pipeW = p.write.raw
                d.capacity = Int(max(ap_get_pipe_size(p.write.raw), 4096))
                d.pipe = consume p
            }
            d.readWatch = Watch.read(d.src, on: loop) { [weak self] in self?.pump(i) }
            d.writeWatch = Watch.write(d.dst, on: loop) { [weak self] in self?.pump(i) }
        }
        timer = LoopTimer(on: loop) { [weak self] in self?.idleCheck() }
        scheduleIdle(after: config.idleTimeout)
        pump(0)
        pump(1)
    }

    private func scheduleIdle(after seconds: TimeInterval) {
        timer?.schedule(after: max(seconds, 0.001))
    }

    private func idleCheck() {
        loop.preconditionOnThread()
        guard !closed else { return }
        let idleFor = Double(DispatchTime.now().uptimeNanoseconds - lastActivity) / 1e9
        if idleFor >= config.idleTimeout {
            teardown(.idle, reset: false)
        } else {
            // Traffic only stamps a time; the timer moves here, not per byte.
            scheduleIdle(after: config.idleTimeout - idleFor)
        }
    }

    private func pump(_ i: Int) {
        loop.preconditionOnThread()
        guard !closed else { return }
        let d = dirs[i]
        guard !d.done else { return }
        var progressed = true
        var rounds = 0
        // Bounded so one fast stream yields its thread to others now and then.
        while progressed && rounds < 32 {
            rounds += 1
            progressed = false
            if d.inFlight > 0 {
                let n = d.drain()
                if n > 0 {
                    d.inFlight -= n; d.bytes += n; progressed = true
                } else if n != -Int(EAGAIN) {
                    return fail(i, "write: \(errnoName(n))")
                }
            }
            if d.inFlight == 0 && d.eof {
                d.done = true
                d.readWatch?.disable()
                d.writeWatch?.disable()
                // Half-close: pass the end of stream on and keep the other way open.
                _ = ap_shutdown_write(d.dst)
                if dirs.allSatisfy(\.done) { teardown(.finished, reset: false) }
                return
            }
            if d.room == 0 && !d.grown { grow(d) }
            if !d.eof && d.room > 0 {
                let n = d.fill()
                if n > 0 {
                    d.inFlight += n; progressed = true
                } else if n == 0 {
                    d.eof = true; progressed = true
                } else if n != -Int(EAGAIN) {
                    return fail(i, "read: \(errnoName(n))")
                }
            }
            if progressed { lastActivity = DispatchTime.now().uptimeNanoseconds }
        }
        if progressed {
            d.readWatch?.disable()
            d.writeWatch?.disable()
            loop.async { [weak self] in self?.pump(i) }
            return
        }
        // Waiting on exactly one thing: the destination to drain what is in
        // flight, or the source to deliver more. (Not both: splicing into a pipe
        // that still has byte room can fail with EAGAIN when its page slots are
        // used up, one per socket buffer fragment, so a read watch on a
        // readable source with a part-full pipe could spin.)
        d.writeWatch?.set(d.inFlight > 0)
        d.readWatch?.set(d.inFlight == 0 && !d.eof)
    }

    /// A pipe that filled up carries bulk data: a bigger one means fewer wake-ups.
    /// Done only then, because pipe memory counts against a per-user quota
    /// (fs.pipe-user-pages-soft) that idle tunnels should not use up. The kernel
    /// may refuse; the current size is fine then.
    private func grow(_ d: Direction) {
        d.grown = true
        guard d.pipeW >= 0, config.pipeSize > d.capacity else { return }
        let sized = ap_set_pipe_size(d.pipeW, Int32(config.pipeSize))
        if sized > 0 { d.capacity = Int(sized) }
    }

    private func errnoName(_ n: Int) -> String { String(cString: strerror(Int32(-n))) }

    private func fail(_ i: Int, _ why: String) {
        let side = i == 0 ? "first→second" : "second→first"
        // Pass a reset on, so the other peer learns the stream broke instead of
        // seeing a clean end.
        teardown(.failed("\(side) \(why)"), reset: true)
    }

    private func teardown(_ end: End, reset: Bool) {
        loop.preconditionOnThread()
        guard !closed else { return }
        closed = true
        timer?.cancel()
        timer = nil
        if reset {
            _ = ap_set_linger_reset(a)
            _ = ap_set_linger_reset(b)
        }
        for d in dirs {
            d.readWatch?.cancel()
            d.writeWatch?.cancel()
        }
        let stats = Stats(forward: dirs.first?.bytes ?? 0, backward: dirs.last?.bytes ?? 0)
        let onClose = self.onClose
        self.onClose = nil
        // Descriptors are closed only after every watch on them is gone (each
        // is out of the loop's set already; this runs after their cancels' work).
        loop.later { [self] in
            for d in dirs {
                d.readWatch = nil
                d.writeWatch = nil
                d.release()
            }
            ownedA = nil
            ownedB = nil
            onClose?(end, stats)
        }
    }
}
