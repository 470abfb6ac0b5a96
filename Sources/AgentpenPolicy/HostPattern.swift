/// A host the sandbox may reach: an exact name (`api.example.com`) or a wildcard
/// (`*.example.com`, every subdomain of example.com but not example.com itself).
/// Names are validated when the pattern is made, because they end up in the
/// sandbox's /etc/hosts and in DNS answers: anything odd is refused, not cleaned.
///
/// `NAME` allows TLS on port 443 (the SNI must be the name); `NAME:PORT` allows
/// any TCP protocol to that name and port (ssh, plain HTTP, a database).
public struct HostPattern: Hashable, Sendable, CustomStringConvertible {
    /// Lower-case name without the `*.` prefix.
    public let name: String
    public let isWildcard: Bool
    /// Given with `--allow-private`: the proxy may dial a private upstream for it.
    public let allowsPrivateUpstream: Bool
    /// TLS on 443, checked by SNI (the name was given without a port).
    public internal(set) var tls: Bool
    /// Ports any TCP protocol may use (`NAME:PORT`), sorted, without repeats.
    public internal(set) var ports: [UInt16]

    /// The name pattern alone (`*.example.com`), as events and DNS show it.
    public var description: String { isWildcard ? "*.\(name)" : name }

    /// Every form this pattern was given in (`name`, `name:22`), for the helper's argv.
    public var specs: [String] {
        (tls ? [description] : []) + ports.map { "\(description):\($0)" }
    }

    /// Whether TCP to `port` is allowed without TLS.
    public func allowsPlainTCP(_ port: UInt16) -> Bool { ports.contains(port) }

    public enum Invalid: Error, Equatable, CustomStringConvertible {
        case empty
        case badCharacter(String)
        case ipLiteral(String)
        case loopbackName(String)
        case emptyLabel(String)
        case trailingDot(String)
        case tooLong(String)
        case badWildcard(String)
        case badPort(String)

        public var description: String {
            switch self {
            case .empty: return "empty host name"
            case .badCharacter(let s): return "\(s.debugDescription): host names may hold only letters, digits, '-' and '.'"
            case .ipLiteral(let s): return "\(s): IP addresses are refused; allow a host name instead"
            case .loopbackName(let s): return "\(s): localhost names are refused (they would point the proxy at this machine)"
            case .emptyLabel(let s): return "\(s): empty label in host name"
            case .trailingDot(let s): return "\(s): trailing dot refused; write the name without it"
            case .tooLong(let s): return "\(s.prefix(40))…: host name longer than 253 characters"
            case .badWildcard(let s): return "\(s): a wildcard must be '*.' followed by a name (e.g. *.example.com)"
            case .badPort(let s): return "\(s): a port must be a number from 1 to 65535 (e.g. github.com:22)"
            }
        }
    }

    public init(_ given: String, allowsPrivateUpstream: Bool = false) throws(Invalid) {
        self.allowsPrivateUpstream = allowsPrivateUpstream
        guard !given.isEmpty else { throw .empty }
        // NAME:PORT. More than one ':' is an IPv6 literal, refused below.
        var text = given
        tls = true
        ports = []
        if given.utf8.filter({ $0 == UInt8(ascii: ":") }).count == 1, let colon = given.firstIndex(of: ":") {
            let digits = given[given.index(after: colon)...]
            let namePart = String(given[..<colon])
            // An IP literal with a port is refused as an IP literal.
            if !namePart.isEmpty, !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                _ = try HostPattern(namePart)
                guard digits.count <= 5, let port = UInt16(digits), port > 0 else { throw .badPort(given) }
                text = namePart
                tls = false
                ports = [port]
            } else if !namePart.isEmpty, !namePart.contains("["), (try? HostPattern(namePart)) != nil {
                throw .badPort(given)
            }
        }
        for scalar in text.unicodeScalars {
            let ok = scalar.isASCII && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
                || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "." || scalar == "*"
                || scalar == ":")
            if !ok { throw .badCharacter(text) }
        }
        if text.contains(":") { throw .ipLiteral(text) }   // IPv6 literal (the only use of ':')
        var rest = Substring(text.lowercased())
        if rest.hasPrefix("*.") {
            isWildcard = true
            rest = rest.dropFirst(2)
        } else {
            isWildcard = false
        }
        if rest.contains("*") { throw .badWildcard(text) }
        if rest.hasSuffix(".") {
            // Check what the name without the dot would be first: a refused name
            // stays refused whatever its spelling.
            _ = try HostPattern(String(text.dropLast()))
            throw .trailingDot(text)
        }
        if rest.count > 253 { throw .tooLong(text) }
        let labels = rest.split(separator: ".", omittingEmptySubsequences: false)
        if labels.contains(where: \.isEmpty) { throw .emptyLabel(text) }
        if labels.contains(where: { $0.count > 63 || $0.hasPrefix("-") || $0.hasSuffix("-") }) {
            throw .badCharacter(text)
        }
        if labels.last == "localhost" { throw .loopbackName(text) }
        // All-numeric last label: an IPv4 literal (dotted, or inet_aton's shorter forms).
        if let last = labels.last, last.allSatisfy({ $0.isNumber }) || Self.looksNumeric(last) {
            throw .ipLiteral(text)
        }
        name = String(rest)
    }

    /// 0x7f, 017 and other forms inet_aton accepts.
    private static func looksNumeric(_ label: Substring) -> Bool {
        if label.hasPrefix("0x") { return label.dropFirst(2).allSatisfy(\.isHexDigit) }
        return false
    }

    /// Whether `host` (any case, no trailing dot) is covered by this pattern.
    public func matches(_ host: String) -> Bool {
        var h = host.lowercased()
        if h.hasSuffix(".") { h.removeLast() }   // DNS questions arrive fully qualified
        if isWildcard { return h.count > name.count + 1 && h.hasSuffix("." + name) }
        return h == name
    }
}

/// The hosts one run may reach. Every allow/deny of a name goes through `decide`.
public struct Allowlist: Sendable, Equatable {
    public private(set) var patterns: [HostPattern] = []

    public init(_ patterns: [HostPattern] = []) {
        for p in patterns { add(p) }
    }

    /// Adds a pattern; a host given several ways keeps the private-upstream
    /// permission and every protocol it was given with (TLS, ports).
    public mutating func add(_ pattern: HostPattern) {
        if let i = patterns.firstIndex(where: { $0.name == pattern.name && $0.isWildcard == pattern.isWildcard }) {
            var merged = pattern.allowsPrivateUpstream ? pattern : patterns[i]
            merged.tls = patterns[i].tls || pattern.tls
            merged.ports = Array(Set(patterns[i].ports + pattern.ports)).sorted()
            patterns[i] = merged
        } else {
            patterns.append(pattern)
        }
    }

    public var isEmpty: Bool { patterns.isEmpty }

    /// The first pattern that covers `host`, or nil when it is not allowed.
    /// A pattern that permits a private upstream wins over one that does not.
    public func match(_ host: String) -> HostPattern? {
        let hits = patterns.filter { $0.matches(host) }
        return hits.first(where: \.allowsPrivateUpstream) ?? hits.first
    }

    /// The pattern allowing TLS on 443 for `host` (the SNI route), or nil.
    public func matchTLS(_ host: String) -> HostPattern? {
        let hits = patterns.filter { $0.tls && $0.matches(host) }
        return hits.first(where: \.allowsPrivateUpstream) ?? hits.first
    }

    /// The pattern allowing plain TCP to `host`:`port`, or nil.
    public func matchPlain(_ host: String, port: UInt16) -> HostPattern? {
        let hits = patterns.filter { $0.allowsPlainTCP(port) && $0.matches(host) }
        return hits.first(where: \.allowsPrivateUpstream) ?? hits.first
    }

    /// Every port some pattern allows plain TCP on, sorted.
    public var plainPorts: [UInt16] { Array(Set(patterns.flatMap(\.ports))).sorted() }

    /// Names that can be written into /etc/hosts (wildcards cannot).
    public var exactNames: [String] { patterns.filter { !$0.isWildcard }.map(\.name) }
}
