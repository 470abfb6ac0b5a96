import AgentpenEvents
import AgentpenPolicy
import Foundation
import Glibc

/// Blocking loopback sockets for tests; every call is bounded by a timeout.
enum Net {
    static let ignorePipe: Void = { signal(SIGPIPE, SIG_IGN) }()

    static func setTimeouts(_ fd: Int32, seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func loopback(_ port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = UInt32(0x7f000001).bigEndian
        return a
    }

    static func connect(_ port: UInt16, timeout: Double = 10) throws -> Int32 {
        _ = ignorePipe
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NetError.sys("socket", errno) }
        setTimeouts(fd, seconds: timeout)
        var a = loopback(port)
        let r = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { let e = errno; close(fd); throw NetError.sys("connect", e) }
        return fd
    }

    /// A listening socket on 127.0.0.1 with an ephemeral port.
    static func listen() throws -> (Int32, UInt16) {
        _ = ignorePipe
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = loopback(0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard r == 0, Glibc.listen(fd, 128) == 0 else { throw NetError.sys("bind/listen", errno) }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, UInt16(bigEndian: a.sin_port))
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendAll(fd, $0) }
    }

    static func sendAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < buf.count {
            let n = send(fd, buf.baseAddress! + off, buf.count - off, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw NetError.sys("send", errno)
            }
            off += n
        }
    }

    enum End: Equatable { case eof, reset, timeout, error(Int32) }

    /// Reads until end of stream, error, `limit` bytes or the deadline.
    static func read(_ fd: Int32, upTo limit: Int = .max, timeout: Double = 10) -> ([UInt8], End?) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        let deadline = DispatchTime.now() + timeout
        while out.count < limit {
            if DispatchTime.now() > deadline { return (out, .timeout) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let pr = poll(&p, 1, 200)
            if pr == 0 { continue }
            let n = recv(fd, &buf, min(buf.count, limit - out.count), Int32(MSG_DONTWAIT))
            if n > 0 { out += buf[0..<n]; continue }
            if n == 0 { return (out, .eof) }
            if errno == EAGAIN || errno == EINTR { continue }
            return (out, errno == ECONNRESET ? .reset : .error(errno))
        }
        return (out, nil)
    }

    static func shutdownWrite(_ fd: Int32) { shutdown(fd, Int32(SHUT_WR)) }

    static func resetClose(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }

    enum NetError: Error { case sys(String, Int32) }
}

/// A TCP server on 127.0.0.1 that runs `handler` for each connection on its own
/// thread (test scale only) and counts connections.
final class TestServer: @unchecked Sendable {
    let port: UInt16
    private let fd: Int32
    private let state = NSLock()
    private var _accepted = 0
    private var stopped = false

    init(handler: @escaping @Sendable (Int32) -> Void) throws {
        (fd, port) = try Net.listen()
        let fd = self.fd
        Thread.detachNewThread { [self] in
            while true {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 100) <= 0 {
                    if isStopped { close(fd); return }
                    continue
                }
                let c = accept(fd, nil, nil)
                if c < 0 { continue }
                state.lock(); _accepted += 1; state.unlock()
                Net.setTimeouts(c, seconds: 20)
                Thread.detachNewThread { handler(c) }
            }
        }
    }

    private var isStopped: Bool { state.lock(); defer { state.unlock() }; return stopped }
    var accepted: Int { state.lock(); defer { state.unlock() }; return _accepted }
    func stop() { state.lock(); stopped = true; state.unlock() }

    /// Echoes everything back; passes the end of stream on; reports what it got.
    static func echo(record: (@Sendable ([UInt8]) -> Void)? = nil, keep: Int = 4096) throws -> TestServer {
        try TestServer { c in
            var first: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(c, &buf, buf.count, 0)
                if n <= 0 { break }
                if first.count < keep { first += buf[0..<min(n, keep - first.count)] }
                if (try? buf.withUnsafeBytes({ try Net.sendAll(c, UnsafeRawBufferPointer(rebasing: $0[0..<n])) })) == nil { break }
            }
            record?(first)
            shutdown(c, Int32(SHUT_WR))
            close(c)
        }
    }
}

/// Collects events and lets a test wait for one.
final class EventCapture: EventSink, @unchecked Sendable {
    private let lock = NSLock()
    private var events: [Event] = []

    func record(_ event: Event) {
        lock.lock(); events.append(event); lock.unlock()
    }

    var all: [Event] { lock.lock(); defer { lock.unlock() }; return events }

    /// Bounded against a hang only: an event that comes returns at once.
    func wait(timeout: Double = 30, _ match: (Event) -> Bool) -> Event? {
        let deadline = DispatchTime.now() + timeout
        while DispatchTime.now() < deadline {
            if let e = all.first(where: match) { return e }
            usleep(10_000)
        }
        return nil
    }
}

/// Counts resolver calls.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func bump() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

/// Waits until `cond` holds, bounded against a hang only (monotonic clock).
func eventually(timeout: Double = 30, _ cond: () -> Bool) -> Bool {
    let deadline = DispatchTime.now() + timeout
    while DispatchTime.now() < deadline {
        if cond() { return true }
        usleep(10_000)
    }
    return cond()
}
