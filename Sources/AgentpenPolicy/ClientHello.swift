/// Reads the server name out of the start of a TLS connection. Incremental
/// (`Reassembler`): give it the bytes as they arrive; it answers `.needMore`
/// until the whole ClientHello handshake message is there, however it is split
/// over TLS records. It never consumes or changes the bytes.
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
        var r = Reassembler(maxSize: maxSize)
        return r.feed(bytes)
    }

    /// The whole stream received so far in one call (tests, the fuzzer). The
    /// bytes are copied once into an array and read from there.
    public static func parse(_ buf: UnsafeRawBufferPointer, maxSize: Int = maxSize) -> ClientHello {
        parse(Array(buf), maxSize: maxSize)
    }

    /// Incremental reassembly: give it only the bytes that arrived since the
    /// last call. Record headers are read once, handshake bytes are gathered as
    /// they come, and the message is parsed once, when complete; so the work is
    /// linear in the bytes received however the hello is split over records or
    /// segments. The first answer other than `.needMore` is final.
    public struct Reassembler: Sendable {
        public let maxSize: Int
        /// Stream bytes taken so far (record headers included).
        public private(set) var consumed = 0
        /// Work done, for tests: bytes looked at on arrival plus bytes parsed.
        public private(set) var bytesExamined = 0
        /// How often a complete message was parsed (at most once).
        public private(set) var bodyParses = 0

        private var header: [UInt8] = []
        /// Payload bytes of the current record still to come; 0 between records.
        private var recordRemaining = 0
        private var records = 0
        private var message: [UInt8] = []
        private var messageLength: Int?
        private var answer: ClientHello?

        public init(maxSize: Int = ClientHello.maxSize) {
            self.maxSize = maxSize
        }

        public mutating func feed(_ bytes: [UInt8]) -> ClientHello {
            feed(bytes[...])
        }

        /// The bytes are copied once into an array (the proxy's peek buffer is
        /// raw memory) and read from there.
        public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> ClientHello {
            feed(Array(bytes)[...])
        }

        public mutating func feed(_ bytes: ArraySlice<UInt8>) -> ClientHello {
            if let answer { return answer }
            var input = ByteCursor(bytes)
            let result = take(&input)
            if result.outcome != .needMore { answer = result }
            return result
        }

        private mutating func take(_ input: inout ByteCursor) -> ClientHello {
            while !input.atEnd {
                if recordRemaining == 0 {
                    // A record header, possibly split across calls.
                    let part = input.prefix(upTo: 5 - header.count)
                    header.append(contentsOf: part)
                    bytesExamined += part.count
                    consumed += part.count
                    guard header.count == 5 else { break }
                    let (type, major, minor, len) = Self.recordHeader(header)
                    header.removeAll(keepingCapacity: true)
                    guard type == 22 else {
                        return ClientHello(.invalid(records == 0
                            ? "not a TLS handshake (record type \(type))"
                            : "ClientHello interrupted by a record of type \(type)"))
                    }
                    guard major == 3, minor <= 4 else { return ClientHello(.invalid("unknown record version \(major).\(minor)")) }
                    guard len > 0, len <= 16384 else { return ClientHello(.invalid("bad record length \(len)")) }
                    records += 1
                    recordRemaining = len
                    continue
                }
                // Handshake bytes, gathered until the message is complete.
                var record = ByteCursor(input.prefix(upTo: recordRemaining))
                let k = record.remaining
                while !record.atEnd {
                    let need = messageLength.map { $0 + 4 - message.count } ?? (4 - message.count)
                    message.append(contentsOf: record.prefix(upTo: need))
                    let (messageType, declared) = Self.handshakeHeader(message)
                    if messageType != 1 {
                        return ClientHello(.invalid("first handshake message is type \(messageType), not ClientHello"))
                    }
                    if messageLength == nil, let l = declared {
                        guard l + 4 + 5 <= maxSize else {
                            return ClientHello(.invalid("ClientHello of \(l) bytes is over the \(maxSize)-byte limit"))
                        }
                        messageLength = l
                        message.reserveCapacity(l + 4)
                    }
                    if let l = messageLength, message.count == l + 4 {
                        // Where the message ends in the stream.
                        let j = record.offset
                        let end = consumed + j
                        guard end <= maxSize else {
                            return ClientHello(.invalid("ClientHello spread over more than \(maxSize) bytes"))
                        }
                        bytesExamined += j + l
                        bodyParses += 1
                        var body = ByteCursor(message)
                        guard body.skip(4), let fields = body.window(l) else { preconditionFailure("a complete message is short") }
                        return ClientHello.parseBody(fields, end: end)
                    }
                }
                bytesExamined += k
                recordRemaining -= k
                consumed += k
            }
            if consumed >= maxSize { return ClientHello(.invalid("no complete ClientHello in the first \(maxSize) bytes")) }
            return ClientHello(.needMore)
        }

        /// Type, version and payload length of a complete 5-byte record header.
        private static func recordHeader(_ header: [UInt8]) -> (type: UInt8, major: UInt8, minor: UInt8, length: Int) {
            var h = ByteCursor(header)
            guard let type = h.u8(), let major = h.u8(), let minor = h.u8(), let length = h.u16(), h.atEnd else {
                preconditionFailure("a record header of \(header.count) bytes")
            }
            return (type, major, minor, Int(length))
        }

        /// The handshake message's type, and its declared length once all four
        /// header bytes are there (nil before).
        private static func handshakeHeader(_ message: [UInt8]) -> (type: UInt8, length: Int?) {
            var m = ByteCursor(message)
            guard let type = m.u8() else { preconditionFailure("an empty handshake message") }
            guard message.count == 4, let length = m.u24() else { return (type, nil) }
            return (type, Int(length))
        }
    }

    /// The ClientHello body (after the 4-byte handshake header). Every length is
    /// checked against what encloses it; anything inconsistent is invalid.
    static func parseBody(_ body: ByteCursor, end: Int) -> ClientHello {
        var r = body
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
            guard let type = r.u16(), let len = r.u16(), let ext = r.window(Int(len)) else { return bad("truncated extension") }
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

    private static func parseServerName(_ ext: ByteCursor) -> Result<String, Bad> {
        var r = ext
        guard let listLen = r.u16(), Int(listLen) == r.remaining, listLen > 0 else { return .failure(Bad(why: "bad server_name list")) }
        var found: String?
        while !r.atEnd {
            guard let kind = r.u8(), let len = r.u16(), let raw = r.bytes(Int(len)) else { return .failure(Bad(why: "truncated server name")) }
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
