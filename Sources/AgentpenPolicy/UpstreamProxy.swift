/// An HTTP CONNECT proxy the host-side proxy dials upstream through (a corporate
/// proxy). Only the global config may name one (`[proxy] url`, `no_proxy`):
/// never the environment (a project's activation script can set HTTPS_PROXY)
/// and never a project file. Through it, the proxy resolves the name and
/// chooses the address: agentpen's address vetting (private ranges,
/// `--allow-private`) cannot apply there, and every description says so.
///
/// The credentials live only here and in the request bytes sent to the proxy:
/// `description` and `redactedURL` never hold them.
public struct UpstreamProxy: Sendable, Equatable, CustomStringConvertible {
    /// A name or an IP literal (without brackets), as given.
    public let host: String
    public let port: UInt16
    /// Percent-decoded; nil when the URL has none.
    let username: String?
    let password: String?
    /// Names dialled directly (`name` exactly, `.suffix` every name below it), lower case.
    public let noProxy: [String]

    public var hasCredentials: Bool { username != nil }

    /// What a configured upstream proxy changes, said wherever the proxy is shown
    /// (`agentpen config`, `--dry-run`, `--check`).
    public static let vettingNote = "the upstream proxy resolves each name and vets the final address, not agentpen: "
        + "--allow-private and the refusal of private, loopback and link-local addresses cannot be checked "
        + "for connections through it (no_proxy names are dialled and vetted by agentpen as usual)"

    public enum Invalid: Error, Equatable, CustomStringConvertible {
        case scheme
        case noPort
        case badPort
        case badHost
        case path
        case badEscape
        case badNoProxy(String)

        /// Never quotes the URL: it may hold a password.
        public var description: String {
            switch self {
            case .scheme: "the proxy URL must start with http:// (a TLS connection to the proxy is not supported)"
            case .noPort: "the proxy URL needs a port (http://HOST:PORT)"
            case .badPort: "the proxy URL's port must be a number from 1 to 65535"
            case .badHost: "the proxy URL's host must be a name or an IP address ([v6] in brackets)"
            case .path: "the proxy URL takes no path, query or fragment (http://[USER:PASSWORD@]HOST:PORT)"
            case .badEscape: "the proxy URL's user or password has a bad %-escape"
            case .badNoProxy(let s):
                "\(s.debugDescription): a no_proxy entry is a host name (exactly that name) or .suffix (every name below it); "
                    + "addresses and ranges do not apply (agentpen dials names only)"
            }
        }
    }

    /// `http://[USER[:PASSWORD]@]HOST:PORT[/]`.
    public init(url: String, noProxy: [String] = []) throws(Invalid) {
        guard url.hasPrefix("http://") else { throw .scheme }
        var rest = Substring(url.dropFirst("http://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { throw .path }
        var user: String?, pass: String?
        if let at = rest.lastIndex(of: "@") {
            let info = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = info.firstIndex(of: ":") {
                user = try Self.percentDecoded(info[..<colon])
                pass = try Self.percentDecoded(info[info.index(after: colon)...])
            } else {
                user = try Self.percentDecoded(info)
            }
        }
        // HOST:PORT, HOST being [v6] or a name / IPv4 address.
        let hostPart: Substring, portPart: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .badHost }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else { throw .noPort }
            portPart = after.dropFirst()
            guard let a = IPAddress(String(hostPart)), !a.isIPv4 else { throw .badHost }
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw .noPort }
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
            guard Self.isHostName(hostPart) else { throw .badHost }
        }
        guard !portPart.isEmpty else { throw .noPort }
        guard portPart.count <= 5, portPart.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let p = UInt16(portPart), p > 0 else {
            throw .badPort
        }
        var names: [String] = []
        for entry in noProxy {
            let e = entry.lowercased()
            let name = e.hasPrefix(".") ? Substring(e.dropFirst()) : Substring(e)
            guard Self.isHostName(name), IPAddress(String(name)) == nil, name.contains(where: \.isLetter) else {
                throw .badNoProxy(entry)
            }
            names.append(e)
        }
        host = String(hostPart)
        port = p
        username = user
        password = pass
        self.noProxy = names
    }

    /// Letters, digits, '-' and '.', non-empty labels (a name or an IPv4 address).
    static func isHostName(_ s: Substring) -> Bool {
        guard !s.isEmpty, s.count <= 253 else { return false }
        guard s.unicodeScalars.allSatisfy({ $0.isASCII && (("a"..."z").contains($0) || ("A"..."Z").contains($0)
            || ("0"..."9").contains($0) || $0 == "-" || $0 == ".") }) else { return false }
        return !s.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty)
    }

    static func percentDecoded(_ s: Substring) throws(Invalid) -> String {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == UInt8(ascii: "%") else { out.append(b); continue }
            guard bytes.count >= 2, let hi = Self.hexValue(bytes.popFirst()!), let lo = Self.hexValue(bytes.popFirst()!) else {
                throw .badEscape
            }
            out.append(hi << 4 | lo)
        }
        guard let text = String(validating: out, as: UTF8.self), !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
            throw .badEscape
        }
        return text
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 48...57: b - 48
        case 65...70: b - 55
        case 97...102: b - 87
        default: nil
        }
    }

    /// The URL with any credentials replaced by `***`.
    public var redactedURL: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "http://" + (hasCredentials ? "***@" : "") + "\(h):\(port)"
    }

    public var description: String { redactedURL }

    /// `host:port` (`[v6]:port`), as events name the proxy.
    public var endpoint: String { (host.contains(":") ? "[\(host)]" : host) + ":\(port)" }

    /// Whether `name` is dialled directly (no_proxy): `name` exactly, or below a `.suffix`.
    public func bypasses(_ name: String) -> Bool {
        var n = name.lowercased()
        if n.hasSuffix(".") { n.removeLast() }
        return noProxy.contains { e in e.hasPrefix(".") ? n.hasSuffix(e) && n.count > e.count : n == e }
    }

    /// The request agentpen sends once connected to the proxy. `name` is an
    /// allowed name, so letters, digits, '-', '_' and '.' only (the SNI and DNS
    /// parsers refuse the rest); anything else, which would let the sandbox write
    /// its own header lines to the proxy, gives nil.
    public func connectRequest(name: String, port: UInt16) -> [UInt8]? {
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a)
            || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f }) else { return nil }
        var r = "CONNECT \(name):\(port) HTTP/1.1\r\nHost: \(name):\(port)\r\n"
        if let username {
            let token = Base64.encode(Array((username + ":" + (password ?? "")).utf8))
            r += "Proxy-Authorization: Basic \(token)\r\n"
        }
        r += "\r\n"
        return Array(r.utf8)
    }

    /// The largest reply header read from the proxy.
    public static let maxReplySize = 8192

    /// The proxy's reply to CONNECT, from its header's bytes.
    public struct Reply: Sendable, Equatable {
        /// The status code; nil when the status line is not HTTP's.
        public var status: Int?
        /// The status line, printable ASCII only and at most 160 characters:
        /// the proxy's words reach events and the terminal.
        public var statusLine: String
        public var isSuccess: Bool { status.map { (200..<300).contains($0) } ?? false }
    }

    /// Where the reply header ends (just past CRLF CRLF) in `bytes`, or nil if not yet.
    public static func replyHeaderEnd(_ bytes: some Collection<UInt8>) -> Int? {
        let b = Array(bytes)
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    /// The status line of a reply header: `HTTP/1.x CODE REASON`.
    public static func parseReply(_ header: some Collection<UInt8>) -> Reply {
        let line = Array(header.prefix { $0 != 13 && $0 != 10 })
        let shown = String(decoding: line.prefix(160).map { $0 >= 0x20 && $0 < 0x7f ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
        let parts = shown.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0",
              parts[1].count == 3, parts[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let code = Int(parts[1]) else {
            return Reply(status: nil, statusLine: shown)
        }
        return Reply(status: code, statusLine: shown)
    }
}

/// RFC 4648 base64 (with padding), for the Basic credentials.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let b0 = bytes[i], b1 = n > 1 ? bytes[i + 1] : 0, b2 = n > 2 ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(n > 1 ? alphabet[Int((b1 & 0x0f) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(n > 2 ? alphabet[Int(b2 & 0x3f)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
