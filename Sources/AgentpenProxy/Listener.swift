import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// Accepts connections on a listening socket and hands each one (nonblocking,
/// close-on-exec, owned by the callee) to `onAccept` on `loop`'s thread, where
/// the accept itself runs (its watch is the loop's own: no hand-over per
/// connection; the proxy's connections then live on the same loop).
/// `@unchecked Sendable`: `socket` is set at init and taken on the loop's
/// thread by `start` (posted); `watch` and `pause` are only touched there.
/// The listening socket is the watch's from `start` (closed once it is
/// cancelled), the listener's before (closed at deinit if it never started).
final class Listener: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    let loop: EventLoop
    private var socket: Descriptor?
    private var watch: Watch?
    /// Accepting paused while out of descriptors.
    private var pause: LoopTimer?
    private let onAccept: (consuming Descriptor, IPAddress?, UInt16) -> Void

    init(address: IPAddress, port: UInt16, loop: EventLoop,
         onAccept: @escaping (consuming Descriptor, IPAddress?, UInt16) -> Void) throws(SocketError) {
        let bound = try Sock.listenTCP(address, port: port)
        fd = bound.socket.raw
        self.port = bound.port
        socket = bound.take()
        self.loop = loop
        self.onAccept = onAccept
    }

    /// Takes over a listening socket made elsewhere (inside the sandbox's
    /// namespace, handed over by the namespace helper); it is made nonblocking.
    init(adopting socket: consuming Descriptor, loop: EventLoop,
         onAccept: @escaping (consuming Descriptor, IPAddress?, UInt16) -> Void) throws(SocketError) {
        try Sock.check(ap_set_nonblocking(socket.raw), "O_NONBLOCK")
        fd = socket.raw
        port = (try? Sock.localPort(socket.raw)) ?? 0
        self.socket = .some(socket)
        self.loop = loop
        self.onAccept = onAccept
    }

    func start() {
        loop.async { [self] in
            guard watch == nil, let socket = socket.take() else { return }
            let w = Watch.read(owning: socket, on: loop) { [weak self] in self?.acceptSome() }
            watch = w
            w.enable()
        }
    }

    /// Accepts up to `acceptBatch` queued connections; returns how many it took.
    @discardableResult
    private func acceptSome() -> Int {
        loop.preconditionOnThread()
        // Bounded, so one busy listener cannot hold the loop.
        for taken in 0..<Self.acceptBatch {
            var addr = [UInt8](repeating: 0, count: 16)
            var len: Int32 = 0
            var port: UInt16 = 0
            let c = ap_accept_ip(fd, &addr, &len, &port)
            if c >= 0 {
                // Relayed bytes are already segmented by the sender: forward each
                // write at once instead of holding small ones back (Nagle) until
                // the peer's delayed ACK, which costs ~40 ms per TLS flight.
                _ = ap_set_nodelay(c)
                onAccept(Descriptor(c), IPAddress(bytes: Array(addr[0..<Int(len)])), port)
                continue
            }
            if c == -EMFILE || c == -ENFILE || c == -ENOBUFS || c == -ENOMEM {
                // Out of descriptors: the pending connection stays queued and the
                // watch would fire in a tight loop; pause instead.
                guard let w = watch else { return taken }
                w.disable()
                if pause == nil { pause = LoopTimer(on: loop) { [weak self] in self?.watch?.enable() } }
                pause?.schedule(after: 0.1)
            }
            return taken
        }
        return Self.acceptBatch
    }

    private static let acceptBatch = 64

    /// Stops listening; `draining`: first accepts every connection already queued
    /// in the kernel (bounded: 64 batches), so that none is closed unseen. The
    /// catch-all needs this: a connection the agent made just before it ended is
    /// a refused flow still to be reported. Posted to the loop: work posted
    /// there after this runs after the drain.
    func stop(draining: Bool = false) {
        loop.async { [self] in
            if draining {
                for _ in 0..<64 { if acceptSome() < Self.acceptBatch { break } }
            }
            pause?.cancel()
            watch?.cancel()
            watch = nil
        }
    }
}
