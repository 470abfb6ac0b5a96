/// The in-namespace DNS responder's logic: parse one query, decide, build the
/// answer. Allowed names resolve to the local forwarder; everything else is
/// NXDOMAIN. Nothing is ever forwarded, so DNS cannot carry data out.
public enum DNSMessage {
    public static let typeA: UInt16 = 1
    public static let typeAAAA: UInt16 = 28
    public static let typeANY: UInt16 = 255
    public static let classIN: UInt16 = 1

    public enum RCode: UInt8, Sendable {
        case noError = 0, formErr = 1, servFail = 2, nxDomain = 3, notImp = 4, refused = 5
    }

    public struct Question: Equatable, Sendable {
        /// Dotted, lower case, no trailing dot ("" for the root).
        public var name: String
        public var type: UInt16
        public var qclass: UInt16
        /// Every label holds only letters, digits, '-' and '_'; otherwise the name
        /// cannot be in the allowlist (a '.' inside a label would fake a longer name).
        public var isPlausibleHostName: Bool
    }

    public struct Query: Equatable, Sendable {
        public var id: UInt16
        public var recursionDesired: Bool
        public var question: Question
        /// The question section exactly as received, echoed in the response.
        public var rawQuestion: [UInt8]
    }

    public enum Parsed: Equatable, Sendable {
        case query(Query)
        /// Answer with this code and no question (the request could not be read).
        case error(id: UInt16, recursionDesired: Bool, rcode: RCode, reason: String)
        /// Not worth an answer (too short, or itself a response: never answer those,
        /// or two responders could bounce packets forever).
        case drop(String)
    }

    public static func parseQuery(_ msg: [UInt8]) -> Parsed {
        var r = ByteCursor(msg)
        guard let id = r.u16(), let flags = r.u16(), let qd = r.u16(), let an = r.u16(), let ns = r.u16(),
              r.skip(2) else { return .drop("shorter than a DNS header") }
        guard flags & 0x8000 == 0 else { return .drop("a response, not a query") }
        let rd = flags & 0x0100 != 0
        let opcode = (flags >> 11) & 0xf
        guard opcode == 0 else { return .error(id: id, recursionDesired: rd, rcode: .notImp, reason: "opcode \(opcode)") }
        func formErr(_ why: String) -> Parsed { .error(id: id, recursionDesired: rd, rcode: .formErr, reason: why) }
        guard qd == 1 else { return formErr("\(qd) questions") }
        guard an == 0, ns == 0 else { return formErr("answer or authority records in a query") }
        let questionStart = r
        var labels: [String] = []
        var plausible = true
        var wireLength = 0
        while true {
            guard let length = r.u8() else { return formErr("truncated name") }
            let len = Int(length)
            guard len & 0xc0 == 0 else { return formErr("compressed or extended label in the question") }
            wireLength += len + 1
            guard wireLength <= 255 else { return formErr("name longer than 255 bytes") }
            if len == 0 { break }
            guard let label = r.bytes(len) else { return formErr("truncated label") }
            for c in label {
                let ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f
                if !ok { plausible = false }
            }
            labels.append(String(decoding: label, as: UTF8.self).lowercased())
        }
        guard let type = r.u16(), let qclass = r.u16() else { return formErr("truncated question") }
        // Additional records (an EDNS OPT) may follow; they are not needed to answer.
        let q = Question(name: labels.joined(separator: "."), type: type, qclass: qclass,
                         isPlausibleHostName: plausible && !labels.isEmpty)
        return .query(Query(id: id, recursionDesired: rd, question: q, rawQuestion: Array(r.bytes(since: questionStart))))
    }

    /// What the responder is configured to answer with.
    public struct AnswerConfig: Sendable, Equatable {
        /// A records point here: the in-namespace forwarder.
        public var ipv4: IPAddress
        /// AAAA records point here if set; otherwise AAAA gets NODATA.
        public var ipv6: IPAddress?
        public var ttl: UInt32

        public init(ipv4: IPAddress = .loopbackV4, ipv6: IPAddress? = nil, ttl: UInt32 = 5) {
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.ttl = ttl
        }
    }

    public enum Decision: Equatable, Sendable {
        /// Allowed name; `addresses` may be empty (NODATA for that type).
        case answered(name: String, type: UInt16, pattern: String, addresses: [IPAddress])
        /// An unlisted name answered with its per-name address (`UnlistedNames.hold`
        /// or `.pass`); the proxy decides when it is dialled.
        case answeredUnlisted(name: String, type: UInt16, addresses: [IPAddress])
        case nxDomain(name: String, reason: String)
        case error(RCode, reason: String)
        case dropped(String)

        public var isAllowed: Bool {
            switch self {
            case .answered, .answeredUnlisted: return true
            default: return false
            }
        }
    }

    public struct Reply: Equatable, Sendable {
        /// The datagram to send back, or nil to stay silent.
        public var bytes: [UInt8]?
        public var decision: Decision
    }

    /// `address`, when given, picks the A record per name (per-name addresses,
    /// `NameAddresses`); nil from it (the pool is full) answers SERVFAIL. With
    /// `unlisted` hold or pass and per-name addresses, an unlisted name `--allow`
    /// would accept is answered with its own address too.
    public static func reply(to message: [UInt8], allowlist: Allowlist, config: AnswerConfig = .init(),
                             unlisted: UnlistedNames = .refuse,
                             address: ((String) -> IPAddress?)? = nil) -> Reply {
        let query: Query
        switch parseQuery(message) {
        case .drop(let why):
            return Reply(bytes: nil, decision: .dropped(why))
        case .error(let id, let rd, let rcode, let why):
            return Reply(bytes: response(id: id, rd: rd, rcode: rcode, rawQuestion: [], answers: [], ttl: 0),
                         decision: .error(rcode, reason: why))
        case .query(let q):
            query = q
        }
        let q = query.question
        func respond(_ rcode: RCode, _ answers: [IPAddress] = []) -> [UInt8] {
            response(id: query.id, rd: query.recursionDesired, rcode: rcode, rawQuestion: query.rawQuestion,
                     answers: answers, ttl: config.ttl)
        }
        guard q.qclass == classIN || q.qclass == 255 else {
            return Reply(bytes: respond(.refused), decision: .error(.refused, reason: "class \(q.qclass) for \(q.name)"))
        }
        if q.isPlausibleHostName, allowlist.match(q.name) == nil, let address, unlisted.admits(q.name) {
            var answers: [IPAddress] = []
            if q.type == typeA || q.type == typeANY {
                guard let a = address(q.name) else {
                    return Reply(bytes: respond(.servFail),
                                 decision: .error(.servFail, reason: "no per-name address left for \(q.name)"))
                }
                answers.append(a)
            }
            return Reply(bytes: respond(.noError, answers),
                         decision: .answeredUnlisted(name: q.name, type: q.type, addresses: answers))
        }
        guard q.isPlausibleHostName, let pattern = allowlist.match(q.name) else {
            let why = q.isPlausibleHostName ? "not in the allowlist" : "not a host name"
            return Reply(bytes: respond(.nxDomain), decision: .nxDomain(name: q.name, reason: why))
        }
        var answers: [IPAddress] = []
        if q.type == typeA || q.type == typeANY {
            if let address {
                guard let a = address(q.name) else {
                    return Reply(bytes: respond(.servFail),
                                 decision: .error(.servFail, reason: "no per-name address left for \(q.name)"))
                }
                answers.append(a)
            } else {
                answers.append(config.ipv4)
            }
        }
        if (q.type == typeAAAA || q.type == typeANY), let v6 = config.ipv6 { answers.append(v6) }
        return Reply(bytes: respond(.noError, answers),
                     decision: .answered(name: q.name, type: q.type, pattern: pattern.description, addresses: answers))
    }

    /// Builds a response: QR and AA set, RA clear, RD echoed, the question echoed,
    /// answers pointing back at the question name (offset 12).
    public static func response(id: UInt16, rd: Bool, rcode: RCode, rawQuestion: [UInt8],
                                answers: [IPAddress], ttl: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12 + rawQuestion.count + answers.count * 28)
        func u16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xff)) }
        u16(id)
        u16(0x8000 | 0x0400 | (rd ? 0x0100 : 0) | UInt16(rcode.rawValue))
        u16(rawQuestion.isEmpty ? 0 : 1)
        u16(UInt16(answers.count))
        u16(0)
        u16(0)
        out.append(contentsOf: rawQuestion)
        for a in answers {
            u16(0xc00c)
            u16(a.isIPv4 ? typeA : typeAAAA)
            u16(classIN)
            u16(UInt16(ttl >> 16))
            u16(UInt16(ttl & 0xffff))
            u16(UInt16(a.byteCount))
            for i in 0..<a.byteCount { out.append(a[i]) }
        }
        return out
    }
}
