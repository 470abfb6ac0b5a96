import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// Connects a nonblocking TCP socket to one address with a deadline. The
/// completion runs once on `queue` with the connected socket (now the
/// caller's) or the error (the socket closed).
/// `@unchecked Sendable`: `socket`, `watch`, `timer` and `completion` are owned by
/// `queue` (set in `begin`, cleared in `finish`, both asserted to run there).
/// Invariant: the completion runs at most once.
final class Dialer: @unchecked Sendable {
    typealias Completion = (consuming Result<Descriptor, SocketError>) -> Void
    private let queue: DispatchQueue
    private var socket: Descriptor?
    private var watch: Watch?
    private var timer: DispatchSourceTimer?
    private var completion: Completion?

    private init(queue: DispatchQueue, socket: consuming Descriptor?) {
        self.queue = queue
        self.socket = socket
    }

    /// `socket`: connect this (nonblocking, unconnected) TCP socket instead of a new
    /// one, e.g. one made in the sandbox's namespace; it is the dialer's from here on.
    /// The dialer returned may be cancelled (on `queue`).
    @discardableResult
    static func connect(to address: IPAddress, port: UInt16, timeout: TimeInterval, queue: DispatchQueue,
                        socket: consuming Descriptor? = nil, completion: @escaping Completion) -> Dialer {
        let d = Dialer(queue: queue, socket: socket)
        d.completion = completion
        queue.async { d.begin(address, port, timeout) }
        return d
    }

    /// Gives up (on `queue`): the socket is closed before this returns, whether
    /// the connection was made or not, and the completion sees ECANCELED. Nothing
    /// after a completion.
    func cancel() {
        dispatchPrecondition(condition: .onQueue(queue))
        finish(SocketError("connect", ECANCELED))
    }

    private func begin(_ address: IPAddress, _ port: UInt16, _ timeout: TimeInterval) {
        dispatchPrecondition(condition: .onQueue(queue))
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
        watch = Watch.write(s, queue: queue, group: nil) { [self] in
            let e = ap_so_error(s)
            if e == 0 { finish(nil) }
            else { finish(SocketError("connect \(endpoint(address, port))", e < 0 ? -e : e)) }
        }
        watch?.enable()
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + timeout)
        t.setEventHandler { [self] in finish(SocketError("connect \(endpoint(address, port))", ETIMEDOUT)) }
        t.activate()
        timer = t
    }

    /// nil: connected.
    private func finish(_ error: SocketError?) {
        dispatchPrecondition(condition: .onQueue(queue))
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
