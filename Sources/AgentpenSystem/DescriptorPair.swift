import CShim
import Glibc

extension Descriptor {
    /// The two ends of a pipe, each owned. (Frozen, so that other modules may
    /// take the ends apart.)
    @frozen public struct Pipe: ~Copyable, Sendable {
        public var read: Descriptor
        public var write: Descriptor
    }

    /// The two ends of a connected unix socket pair, each owned.
    @frozen public struct SocketPair: ~Copyable, Sendable {
        public var first: Descriptor
        public var second: Descriptor
    }

    /// pipe2(2), both ends close-on-exec (and nonblocking when asked).
    public static func pipe(nonBlocking: Bool = false) throws(SystemError) -> Pipe {
        let fds = try pair("pipe2") { ap_pipe2($0, AP_O_CLOEXEC | (nonBlocking ? AP_O_NONBLOCK : 0)) }
        return Pipe(read: Descriptor(fds.0), write: Descriptor(fds.1))
    }

    /// socketpair(2) of AF_UNIX SOCK_SEQPACKET, both ends close-on-exec.
    public static func socketPair() throws(SystemError) -> SocketPair {
        let fds = try pair("socketpair") { ap_socketpair_seqpacket($0) }
        return SocketPair(first: Descriptor(fds.0), second: Descriptor(fds.1))
    }

    /// The one place a pair is made: `make` fills two numbers and returns 0 or -errno.
    private static func pair(_ call: String, _ make: (UnsafeMutablePointer<Int32>) -> Int32) throws(SystemError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = fds.withUnsafeMutableBufferPointer { make($0.baseAddress!) }
        guard rc == 0 else { throw SystemError(call, result: Int(rc)) }
        return (fds[0], fds[1])
    }
}

/// Several open descriptors owned together, for where a list is needed (an
/// Array cannot hold a noncopyable `Descriptor`). Each is closed exactly once:
/// when the list goes out of scope, or when it is removed, unless it was handed
/// on with `take`.
public struct DescriptorList: ~Copyable, Sendable {
    /// The numbers, for calls that take them (poll, sendmsg). Valid while self lives.
    public private(set) var raw: [Int32]

    public init() { raw = [] }

    /// Takes ownership of every number in `raw`.
    public init(taking raw: [Int32]) {
        precondition(raw.allSatisfy { $0 >= 0 }, "DescriptorList of \(raw)")
        self.raw = raw
    }

    public var count: Int { raw.count }
    public var isEmpty: Bool { raw.isEmpty }

    public mutating func append(_ d: consuming Descriptor) { raw.append(d.take()) }

    /// Closes (and removes) those that `close` picks.
    public mutating func removeAll(where close: (Int32) -> Bool) {
        raw.removeAll { fd in
            guard close(fd) else { return false }
            _ = Glibc.close(fd)
            return true
        }
    }

    /// Hands every one on: the caller now owns the numbers.
    public mutating func take() -> [Int32] {
        defer { raw = [] }
        return raw
    }

    /// Hands the last on (the list no longer closes it): a list used as a stack.
    public mutating func removeLast() -> Descriptor { Descriptor(raw.removeLast()) }

    /// Hands the first on (the list no longer closes it).
    public mutating func removeFirst() -> Descriptor { Descriptor(raw.removeFirst()) }

    /// Hands the whole list on, leaving this one empty.
    public mutating func takeList() -> DescriptorList { DescriptorList(taking: take()) }

    /// Closes them all now rather than at the end of the scope.
    public mutating func closeAll() {
        for fd in take() { _ = Glibc.close(fd) }
    }

    deinit {
        for fd in raw { _ = Glibc.close(fd) }
    }
}
