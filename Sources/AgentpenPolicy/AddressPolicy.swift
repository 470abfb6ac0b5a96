/// An IPv4 or IPv6 address, stored inline (two words, no heap). Pure Swift (no
/// inet_pton), so address decisions stay testable without the kernel.
public struct IPAddress: Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    /// The address's bytes in network order, big-endian: bytes 0-7 in `high`,
    /// 8-15 in `low`. An IPv4 address is in the top 32 bits of `high`, the rest zero.
    let high: UInt64
    let low: UInt64
    public let isIPv4: Bool

    private init(high: UInt64, low: UInt64, isIPv4: Bool) {
        self.high = high
        self.low = low
        self.isIPv4 = isIPv4
    }

    /// An IPv4 address from its 32-bit value.
    init(v4: UInt32) { self.init(high: UInt64(v4) << 32, low: 0, isIPv4: true) }

    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order; nil for any other count.
    public init?<Bytes: Collection<UInt8>>(bytes: Bytes) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        var words: (UInt64, UInt64) = (0, 0)
        for (i, b) in bytes.enumerated() {
            if i < 8 { words.0 |= UInt64(b) << (56 - 8 * i) } else { words.1 |= UInt64(b) << (56 - 8 * (i - 8)) }
        }
        self.init(high: words.0, low: words.1, isIPv4: bytes.count == 4)
    }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        self.init(v4: UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
    }

    public static let loopbackV4 = IPAddress(127, 0, 0, 1)
    public static let loopbackV6 = IPAddress(high: 0, low: 1, isIPv4: false)

    /// 4 or 16.
    public var byteCount: Int { isIPv4 ? 4 : 16 }

    /// Byte `i` in network order; `i` must be below `byteCount`.
    public subscript(_ i: Int) -> UInt8 {
        precondition(i >= 0 && i < byteCount, "IPAddress byte \(i) of \(byteCount)")
        return UInt8(truncatingIfNeeded: i < 8 ? high >> (56 - 8 * i) : low >> (56 - 8 * (i - 8)))
    }

    /// The bytes in network order, as a new array.
    public var bytes: [UInt8] { (0..<byteCount).map { self[$0] } }

    /// The 32-bit value of an IPv4 address (0 for IPv6).
    var v4Value: UInt32 { isIPv4 ? UInt32(truncatingIfNeeded: high >> 32) : 0 }

    /// The bytes in network order, for a C call, without allocating.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { buf in
            let n = byteCount
            for i in 0..<n { buf.initializeElement(at: i, to: self[i]) }
            defer { buf.extracting(0..<n).deinitialize() }
            return try body(UnsafeBufferPointer(buf.extracting(0..<n)))
        }
    }

    /// Strict textual forms only: dotted-quad IPv4 without leading zeros, and
    /// IPv6 with at most one `::` and an optional trailing dotted quad. No zone ids.
    public init?(_ text: String) {
        if let v4 = Self.parseV4(Substring(text)) { self.init(bytes: v4); return }
        guard let v6 = Self.parseV6(text) else { return nil }
        self.init(bytes: v6)
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

    /// "198.18.0.10:8080" or "[fd0c::10]:8080": the address with a port.
    public func endpoint(port: UInt16) -> String {
        isIPv4 ? "\(self):\(port)" : "[\(self)]:\(port)"
    }

    /// RFC 5952 form for IPv6 (lower case, longest zero run compressed,
    /// IPv4-mapped shown with a dotted quad).
    public var description: String {
        if isIPv4 { return (0..<4).map { String(self[$0]) }.joined(separator: ".") }
        if high == 0 && low >> 32 == 0xffff {
            return "::ffff:" + (12..<16).map { String(self[$0]) }.joined(separator: ".")
        }
        let words = (0..<8).map { UInt16(self[2 * $0]) << 8 | UInt16(self[2 * $0 + 1]) }
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
            let metadata = IPAddress(169, 254, 169, 254)
            let meta = embeddedV4(address) == metadata || address == metadata
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
        let last32 = IPAddress(v4: UInt32(truncatingIfNeeded: a.low))
        if a.high == 0 && a.low >> 32 == 0xffff { return last32 }                        // ::ffff:a.b.c.d
        if a.high == 0 && a.low >> 32 == 0 && a.low > 1 { return last32 }                // ::a.b.c.d (not :: or ::1)
        if a.high == 0x0064_ff9b_0000_0000 && a.low >> 32 == 0 { return last32 }          // 64:ff9b::/96
        if a.high >> 48 == 0x2002 { return IPAddress(v4: UInt32(truncatingIfNeeded: a.high >> 16)) }   // 2002::/16
        return nil
    }

    private static func classifyWithOrigin(_ a: IPAddress) -> (AddressClass, String?) {
        if a.isIPv4 { return (classifyV4(a.v4Value), nil) }
        let b = a
        if a.high == 0 && a.low >> 8 == 0 {
            return (b[15] == 1 ? .loopback : .unspecified, nil)
        }
        if let v4 = embeddedV4(a) {
            let how: String
            if b[0] == 0x20 { how = "6to4 of \(v4)" }
            else if b[1] == 0x64 { how = "NAT64 of \(v4)" }
            else if b[10] == 0xff { how = "IPv4-mapped \(v4)" }
            else { how = "IPv4-compatible \(v4)" }
            return (classifyV4(v4.v4Value), how)
        }
        return (classifyV6(b), nil)
    }

    private static func inV4(_ addr: UInt32, _ net: (UInt8, UInt8, UInt8, UInt8), _ prefix: Int) -> Bool {
        let n = UInt32(net.0) << 24 | UInt32(net.1) << 16 | UInt32(net.2) << 8 | UInt32(net.3)
        let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
        return addr & mask == n & mask
    }

    private static func classifyV4(_ b: UInt32) -> AddressClass {
        if inV4(b, (0, 0, 0, 0), 8) { return .unspecified }
        if inV4(b, (127, 0, 0, 0), 8) { return .loopback }
        if inV4(b, (169, 254, 0, 0), 16) { return .linkLocal }
        if inV4(b, (224, 0, 0, 0), 4) { return .multicast }
        if b == 0xffff_ffff { return .broadcast }
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

    private static func inV6(_ b: IPAddress, _ net: [UInt8], _ prefix: Int) -> Bool {
        var bits = prefix, i = 0
        while bits > 0 {
            let m: UInt8 = bits >= 8 ? 0xff : ~UInt8(0) << (8 - bits)
            if b[i] & m != (i < net.count ? net[i] : 0) & m { return false }
            bits -= 8; i += 1
        }
        return true
    }

    private static func classifyV6(_ b: IPAddress) -> AddressClass {
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
