import AgentpenPolicy
import CShim
import Dispatch
import Foundation

/// Connects a nonblocking TCP socket to one address with a deadline. The
/// completion runs once on `queue` with the connected descriptor (now the
/// caller's) or the error.
/// `@unchecked Sendable`: `fd`, `watch`, `timer` and `completion` are owned by
/// `queue` (set in `begin`, cleared in `finish`, both asserted to run there).
/// Invariant: the completion runs at most once.
final class Dialer: @unchecked Sendable {
    private let queue: DispatchQueue
    private var fd: Int32 = -1
    private var watch: Watch?
    private var timer: DispatchSourceTimer?
    private var completion: ((Result<Int32, SocketError>) -> Void)?

    private init(queue: DispatchQueue) { self.queue = queue }

    /// `socket`: connect this (nonblocking, unconnected) TCP socket instead of a new
    /// one, e.g. one made in the sandbox's namespace; it is the dialer's from here on.
    static func connect(to address: IPAddress, port: UInt16, timeout: TimeInterval, queue: DispatchQueue,
                        socket: Int32? = nil, completion: @escaping (Result<Int32, SocketError>) -> Void) {
        let d = Dialer(queue: queue)
        d.completion = completion
        queue.async { d.begin(address, port, timeout, socket) }
    }

    private func begin(_ address: IPAddress, _ port: UInt16, _ timeout: TimeInterval, _ given: Int32?) {
        dispatchPrecondition(condition: .onQueue(queue))
        let s = given ?? ap_socket(Int32(address.bytes.count), 0)
        guard s >= 0 else { return finish(.failure(SocketError("socket", -s))) }
        fd = s
        _ = ap_set_nodelay(s)
        let r = address.bytes.withUnsafeBufferPointer { ap_connect_ip(s, $0.baseAddress, Int32($0.count), port) }
        if r == 0 { return finish(.success(s)) }
        guard r == -EINPROGRESS else { return finish(.failure(SocketError("connect \(endpoint(address, port))", -r))) }
        watch = Watch.write(s, queue: queue, group: nil) { [self] in
            let e = ap_so_error(s)
            if e == 0 { finish(.success(s)) }
            else { finish(.failure(SocketError("connect \(endpoint(address, port))", e < 0 ? -e : e))) }
        }
        watch?.enable()
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + timeout)
        t.setEventHandler { [self] in finish(.failure(SocketError("connect \(endpoint(address, port))", ETIMEDOUT))) }
        t.activate()
        timer = t
    }

    private func finish(_ result: Result<Int32, SocketError>) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let completion else { return }
        self.completion = nil
        timer?.cancel()
        timer = nil
        // Out of the event loop once cancelled: the descriptor may be handed on
        // (or closed) at once.
        watch?.cancel()
        watch = nil
        if case .failure = result, fd >= 0 { close(fd) }
        completion(result)
    }
}
