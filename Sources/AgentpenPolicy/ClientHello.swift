/// Reads the server name out of the start of a TLS connection. Incremental by
/// re-parsing: give it every byte received so far (the proxy peeks, so the
/// buffer only grows); it answers `.needMore` until the whole ClientHello
/// handshake message is there, however it is split over TLS records.
/// It never consumes or changes the bytes.
public struct ClientHello: Equatable, Sendable {
    public enum Outcome: Equatable, Sendable {
        case needMore
        case serverName(String)
        case noServerName
        case invalid(String)
    }

    public var outcome: Outcome
    /// An encrypted_client_hello extension (0xfe0d) was present: the name seen is
    /// only the outer public name. Reported so it can be logged.
    public var hasECH: Bool
    /// Bytes from the start of the stream up to the end of the ClientHello message
    /// (record headers included), once it is complete; 0 otherwise.
    public var length: Int

    /// A hello larger than this (record headers included) is refused. Real ones
    /// with post-quantum key shares are under 2 KiB.
    public static let maxSize = 16 * 1024

    init(_ outcome: Outcome, ech: Bool = false, length: Int = 0) {
        self.outcome = outcome
        self.hasECH = ech
        self.length = length
    }

    public static func parse(_ bytes: [UInt8], maxSize: Int = maxSize) -> ClientHello {
        bytes.withUnsafeBytes { parse($0, maxSize: maxSize) }
    }

    public static func parse(_ buf: UnsafeRawBufferPointer, maxSize: Int = maxSize) -> ClientHello {
        let n = buf.count
        var pos = 0
        // Fragments of the handshake message, as ranges of `buf`; bytes are only
        // gathered into one array when the message spans more than one record.
        var fragments: [Range<Int>] = []
        var collected = 0
        var messageLength: Int?

        func handshakeByte(_ i: Int) -> UInt8 {
            var i = i
            for f in fragments {
                if i < f.count { return buf[f.lowerBound + i] }
                i -= f.count
            }
            return 0
        }

        while true {
            guard pos + 5 <= n else { break }
            let type = buf[pos], major = buf[pos + 1], minor = buf[pos + 2]
            let len = Int(buf[pos + 3]) << 8 | Int(buf[pos + 4])
            guard type == 22 else {
                return ClientHello(.invalid(fragments.isEmpty
                    ? "not a TLS handshake (record type \(type))"
                    : "ClientHello interrupted by a record of type \(type)"))
            }
            guard major == 3, minor <= 4 else { return ClientHello(.invalid("unknown record version \(major).\(minor)")) }
            guard len > 0, len <= 16384 else { return ClientHello(.invalid("bad record length \(len)")) }
            let start = pos + 5
            let available = min(len, n - start)
            fragments.append(start..<(start + available))
            collected += available
            if collected >= 1 && handshakeByte(0) != 1 {
                return ClientHello(.invalid("first handshake message is type \(handshakeByte(0)), not ClientHello"))
            }
            if messageLength == nil && collected >= 4 {
                let l = Int(handshakeByte(1)) << 16 | Int(handshakeByte(2)) << 8 | Int(handshakeByte(3))
                guard l + 4 + 5 <= maxSize else { return ClientHello(.invalid("ClientHello of \(l) bytes is over the \(maxSize)-byte limit")) }
                messageLength = l
            }
            if let l = messageLength, collected >= l + 4 {
                // Where the message ends in the stream: inside the last fragment.
                let end = fragments.last!.upperBound - (collected - (l + 4))
                guard end <= maxSize else { return ClientHello(.invalid("ClientHello spread over more than \(maxSize) bytes")) }
                if fragments.count == 1 {
                    let body = UnsafeRawBufferPointer(rebasing: buf[(start + 4)..<(start + 4 + l)])
                    return parseBody(body, end: end)
                }
                var joined: [UInt8] = []
                joined.reserveCapacity(l + 4)
                for f in fragments { joined.append(contentsOf: buf[f]) }
                return joined.withUnsafeBytes {
                    parseBody(UnsafeRawBufferPointer(rebasing: $0[4..<(4 + l)]), end: end)
                }
            }
            if available < len { break }
            pos = start + len
        }
        if n >= maxSize { return ClientHello(.invalid("no complete ClientHello in the first \(maxSize) bytes")) }
        return ClientHello(.needMore)
    }

    /// The ClientHello body (after the 4-byte handshake header). Every length is
    /// checked against what encloses it; anything inconsistent is invalid.
    private static func parseBody(_ b: UnsafeRawBufferPointer, end: Int) -> ClientHello {
        var r = Reader(b)
        func bad(_ why: String) -> ClientHello { ClientHello(.invalid(why)) }
        guard let major = r.u8(), r.u8() != nil, major == 3 else { return bad("bad legacy version") }
        guard r.skip(32) else { return bad("truncated random") }
        guard let sidLen = r.u8(), sidLen <= 32, r.skip(Int(sidLen)) else { return bad("bad session id") }
        guard let csLen = r.u16(), csLen >= 2, csLen % 2 == 0, r.skip(Int(csLen)) else { return bad("bad cipher suites") }
        guard let compLen = r.u8(), compLen >= 1, r.skip(Int(compLen)) else { return bad("bad compression methods") }
        if r.atEnd { return ClientHello(.noServerName, length: end) }   // TLS 1.2 may omit extensions
        guard let extLen = r.u16(), Int(extLen) == r.remaining else { return bad("extensions length does not match the message") }
        var seen: Set<UInt16> = []
        var name: String?
        var ech = false
        while !r.atEnd {
            guard let type = r.u16(), let len = r.u16(), let ext = r.sub(Int(len)) else { return bad("truncated extension") }
            // Two extensions of one type are forbidden, and two server names would
            // let a client show one name to the proxy and another to the server.
            guard seen.insert(type).inserted else { return bad("duplicate extension \(type)") }
            switch type {
            case 0x0000:
                switch parseServerName(ext) {
                case .success(let n): name = n
                case .failure(let e): return bad(e.why)
                }
            case 0xfe0d:
                ech = true
            default:
                break
            }
        }
        if let name { return ClientHello(.serverName(name), ech: ech, length: end) }
        return ClientHello(.noServerName, ech: ech, length: end)
    }

    struct Bad: Error { var why: String }

    private static func parseServerName(_ ext: UnsafeRawBufferPointer) -> Result<String, Bad> {
        var r = Reader(ext)
        guard let listLen = r.u16(), Int(listLen) == r.remaining, listLen > 0 else { return .failure(Bad(why: "bad server_name list")) }
        var found: String?
        while !r.atEnd {
            guard let kind = r.u8(), let len = r.u16(), let raw = r.sub(Int(len)) else { return .failure(Bad(why: "truncated server name")) }
            guard kind == 0 else { continue }   // only host_name (0) is defined
            guard found == nil else { return .failure(Bad(why: "more than one host name")) }
            guard len > 0, len <= 253 else { return .failure(Bad(why: "server name length \(len)")) }
            for c in raw {
                let ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2e
                guard ok else { return .failure(Bad(why: "server name contains byte 0x\(String(c, radix: 16))")) }
            }
            let text = String(decoding: raw, as: UTF8.self)
            do {
                found = try HostPattern(text).name
            } catch {
                return .failure(Bad(why: "server name refused: \(error.description)"))
            }
        }
        guard let found else { return .failure(Bad(why: "server_name extension without a host name")) }
        return .success(found)
    }
}

/// Bounds-checked big-endian reader; every read returns nil past the end.
struct Reader {
    let buf: UnsafeRawBufferPointer
    var pos = 0
    init(_ buf: UnsafeRawBufferPointer) { self.buf = buf }

    var remaining: Int { buf.count - pos }
    var atEnd: Bool { pos >= buf.count }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { pos += 1 }
        return buf[pos]
    }
    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { pos += 2 }
        return UInt16(buf[pos]) << 8 | UInt16(buf[pos + 1])
    }
    mutating func skip(_ k: Int) -> Bool {
        guard k >= 0, remaining >= k else { return false }
        pos += k
        return true
    }
    mutating func sub(_ k: Int) -> UnsafeRawBufferPointer? {
        guard k >= 0, remaining >= k else { return nil }
        defer { pos += k }
        return UnsafeRawBufferPointer(rebasing: buf[pos..<(pos + k)])
    }
}
