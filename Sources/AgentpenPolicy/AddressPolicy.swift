/// An IPv4 or IPv6 address as raw network-order bytes. Pure Swift (no inet_pton),
/// so address decisions stay testable without the kernel.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) { bytes = [a, b, c, d] }

    public static let loopbackV4 = IPAddress(127, 0, 0, 1)
    public static let loopbackV6 = IPAddress(bytes: [UInt8](repeating: 0, count: 15) + [1])!

    public var isIPv4: Bool { bytes.count == 4 }

    /// Strict textual forms only: dotted-quad IPv4 without leading zeros, and
    /// IPv6 with at most one `::` and an optional trailing dotted quad. No zone ids.
    public init?(_ text: String) {
        if let v4 = Self.parseV4(Substring(text)) { bytes = v4; return }
        guard let v6 = Self.parseV6(text) else { return nil }
        bytes = v6
    }

    private static func parseV4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            if p.count > 1 && p.first == "0" { return nil }   // octal ambiguity
            guard let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    private static func parseV6(_ s: String) -> [UInt8]? {
        guard s.contains(":"), s.utf8.count <= 45 else { return nil }
        func groups(_ part: Substring, allowV4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, g) in items.enumerated() {
                if i == items.count - 1, allowV4Tail, g.contains(".") {
                    guard let v4 = parseV4(g) else { return nil }
                    out.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    out.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        let halves = s.components(separatedByString: "::")
        var words: [UInt16]
        switch halves.count {
        case 1:
            guard let g = groups(Substring(s), allowV4Tail: true), g.count == 8 else { return nil }
            words = g
        case 2:
            guard let head = groups(halves[0], allowV4Tail: false),
                  let tail = groups(halves[1], allowV4Tail: true),
                  head.count + tail.count <= 7 else { return nil }
            words = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        default:
            return nil
        }
        return words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    /// RFC 5952 form for IPv6 (lower case, longest zero run compressed,
    /// IPv4-mapped shown with a dotted quad).
    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return "::ffff:" + bytes[12...].map(String.init).joined(separator: ".")
        }
        let words = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if words[i] == 0 {
                var j = i
                while j < 8 && words[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        func hex(_ r: Range<Int>) -> String { words[r].map { String($0, radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLen)..<8)
    }
}

extension String {
    /// Splits on a multi-character separator without Foundation.
    fileprivate func components(separatedByString sep: String) -> [Substring] {
        var out: [Substring] = []
        var rest = self[...]
        while let r = rest.firstRange(of: sep) {
            out.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        out.append(rest)
        return out
    }
}

/// What kind of address an upstream is, for deciding whether the proxy may dial it.
public enum AddressClass: Equatable, Sendable {
    case publicUnicast
    // Refused always, even for hosts given with --allow-private: these reach this
    // machine, its link (cloud metadata) or many machines at once.
    case loopback
    case unspecified
    case linkLocal
    case multicast
    case broadcast
    /// Not publicly routable; refused unless the host pattern allows private upstreams.
    /// The string names the range.
    case privateUse(String)

    public var alwaysRefused: Bool {
        switch self {
        case .loopback, .unspecified, .linkLocal, .multicast, .broadcast: return true
        case .publicUnicast, .privateUse: return false
        }
    }
}

/// Decides which upstream addresses the proxy may dial.
public enum AddressPolicy {
    public enum Verdict: Equatable, Sendable {
        case allowed
        case refused(String)
        public var isAllowed: Bool { self == .allowed }
    }

    public static func vet(_ address: IPAddress, allowPrivate: Bool) -> Verdict {
        let (cls, via) = classifyWithOrigin(address)
        let shown = via.map { "\(address) (\($0))" } ?? "\(address)"
        switch cls {
        case .publicUnicast: return .allowed
        case .privateUse(let range):
            return allowPrivate ? .allowed
                : .refused("\(shown) is a private address (\(range)); allow it with --allow-private")
        case .loopback: return .refused("\(shown) is a loopback address")
        case .unspecified: return .refused("\(shown) is an unspecified address")
        case .linkLocal:
            let meta = embeddedV4(address)?.bytes == [169, 254, 169, 254] || address.bytes == [169, 254, 169, 254]
            return .refused("\(shown) is a link-local address" + (meta ? " (cloud metadata service)" : ""))
        case .multicast: return .refused("\(shown) is a multicast address")
        case .broadcast: return .refused("\(shown) is the broadcast address")
        }
    }

    public static func classify(_ address: IPAddress) -> AddressClass { classifyWithOrigin(address).0 }

    /// The IPv4 address carried inside an IPv6 address by mapping, compatibility,
    /// NAT64 or 6to4, if any.
    public static func embeddedV4(_ a: IPAddress) -> IPAddress? {
        guard !a.isIPv4 else { return nil }
        let b = a.bytes
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff { return IPAddress(b[12], b[13], b[14], b[15]) }
        if b[0..<12].allSatisfy({ $0 == 0 }) && !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1) {
            return IPAddress(b[12], b[13], b[14], b[15])
        }
        if b[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] { return IPAddress(b[12], b[13], b[14], b[15]) }
        if b[0] == 0x20 && b[1] == 0x02 { return IPAddress(b[2], b[3], b[4], b[5]) }
        return nil
    }

    private static func classifyWithOrigin(_ a: IPAddress) -> (AddressClass, String?) {
        if a.isIPv4 { return (classifyV4(a.bytes), nil) }
        let b = a.bytes
        if b[0..<15].allSatisfy({ $0 == 0 }) {
            return (b[15] == 1 ? .loopback : .unspecified, nil)
        }
        if let v4 = embeddedV4(a) {
            let how: String
            if b[0] == 0x20 { how = "6to4 of \(v4)" }
            else if b[1] == 0x64 { how = "NAT64 of \(v4)" }
            else if b[10] == 0xff { how = "IPv4-mapped \(v4)" }
            else { how = "IPv4-compatible \(v4)" }
            return (classifyV4(v4.bytes), how)
        }
        return (classifyV6(b), nil)
    }

    private static func inV4(_ b: [UInt8], _ net: (UInt8, UInt8, UInt8, UInt8), _ prefix: Int) -> Bool {
        let addr = UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
        let n = UInt32(net.0) << 24 | UInt32(net.1) << 16 | UInt32(net.2) << 8 | UInt32(net.3)
        let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
        return addr & mask == n & mask
    }

    private static func classifyV4(_ b: [UInt8]) -> AddressClass {
        if inV4(b, (0, 0, 0, 0), 8) { return .unspecified }
        if inV4(b, (127, 0, 0, 0), 8) { return .loopback }
        if inV4(b, (169, 254, 0, 0), 16) { return .linkLocal }
        if inV4(b, (224, 0, 0, 0), 4) { return .multicast }
        if b == [255, 255, 255, 255] { return .broadcast }
        let ranges: [((UInt8, UInt8, UInt8, UInt8), Int, String)] = [
            ((10, 0, 0, 0), 8, "RFC 1918 10.0.0.0/8"),
            ((172, 16, 0, 0), 12, "RFC 1918 172.16.0.0/12"),
            ((192, 168, 0, 0), 16, "RFC 1918 192.168.0.0/16"),
            ((100, 64, 0, 0), 10, "carrier-grade NAT 100.64.0.0/10"),
            ((198, 18, 0, 0), 15, "benchmarking 198.18.0.0/15"),
            ((192, 0, 2, 0), 24, "documentation 192.0.2.0/24"),
            ((198, 51, 100, 0), 24, "documentation 198.51.100.0/24"),
            ((203, 0, 113, 0), 24, "documentation 203.0.113.0/24"),
            ((192, 0, 0, 0), 24, "IETF protocol assignments 192.0.0.0/24"),
            ((192, 88, 99, 0), 24, "6to4 relay anycast 192.88.99.0/24"),
            ((240, 0, 0, 0), 4, "reserved 240.0.0.0/4"),
        ]
        for (net, prefix, name) in ranges where inV4(b, net, prefix) { return .privateUse(name) }
        return .publicUnicast
    }

    private static func inV6(_ b: [UInt8], _ net: [UInt8], _ prefix: Int) -> Bool {
        var bits = prefix, i = 0
        while bits > 0 {
            let m: UInt8 = bits >= 8 ? 0xff : ~UInt8(0) << (8 - bits)
            if b[i] & m != (i < net.count ? net[i] : 0) & m { return false }
            bits -= 8; i += 1
        }
        return true
    }

    private static func classifyV6(_ b: [UInt8]) -> AddressClass {
        if inV6(b, [0xfe, 0x80], 10) { return .linkLocal }
        if inV6(b, [0xff], 8) { return .multicast }
        let ranges: [([UInt8], Int, String)] = [
            ([0xfc], 7, "unique local fc00::/7"),
            ([0xfe, 0xc0], 10, "site-local fec0::/10"),
            ([0x20, 0x01, 0x0d, 0xb8], 32, "documentation 2001:db8::/32"),
            ([0x3f, 0xff], 20, "documentation 3fff::/20"),
            ([0x00, 0x64, 0xff, 0x9b, 0x00, 0x01], 48, "local-use NAT64 64:ff9b:1::/48"),
            ([0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, "discard-only 100::/64"),
            // Teredo, benchmarking, ORCHID and other special-purpose blocks.
            ([0x20, 0x01, 0x00, 0x00], 23, "IETF protocol assignments 2001::/23"),
        ]
        for (net, prefix, name) in ranges where inV6(b, net, prefix) { return .privateUse(name) }
        // Only 2000::/3 is allocated as global unicast.
        if !inV6(b, [0x20], 3) { return .privateUse("reserved (outside 2000::/3)") }
        return .publicUnicast
    }
}
