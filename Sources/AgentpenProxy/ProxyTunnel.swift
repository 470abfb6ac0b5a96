import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// Opens a tunnel through an HTTP CONNECT proxy on a socket already connected
/// to it: sends the request, then reads the reply header, peeked and then
/// consumed to its exact end, so that bytes the upstream sends right after it
/// (an ssh banner) stay queued for the relay. The completion runs once on
/// `loop`'s thread; the socket stays the caller's either way.
/// `@unchecked Sendable`: every mutable field is owned by `loop`'s thread (set in
/// `begin`, cleared in `finish`, each asserted to run there).
/// Invariant: the completion runs at most once, after the watch is gone.
final class ProxyTunnel: @unchecked Sendable {
    enum Outcome {
        /// A 2xx reply: the socket now carries the upstream's stream.
        case open(UpstreamProxy.Reply)
        /// Another reply: the proxy refused (its status line, sanitized).
        case refused(UpstreamProxy.Reply)
        /// No usable reply (closed, timed out, not HTTP, too long).
        case failed(String)
    }

    private let fd: Int32
    private let loop: EventLoop
    private var pending: [UInt8]
    private var watch: Watch?
    private var timer: LoopTimer?
    private var seen = 0
    private var completion: ((Outcome) -> Void)?

    private init(fd: Int32, request: [UInt8], loop: EventLoop) {
        self.fd = fd
        self.pending = request
        self.loop = loop
    }

    static func open(_ fd: Int32, request: [UInt8], timeout: TimeInterval, loop: EventLoop,
                     completion: @escaping (Outcome) -> Void) {
        let t = ProxyTunnel(fd: fd, request: request, loop: loop)
        t.completion = completion
        loop.async { t.begin(timeout) }
    }

    private func begin(_ timeout: TimeInterval) {
        loop.preconditionOnThread()
        let t = LoopTimer(on: loop) { [self] in finish(.failed("no reply from the proxy within \(Int(timeout)) s")) }
        t.schedule(after: timeout)
        timer = t
        send()
    }

    /// Writes what is left of the request; waits for room when the socket is full.
    private func send() {
        loop.preconditionOnThread()
        guard completion != nil else { return }
        while !pending.isEmpty {
            let n = pending.withUnsafeBytes { ap_send_nosignal(fd, $0.baseAddress, $0.count) }
            if n == -Int(EINTR) { continue }
            if n == -Int(EAGAIN) {
                return swapWatch(Watch.write(fd, on: loop) { [weak self] in self?.send() })
            }
            if n < 0 { return finish(.failed("cannot send CONNECT to the proxy: \(String(cString: strerror(Int32(-n))))")) }
            pending.removeFirst(n)
        }
        swapWatch(Watch.read(fd, on: loop) { [weak self] in self?.readable() })
    }

    private func swapWatch(_ w: Watch) {
        if let old = watch {
            old.cancel()
        }
        watch = w
        w.enable()
    }

    private func readable() {
        loop.preconditionOnThread()
        guard completion != nil else { return }
        let max = UpstreamProxy.maxReplySize
        var buf = [UInt8](repeating: 0, count: max)
        let got = Int(ap_recv_peek(fd, &buf, max))
        if got == -Int(EAGAIN) || got == -Int(EINTR) { return }
        if got < 0 { return finish(.failed("the proxy connection failed: \(String(cString: strerror(Int32(-got))))")) }
        if got == 0 { return finish(.failed("the proxy closed the connection without replying")) }
        guard let end = UpstreamProxy.replyHeaderEnd(buf[0..<got]) else {
            if got >= max { return finish(.failed("the proxy's reply header is longer than \(max) bytes")) }
            if got == seen, ap_peer_closed(fd) == 1 {
                return finish(.failed("the proxy closed the connection in the middle of its reply"))
            }
            seen = got
            // Peeked bytes stay queued: be woken only once more has arrived.
            _ = ap_set_rcvlowat(fd, Int32(got + 1))
            return
        }
        // Consume exactly the header: what follows is the upstream's.
        var header = [UInt8](repeating: 0, count: end)
        guard Glibc.read(fd, &header, end) == end else { return finish(.failed("short read of the proxy's reply")) }
        _ = ap_set_rcvlowat(fd, 1)
        let reply = UpstreamProxy.parseReply(header)
        if reply.status == nil { return finish(.failed("the proxy's reply is not HTTP: \(reply.statusLine)")) }
        finish(reply.isSuccess ? .open(reply) : .refused(reply))
    }

    private func finish(_ outcome: Outcome) {
        loop.preconditionOnThread()
        guard let completion else { return }
        self.completion = nil
        timer?.cancel()
        timer = nil
        _ = ap_set_rcvlowat(fd, 1)
        // The socket must outlive the watches on it: hand it back only
        // after their cancellation went through.
        watch?.cancel()
        watch = nil
        loop.later { completion(outcome) }
    }
}

/// `--check`'s try of the configured upstream proxy: its name resolved and a
/// TCP connection made to it (nothing sent). nil when it connected, else why not.
public func tryUpstreamProxy(_ up: UpstreamProxy, timeout: TimeInterval = 3) -> String? {
    let addresses = IPAddress(up.host).map { [$0] } ?? systemResolve(up.host)
    guard !addresses.isEmpty else { return "cannot resolve \(up.host)" }
    var failures: [String] = []
    for a in addresses {
        let done = DispatchSemaphore(value: 0)
        // nil: connected (the socket closed at once: nothing is sent).
        let outcome = Locked<String??>(.some("no answer"))
        Dialer.connect(to: a, port: up.port, timeout: timeout, loop: .shared) { r in
            switch consume r {
            case .success: outcome.withLock { $0 = .some(nil) }
            case .failure(let e): outcome.withLock { $0 = .some(e.description) }
            }
            done.signal()
        }
        done.wait()
        switch outcome.withLock({ $0 }) {
        case .some(nil): return nil
        case .some(.some(let why)): failures.append(why)
        case nil: failures.append("no answer")
        }
    }
    return failures.joined(separator: "; ")
}
