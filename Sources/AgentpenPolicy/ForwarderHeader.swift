/// The line the in-namespace forwarder (pasta gateway hop) writes on each
/// connection to the host proxy before the sandbox's bytes: which address and
/// port the sandbox dialled inside and the name that address stands for, with the
/// run's token (the sandbox can reach the proxy's port too, but does not know it).
///
///     AGENTPEN/1 <token> <local address> <local port> <name or ->\n
///
/// The proxy takes no decision from it beyond what it would from the accepted
/// socket's own address on the direct hop: the name must still pass the allowlist.
public struct ForwarderHeader: Equatable, Sendable {
    public static let maxSize = 320
    public var local: IPAddress
    public var port: UInt16
    public var name: String?

    public init(local: IPAddress, port: UInt16, name: String?) {
        self.local = local; self.port = port; self.name = name
    }

    /// The line, newline included.
    public func line(token: String) -> [UInt8] {
        Array("AGENTPEN/1 \(token) \(local) \(port) \(name ?? "-")\n".utf8)
    }

    /// The header without its newline, or nil when it is malformed or the token
    /// differs (compared in time independent of where it differs).
    public static func parse(_ bytes: [UInt8], token: String) -> ForwarderHeader? {
        guard bytes.count < maxSize, bytes.allSatisfy({ $0 >= 0x21 && $0 < 0x7f || $0 == 0x20 }) else { return nil }
        let words = String(decoding: bytes, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 5, words[0] == "AGENTPEN/1", !token.isEmpty else { return nil }
        let given = Array(words[1].utf8), want = Array(token.utf8)
        guard given.count == want.count else { return nil }
        var diff: UInt8 = 0
        for (a, b) in zip(given, want) { diff |= a ^ b }
        guard diff == 0, let local = IPAddress(String(words[2])),
              words[3].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let port = UInt16(words[3]), port > 0 else { return nil }
        if words[4] == "-" { return ForwarderHeader(local: local, port: port, name: nil) }
        // The name is one the helper handed out; it must still look like one.
        guard let p = try? HostPattern(String(words[4])), !p.isWildcard else { return nil }
        return ForwarderHeader(local: local, port: port, name: p.name)
    }
}
