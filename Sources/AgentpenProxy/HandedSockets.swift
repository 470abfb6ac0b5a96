import AgentpenPolicy
import AgentpenSystem
import CShim
import FoundationEssentials
import Glibc

/// The sockets the namespace helper makes inside the sandbox's namespace for the
/// direct hop and hands to agentpen (SCM_RIGHTS over a unix socket pair), and the
/// check agentpen makes on each before serving it. The expected set is
/// `NetworkPlan.directSockets`.
public enum HandedSockets {
    /// Makes every socket of `plan` (in the calling process's network namespace).
    /// What it made is closed when one fails.
    public static func make(_ plan: [NetworkPlan.SocketSpec]) throws -> DescriptorList {
        var made = DescriptorList()
        for spec in plan {
            switch spec.kind {
            case .tcpListener: made.append(try Sock.listenTCP(spec.address, port: spec.port, backlog: 4096).take())
            case .udp: made.append(try Sock.bindUDP(spec.address, port: spec.port).take())
            }
        }
        return made
    }

    /// The catch-all's listeners (`NetworkPlan.verifyCatchAll`): 127.0.0.1 on a port
    /// the kernel picks, and the same port on ::1 when the namespace has IPv6
    /// loopback, appended to `made`. Returns the port.
    public static func makeCatchAll(into made: inout DescriptorList) throws -> UInt16 {
        let v4 = try Sock.listenTCP(.loopbackV4, port: 0)
        let port = v4.port
        made.append(v4.take())
        if let v6 = try? Sock.listenTCP(.loopbackV6, port: port) { made.append(v6.take()) }
        return port
    }

    /// What one received descriptor is: nil when it is no IP socket.
    public static func describe(_ fd: Int32) -> NetworkPlan.SocketSpec? {
        var type: Int32 = 0, listening: Int32 = 0
        guard ap_socket_kind(fd, &type, &listening) == 0, let (address, port) = Sock.address(fd, peer: false) else {
            return nil
        }
        if type == 1 && listening == 1 { return .init(.tcpListener, address, port) }
        if type == 2 && listening == 0 { return .init(.udp, address, port) }
        return nil
    }

    /// Sends `fds` with one tag byte (the receiver gets copies; these stay
    /// the caller's); true when it went.
    public static func send(_ sock: Int32, _ fds: borrowing DescriptorList) -> Bool {
        fds.raw.withUnsafeBufferPointer { ap_send_fds(sock, 1, $0.baseAddress, Int32($0.count)) } == 1
    }

    /// Receives one message of descriptors; nil at end of stream (the helper
    /// failed before sending) or on error.
    public static func receive(_ sock: Int32, max: Int) -> DescriptorList? {
        var fds = [Int32](repeating: -1, count: max)
        var n: Int32 = 0
        var tag: UInt8 = 0
        var r: Int
        repeat { r = fds.withUnsafeMutableBufferPointer { ap_recv_fds(sock, &tag, $0.baseAddress, Int32(max), &n) } }
        while r == -Int(EINTR)
        let received = DescriptorList(taking: Array(fds[0..<Swift.max(0, Int(n))]))
        guard r == 1, tag == 1 else { return nil }
        return received
    }
}
