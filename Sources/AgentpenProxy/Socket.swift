import AgentpenPolicy
import CShim
import Dispatch
import Foundation

/// A failed socket call: what was attempted and the errno it got.
public struct SocketError: Error, CustomStringConvertible, Equatable {
    public var operation: String
    public var code: Int32
    public init(_ operation: String, _ code: Int32) {
        self.operation = operation
        self.code = code
    }
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// "1.2.3.4:443" or "[::1]:443".
func endpoint(_ a: IPAddress, _ port: UInt16) -> String {
    a.isIPv4 ? "\(a):\(port)" : "[\(a)]:\(port)"
}

enum Sock {
    /// Turns a shim result (-errno on failure) into a throw.
    @discardableResult
    static func check(_ r: Int32, _ op: String) throws(SocketError) -> Int32 {
        if r < 0 { throw SocketError(op, -r) }
        return r
    }

    static func parseAddress(_ text: String) throws(SocketError) -> IPAddress {
        guard let a = IPAddress(text) else { throw SocketError("address \(text)", EINVAL) }
        return a
    }

    /// A nonblocking listening TCP socket; returns it and the bound port.
    static func listenTCP(_ address: IPAddress, port: UInt16, backlog: Int32 = 1024) throws(SocketError) -> (fd: Int32, port: UInt16) {
        let fd = try check(ap_socket(Int32(address.bytes.count), 0), "socket")
        do {
            try check(ap_set_reuseaddr(fd), "SO_REUSEADDR")
            if !address.isIPv4 { try check(ap_set_v6only(fd), "IPV6_V6ONLY") }
            _ = try address.bytes.withUnsafeBufferPointer { b throws(SocketError) in
                try check(ap_bind_ip(fd, b.baseAddress, Int32(b.count), port), "bind \(endpoint(address, port))")
            }
            try check(ap_listen(fd, backlog), "listen")
            return (fd, try localPort(fd))
        } catch {
            close(fd)
            throw error
        }
    }

    static func bindUDP(_ address: IPAddress, port: UInt16) throws(SocketError) -> (fd: Int32, port: UInt16) {
        let fd = try check(ap_socket(Int32(address.bytes.count), 1), "socket")
        do {
            if !address.isIPv4 { try check(ap_set_v6only(fd), "IPV6_V6ONLY") }
            _ = try address.bytes.withUnsafeBufferPointer { b throws(SocketError) in
                try check(ap_bind_ip(fd, b.baseAddress, Int32(b.count), port), "bind udp \(endpoint(address, port))")
            }
            return (fd, try localPort(fd))
        } catch {
            close(fd)
            throw error
        }
    }

    static func localPort(_ fd: Int32) throws(SocketError) -> UInt16 {
        var buf = [UInt8](repeating: 0, count: 16)
        var port: UInt16 = 0
        try check(ap_sockname_ip(fd, 0, &buf, &port), "getsockname")
        return port
    }

    static func address(_ fd: Int32, peer: Bool) -> (IPAddress, UInt16)? {
        var buf = [UInt8](repeating: 0, count: 16)
        var port: UInt16 = 0
        let len = ap_sockname_ip(fd, peer ? 1 : 0, &buf, &port)
        guard len > 0, let a = IPAddress(bytes: Array(buf[0..<Int(len)])) else { return nil }
        return (a, port)
    }
}

/// An inactive-at-birth Dispatch source that can be switched on and off any
/// number of times and cancelled in any state. Dispatch crashes when a suspended
/// or never-activated source is released, so the bookkeeping lives here.
/// Use only from the queue the source targets.
/// `@unchecked Sendable`: `started`/`active`/`cancelled` mirror the source's
/// Dispatch state and are owned by `queue`; every change asserts it runs there.
/// Invariant: resume/suspend calls stay balanced (Dispatch traps otherwise).
final class Watch: @unchecked Sendable {
    let source: any DispatchSourceProtocol
    private let queue: DispatchQueue
    private var started = false
    private(set) var active = false
    private var cancelled = false

    init(_ source: any DispatchSourceProtocol, queue: DispatchQueue, group: DispatchGroup?,
         handler: @escaping @Sendable () -> Void) {
        self.source = source
        self.queue = queue
        source.setEventHandler(handler: handler)
        if let group {
            group.enter()
            source.setCancelHandler { group.leave() }
        }
    }

    static func read(_ fd: Int32, queue: DispatchQueue, group: DispatchGroup?, handler: @escaping @Sendable () -> Void) -> Watch {
        Watch(DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue), queue: queue, group: group, handler: handler)
    }

    static func write(_ fd: Int32, queue: DispatchQueue, group: DispatchGroup?, handler: @escaping @Sendable () -> Void) -> Watch {
        Watch(DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue), queue: queue, group: group, handler: handler)
    }

    func set(_ on: Bool) { on ? enable() : disable() }

    func enable() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !active, !cancelled else { return }
        active = true
        if started { source.resume() } else { started = true; source.activate() }
    }

    func disable() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard active, !cancelled else { return }
        active = false
        source.suspend()
    }

    func cancel() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !cancelled else { return }
        cancelled = true
        source.cancel()
        // A cancelled source still needs to run (to call its cancel handler and be freed).
        if !active {
            if started { source.resume() } else { started = true; source.activate() }
        }
    }
}

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

    static func connect(to address: IPAddress, port: UInt16, timeout: TimeInterval, queue: DispatchQueue,
                        completion: @escaping (Result<Int32, SocketError>) -> Void) {
        let d = Dialer(queue: queue)
        d.completion = completion
        queue.async { d.begin(address, port, timeout) }
    }

    private func begin(_ address: IPAddress, _ port: UInt16, _ timeout: TimeInterval) {
        dispatchPrecondition(condition: .onQueue(queue))
        let s = ap_socket(Int32(address.bytes.count), 0)
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
        let fd = self.fd
        let done: () -> Void = {
            if case .failure = result, fd >= 0 { close(fd) }
            completion(result)
        }
        if let w = watch {
            // The descriptor must outlive the source watching it: hand it on (or
            // close it) only after the cancellation went through.
            watch = nil
            let g = DispatchGroup()
            g.enter()
            w.source.setCancelHandler { g.leave() }
            w.cancel()
            g.notify(queue: queue, execute: done)
        } else {
            done()
        }
    }
}

/// Accepts connections on a listening socket and hands each one (nonblocking,
/// close-on-exec) to `onAccept` on the listener's queue.
/// `@unchecked Sendable`: `watch` is set once in `start` before the source is
/// enabled (on `queue`, via `queue.async`), then only used on `queue`.
final class Listener: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    private let queue: DispatchQueue
    private var watch: Watch?
    private let onAccept: (Int32, IPAddress?, UInt16) -> Void

    init(address: IPAddress, port: UInt16, queue: DispatchQueue,
         onAccept: @escaping (Int32, IPAddress?, UInt16) -> Void) throws(SocketError) {
        (fd, self.port) = try Sock.listenTCP(address, port: port)
        self.queue = queue
        self.onAccept = onAccept
    }

    func start() {
        let fd = self.fd
        let w = Watch.read(fd, queue: queue, group: nil) { [weak self] in self?.acceptSome() }
        w.source.setCancelHandler { close(fd) }
        watch = w
        queue.async { w.enable() }
    }

    private func acceptSome() {
        dispatchPrecondition(condition: .onQueue(queue))
        // Bounded, so one busy listener cannot hold the queue.
        for _ in 0..<64 {
            var addr = [UInt8](repeating: 0, count: 16)
            var len: Int32 = 0
            var port: UInt16 = 0
            let c = ap_accept_ip(fd, &addr, &len, &port)
            if c >= 0 {
                // Relayed bytes are already segmented by the sender: forward each
                // write at once instead of holding small ones back (Nagle) until
                // the peer's delayed ACK, which costs ~40 ms per TLS flight.
                _ = ap_set_nodelay(c)
                onAccept(c, IPAddress(bytes: Array(addr[0..<Int(len)])), port)
                continue
            }
            if c == -EMFILE || c == -ENFILE || c == -ENOBUFS || c == -ENOMEM {
                // Out of descriptors: the pending connection stays queued and the
                // source would fire in a tight loop; pause instead.
                guard let w = watch else { return }
                w.disable()
                queue.asyncAfter(deadline: .now() + 0.1) { w.enable() }
            }
            return
        }
    }

    func stop() {
        queue.async { [self] in
            watch?.cancel()
            watch = nil
        }
    }
}

/// Resolves a host name the way every other program on the host does
/// (getaddrinfo: /etc/hosts, nsswitch, the host's resolv.conf). Blocking.
public func systemResolve(_ name: String) -> [IPAddress] {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var res: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(name, nil, &hints, &res) == 0, let first = res else { return [] }
    defer { freeaddrinfo(first) }
    var out: [IPAddress] = []
    var p: UnsafeMutablePointer<addrinfo>? = first
    while let ai = p {
        if let sa = ai.pointee.ai_addr {
            if ai.pointee.ai_family == AF_INET {
                let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                let b = withUnsafeBytes(of: a) { Array($0) }
                if let ip = IPAddress(bytes: b), !out.contains(ip) { out.append(ip) }
            } else if ai.pointee.ai_family == AF_INET6 {
                let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                let b = withUnsafeBytes(of: a) { Array($0) }
                if let ip = IPAddress(bytes: b), !out.contains(ip) { out.append(ip) }
            }
        }
        p = ai.pointee.ai_next
    }
    return out
}

/// Broken pipes must show up as EPIPE, not kill the process: splice(2) into a
/// socket has no MSG_NOSIGNAL. (Children started by agentpen's spawn primitive
/// get every signal reset, so this does not leak into the sandbox.)
func ignoreSIGPIPE() {
    signal(SIGPIPE, SIG_IGN)
}
