import AgentpenEvents
import AgentpenSystem
import CShim
import Glibc

/// The host end of the notifying filter (`SeccompFilter.loadNotifying`): the
/// listener descriptor the exec helper hands back, and the few calls that
/// answer it. Every answer is a refusal with an errno; nothing here can let a
/// call continue.
public struct SyscallListener: ~Copyable {
    private let descriptor: Descriptor
    /// The listener's number, for the calls that answer it. Valid while self lives.
    public var fd: Int32 { descriptor.raw }

    /// A pending call: who made it (a pid in agentpen's pid namespace, 0 when
    /// not visible there), its number, ABI and arguments.
    public struct Notification: Sendable {
        public var id: UInt64
        public var pid: Int32
        public var number: Int32
        public var arch: UInt32
        public var args: [UInt64]
    }

    public init(_ descriptor: consuming Descriptor) { self.descriptor = descriptor }

    /// The one-byte tag the listener travels with.
    static let tag: UInt8 = 0x4C   // "L"

    /// Receives the listener from the exec helper over `socket`; nil when the
    /// helper never sent one (the sandbox ended before it got that far).
    public static func receive(over socket: Int32) -> SyscallListener? {
        var extras = DescriptorList()
        return receive(over: socket, extras: &extras)
    }

    /// The most directories the exec helper sends with the listener (`watched`).
    public static let maxWatched = 8

    /// Receives the listener and the directory descriptors sent with it (`extras`).
    public static func receive(over socket: Int32, extras: inout DescriptorList) -> SyscallListener? {
        var tag: UInt8 = 0
        var fds = [Int32](repeating: -1, count: maxWatched + 2)
        var n: Int32 = 0
        var got: Int
        repeat { got = ap_recv_fds(socket, &tag, &fds, Int32(fds.count), &n) } while got == -Int(EINTR)
        guard got > 0, n >= 1 else { return nil }
        // Owned from here: whatever is not handed on is closed.
        var received = DescriptorList(taking: Array(fds[0..<Int(n)]))
        guard tag == Self.tag, Int(n) - 1 <= maxWatched else { return nil }
        let listener = received.removeFirst()
        extras = received.takeList()
        return SyscallListener(listener)
    }

    /// Sends `listener` to agentpen over `socket` (the exec helper's side),
    /// with the directories whose mounts agentpen is to watch.
    public static func send(_ listener: Int32, over socket: Int32, with watched: [Int32] = []) throws(SystemError) {
        var fds = [listener] + watched.prefix(maxWatched)
        var rc: Int
        repeat { rc = ap_send_fds(socket, Self.tag, &fds, Int32(fds.count)) } while rc == -Int(EINTR)
        if rc < 0 { throw SystemError("sendmsg", "the syscall listener", result: rc) }
        if rc == 0 { throw SystemError("sendmsg", "the syscall listener", errno: EPIPE) }
    }

    /// The tag the notifying filter's program travels with, agentpen to helper.
    static let programTag: UInt8 = 0x50   // "P"

    /// Sends the sealed program (`SeccompFilter.exportNotifying`) to the exec
    /// helper over `socket` (agentpen's side, right after the spawn).
    public static func sendProgram(_ program: Int32, over socket: Int32) throws(SystemError) {
        var fds = [program]
        var rc: Int
        repeat { rc = ap_send_fds(socket, programTag, &fds, 1) } while rc == -Int(EINTR)
        if rc < 0 { throw SystemError("sendmsg", "the syscall filter", result: rc) }
        if rc == 0 { throw SystemError("sendmsg", "the syscall filter", errno: EPIPE) }
    }

    /// Receives that program (the exec helper's side; close-on-exec, to be
    /// closed before the agent starts). Anything but one descriptor with the
    /// program's tag, or agentpen's end closed, is an error.
    public static func receiveProgram(over socket: Int32) throws(SystemError) -> Descriptor {
        var tag: UInt8 = 0
        var fds: [Int32] = [-1, -1]
        var n: Int32 = 0
        var got: Int
        repeat { got = ap_recv_fds(socket, &tag, &fds, Int32(fds.count), &n) } while got == -Int(EINTR)
        if got < 0 { throw SystemError("recvmsg", "the syscall filter", result: got) }
        var received = DescriptorList(taking: Array(fds[0..<Int(n)]))
        guard got > 0 else { throw SystemError("recvmsg", "agentpen sent no syscall filter", errno: EPIPE) }
        guard tag == programTag, received.count == 1 else {
            received.closeAll()
            throw SystemError("recvmsg", "not the syscall filter", errno: EPROTO)
        }
        return received.removeFirst()
    }

    /// agentpen's answer once it has placed its marks: one byte.
    public static func acknowledge(over socket: Int32) {
        var byte: UInt8 = 0x41
        while write(socket, &byte, 1) < 0 && errno == EINTR {}
    }

    /// Waits for that byte (or for agentpen's end of the socket to close).
    public static func awaitAcknowledgement(over socket: Int32) {
        var byte: UInt8 = 0
        while read(socket, &byte, 1) < 0 && errno == EINTR {}
    }

    public enum Wait: Sendable, Equatable {
        case call
        /// The kernel's hang-up: no process uses the filter any more (each one
        /// it was loaded into, and every descendant, has exited).
        case noProcessLeft
        case failed
    }

    /// Blocks until a call waits, no process uses the filter any more, or the wait fails.
    public func waitForCall() -> Wait {
        switch ap_notif_wait(fd, -1) {
        case 1: .call
        case 0: .noProcessLeft
        default: .failed
        }
    }

    /// The waiting call; nil if it went away meanwhile (its process was killed).
    public func receive() -> Notification? {
        var n = ap_notification()
        guard ap_notif_recv(fd, &n) == 0 else { return nil }
        let a = n.args
        return Notification(id: n.id, pid: Int32(bitPattern: n.pid), number: n.nr, arch: n.arch,
                            args: [a.0, a.1, a.2, a.3, a.4, a.5])
    }

    /// Answers the call with `errno`. False when the call is gone (its process
    /// died while we looked at it): what was read about the pid may be stale.
    @discardableResult
    public func refuse(_ id: UInt64, errno: Int32) -> Bool { ap_notif_refuse(fd, id, errno) == 0 }
}

/// Who a pid is, from the host's /proc: its comm and executable as text (the
/// sandbox chooses both freely; bytes that are not UTF-8 read as U+FFFD). They
/// are escaped once, where they are printed (`TerminalText`) or logged
/// (`Event.jsonLine`), like every other name from the sandbox.
public enum ProcessIdentity {
    public static func read(_ pid: Int32) -> SyscallTally.Process {
        guard pid > 0 else { return SyscallTally.Process(pid: pid, comm: "?", exe: "?") }
        var comm = "?"
        if let file = Descriptor.open("/proc/\(pid)/comm", O_RDONLY | O_CLOEXEC) {
            var buf = [UInt8](repeating: 0, count: 64)
            let n = Glibc.read(file.raw, &buf, buf.count)
            file.close()
            if n > 0 {
                var bytes = buf[..<n]
                if bytes.last == 0x0A { bytes = bytes.dropLast() }
                comm = String(decoding: bytes, as: UTF8.self)
            }
        }
        var exe = "?"
        var path = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &path, path.count)
        if n > 0 { exe = String(decoding: path[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return SyscallTally.Process(pid: pid, comm: comm, exe: exe)
    }
}
