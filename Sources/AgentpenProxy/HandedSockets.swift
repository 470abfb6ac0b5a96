import AgentpenPolicy
import CShim
import Foundation

/// The sockets the namespace helper makes inside the sandbox's namespace for the
/// direct hop and hands to agentpen (SCM_RIGHTS over a unix socket pair), and the
/// check agentpen makes on each before serving it. The expected set is
/// `NetworkPlan.directSockets`.
public enum HandedSockets {
    /// Makes every socket of `plan` (in the calling process's network namespace).
    /// Closes what it made when one fails.
    public static func make(_ plan: [NetworkPlan.SocketSpec]) throws -> [Int32] {
        var made: [Int32] = []
        do {
            for spec in plan {
                switch spec.kind {
                case .tcpListener: made.append(try Sock.listenTCP(spec.address, port: spec.port, backlog: 4096).fd)
                case .udp: made.append(try Sock.bindUDP(spec.address, port: spec.port).fd)
                }
            }
        } catch {
            made.forEach { close($0) }
            throw error
        }
        return made
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

    /// Sends `fds` with one tag byte; true when it went.
    public static func send(_ sock: Int32, _ fds: [Int32]) -> Bool {
        fds.withUnsafeBufferPointer { ap_send_fds(sock, 1, $0.baseAddress, Int32($0.count)) } == 1
    }

    /// Receives one message of descriptors; nil at end of stream (the helper
    /// failed before sending) or on error.
    public static func receive(_ sock: Int32, max: Int) -> [Int32]? {
        var fds = [Int32](repeating: -1, count: max)
        var n: Int32 = 0
        var tag: UInt8 = 0
        var r: Int
        repeat { r = fds.withUnsafeMutableBufferPointer { ap_recv_fds(sock, &tag, $0.baseAddress, Int32(max), &n) } }
        while r == -Int(EINTR)
        guard r == 1, tag == 1 else { return nil }
        return Array(fds[0..<Int(n)])
    }
}
