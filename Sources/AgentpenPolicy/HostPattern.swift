/// A host the sandbox may reach: an exact name (`api.example.com`) or a wildcard
/// (`*.example.com`, every subdomain of example.com but not example.com itself).
/// Names are validated when the pattern is made, because they end up in the
/// sandbox's /etc/hosts and in DNS answers: anything odd is refused, not cleaned.
public struct HostPattern: Hashable, Sendable, CustomStringConvertible {
    /// Lower-case name without the `*.` prefix.
    public let name: String
    public let isWildcard: Bool
    /// Given with `--allow-private`: the proxy may dial a private upstream for it.
    public let allowsPrivateUpstream: Bool

    public var description: String { isWildcard ? "*.\(name)" : name }

    public enum Invalid: Error, Equatable, CustomStringConvertible {
        case empty
        case badCharacter(String)
        case ipLiteral(String)
        case loopbackName(String)
        case emptyLabel(String)
        case trailingDot(String)
        case tooLong(String)
        case badWildcard(String)

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
            }
        }
    }

    public init(_ text: String, allowsPrivateUpstream: Bool = false) throws(Invalid) {
        self.allowsPrivateUpstream = allowsPrivateUpstream
        guard !text.isEmpty else { throw .empty }
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

    /// Adds a pattern; a host given both ways keeps the private-upstream permission.
    public mutating func add(_ pattern: HostPattern) {
        if let i = patterns.firstIndex(where: { $0.name == pattern.name && $0.isWildcard == pattern.isWildcard }) {
            if pattern.allowsPrivateUpstream { patterns[i] = pattern }
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

    /// Names that can be written into /etc/hosts (wildcards cannot).
    public var exactNames: [String] { patterns.filter { !$0.isWildcard }.map(\.name) }
}
