import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// Connects a nonblocking TCP socket to one address with a deadline. The
/// completion runs once on `loop`'s thread with the connected socket (now the
/// caller's) or the error (the socket closed).
/// `@unchecked Sendable`: `socket`, `watch`, `timer` and `completion` are owned by
/// `loop`'s thread (set in `begin`, cleared in `finish`, both asserted to run there).
/// Invariant: the completion runs at most once.
final class Dialer: @unchecked Sendable {
    typealias Completion = (consuming Result<Descriptor, SocketError>) -> Void
    private let loop: EventLoop
    private var socket: Descriptor?
    private var watch: Watch?
    private var timer: LoopTimer?
    private var completion: Completion?

    private init(loop: EventLoop, socket: consuming Descriptor?) {
        self.loop = loop
        self.socket = socket
    }

    /// `socket`: connect this (nonblocking, unconnected) TCP socket instead of a new
    /// one, e.g. one made in the sandbox's namespace; it is the dialer's from here on.
    /// The dialer returned may be cancelled (on `loop`'s thread). The connect
    /// starts after this returns (posted, so the completion never runs before
    /// the caller holds the dialer).
    @discardableResult
    static func connect(to address: IPAddress, port: UInt16, timeout: TimeInterval, loop: EventLoop,
                        socket: consuming Descriptor? = nil, completion: @escaping Completion) -> Dialer {
        let d = Dialer(loop: loop, socket: socket)
        d.completion = completion
        loop.async { d.begin(address, port, timeout) }
        return d
    }

    /// Gives up (on `loop`'s thread): the socket is closed before this returns, whether
    /// the connection was made or not, and the completion sees ECANCELED. Nothing
    /// after a completion.
    func cancel() {
        loop.preconditionOnThread()
        finish(SocketError("connect", ECANCELED))
    }

    private func begin(_ address: IPAddress, _ port: UInt16, _ timeout: TimeInterval) {
        loop.preconditionOnThread()
        // Cancelled before it began: no socket, no packet.
        guard completion != nil else { return }
        if socket == nil {
            let made = ap_socket(Int32(address.bytes.count), 0)
            guard made >= 0 else { return finish(SocketError("socket", -made)) }
            socket = Descriptor(made)
        }
        guard let s = socket?.raw else { return }
        _ = ap_set_nodelay(s)
        let r = address.bytes.withUnsafeBufferPointer { ap_connect_ip(s, $0.baseAddress, Int32($0.count), port) }
        if r == 0 { return finish(nil) }
        guard r == -EINPROGRESS else { return finish(SocketError("connect \(endpoint(address, port))", -r)) }
        watch = Watch.write(s, on: loop) { [self] in
            let e = ap_so_error(s)
            if e == 0 { finish(nil) }
            else { finish(SocketError("connect \(endpoint(address, port))", e < 0 ? -e : e)) }
        }
        watch?.enable()
        let t = LoopTimer(on: loop) { [self] in finish(SocketError("connect \(endpoint(address, port))", ETIMEDOUT)) }
        t.schedule(after: timeout)
        timer = t
    }

    /// nil: connected.
    private func finish(_ error: SocketError?) {
        loop.preconditionOnThread()
        guard let completion else { return }
        self.completion = nil
        timer?.cancel()
        timer = nil
        // Out of the event loop once cancelled: the descriptor may be handed on
        // (or closed) at once.
        watch?.cancel()
        watch = nil
        if let error {
            if let s = socket?.raw { _ = ap_set_linger_reset(s) }
            socket = nil
            completion(.failure(error))
        } else if let s = socket.take() {
            completion(.success(s))
        }
    }
}
