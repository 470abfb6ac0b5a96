import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// A failed socket call: the one errno error type, under the proxy's old name.
public typealias SocketError = SystemError

/// "1.2.3.4:443" or "[::1]:443".
func endpoint(_ a: IPAddress, _ port: UInt16) -> String {
    a.isIPv4 ? "\(a):\(port)" : "[\(a)]:\(port)"
}

/// A socket just bound (and listening, for TCP), with the port it got.
struct BoundSocket: ~Copyable {
    let socket: Descriptor
    let port: UInt16
    consuming func take() -> Descriptor { socket }
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
    /// Closed again if any step fails.
    static func listenTCP(_ address: IPAddress, port: UInt16, backlog: Int32 = 1024) throws(SocketError) -> BoundSocket {
        let s = Descriptor(try check(ap_socket(Int32(address.bytes.count), 0), "socket"))
        try check(ap_set_reuseaddr(s.raw), "SO_REUSEADDR")
        if !address.isIPv4 { try check(ap_set_v6only(s.raw), "IPV6_V6ONLY") }
        _ = try address.bytes.withUnsafeBufferPointer { b throws(SocketError) in
            try check(ap_bind_ip(s.raw, b.baseAddress, Int32(b.count), port), "bind \(endpoint(address, port))")
        }
        try check(ap_listen(s.raw, backlog), "listen")
        let bound = try localPort(s.raw)
        return BoundSocket(socket: s, port: bound)
    }

    /// Closed again if any step fails.
    static func bindUDP(_ address: IPAddress, port: UInt16) throws(SocketError) -> BoundSocket {
        let s = Descriptor(try check(ap_socket(Int32(address.bytes.count), 1), "socket"))
        if !address.isIPv4 { try check(ap_set_v6only(s.raw), "IPV6_V6ONLY") }
        _ = try address.bytes.withUnsafeBufferPointer { b throws(SocketError) in
            try check(ap_bind_ip(s.raw, b.baseAddress, Int32(b.count), port), "bind udp \(endpoint(address, port))")
        }
        let bound = try localPort(s.raw)
        return BoundSocket(socket: s, port: bound)
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

/// Broken pipes must show up as EPIPE, not kill the process: splice(2) into a
/// socket has no MSG_NOSIGNAL. (Children started by agentpen's spawn primitive
/// get every signal reset, so this does not leak into the sandbox.)
func ignoreSIGPIPE() {
    signal(SIGPIPE, SIG_IGN)
}
