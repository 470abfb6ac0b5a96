import AgentpenPolicy
import FoundationEssentials
import Glibc

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
