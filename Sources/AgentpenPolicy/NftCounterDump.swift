/// The firewall's named counters read straight from the kernel over nfnetlink
/// (NFT_MSG_GETOBJ, a dump of one table's counter objects), instead of running
/// `nft list counters` at the end of every run (a process start and ~3 ms on the
/// way out). Pure: the request's bytes, and the parse of what the kernel answers,
/// every length checked against what is left. The socket is AgentpenKernel's.
public enum NftCounterDump {
    static let subsysNFTables: UInt16 = 10
    static let msgNewObject: UInt16 = 18, msgGetObject: UInt16 = 19
    static let nlmsgError: UInt16 = 2, nlmsgDone: UInt16 = 3
    static let familyInet: UInt8 = 1
    static let objTable: UInt16 = 1, objName: UInt16 = 2, objType: UInt16 = 3, objData: UInt16 = 4
    static let counterBytes: UInt16 = 1, counterPackets: UInt16 = 2
    static let objectCounter: UInt32 = 1

    /// A dump request for the counter objects of `table` in the inet family.
    public static func request(table: String, sequence: UInt32) -> [UInt8] {
        func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)] }
        func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
            let a = le16(UInt16(4 + payload.count)) + le16(type) + payload
            return a + [UInt8](repeating: 0, count: (4 - a.count % 4) % 4)
        }
        let name = Array(table.utf8) + [0]
        let body = [familyInet, 0, 0, 0]                                  // nfgenmsg: inet, v0, res_id 0
            + attribute(objTable, name)
            + attribute(objType, [0, 0, 0, UInt8(objectCounter)])          // big-endian NFT_OBJECT_COUNTER
        let flags: UInt16 = 0x1 | 0x300                                    // NLM_F_REQUEST | NLM_F_DUMP
        return le32(UInt32(16 + body.count)) + le16(subsysNFTables << 8 | msgGetObject) + le16(flags)
            + le32(sequence) + le32(0) + body
    }

    /// What one receive buffer holds.
    public struct Batch: Equatable, Sendable {
        /// Counter name → packets and bytes, of `table`'s counter objects only.
        public var counters: [String: Counter] = [:]
        /// The dump's end (NLMSG_DONE) was in this buffer.
        public var done = false
        /// Errors the kernel sent, as errno values.
        public var errors: [Int32] = []
        /// Messages that did not fit or could not be read.
        public var unreadable = 0
    }

    public struct Counter: Equatable, Sendable {
        public var packets: UInt64
        public var bytes: UInt64
        public init(packets: UInt64, bytes: UInt64) { self.packets = packets; self.bytes = bytes }
    }

    /// Parses one datagram of the dump: at most `maxMessages` messages; only
    /// objects of `table` whose type is counter are kept.
    public static func parse(_ b: [UInt8], table: String, maxMessages: Int = 256) -> Batch {
        var out = Batch()
        let (messages, cut) = NetlinkFraming.messages(b, max: maxMessages)
        for m in messages {
            switch m.type {
            case nlmsgDone:
                out.done = true
            case nlmsgError:
                if let e = NetlinkFraming.errno(b, m) { out.errors.append(e) }
            case subsysNFTables << 8 | msgNewObject:
                if let (name, counter) = object(b, m.body, table: table) { out.counters[name] = counter }
                else { out.unreadable += 1 }
            default:
                out.unreadable += 1
            }
        }
        if cut { out.unreadable += 1 }
        return out
    }

    /// One NFT_MSG_NEWOBJ body: nil unless it is a counter of `table` with both values.
    static func object(_ b: [UInt8], _ body: Range<Int>, table: String) -> (String, Counter)? {
        guard body.count >= 4 else { return nil }
        var t: String?, name: String?, kind: UInt32?, counter: Counter?
        for (type, range) in NetlinkFraming.attributes(b, in: (body.lowerBound + 4)..<body.upperBound).list {
            switch type {
            case objTable: t = string(b, range)
            case objName: name = string(b, range)
            case objType: kind = range.count == 4 ? UInt32(bigEndian: b, range.lowerBound) : nil
            case objData:
                var packets: UInt64?, bytes: UInt64?
                for (inner, r) in NetlinkFraming.attributes(b, in: range).list where r.count == 8 {
                    if inner == counterPackets { packets = UInt64(bigEndian: b, r.lowerBound) }
                    if inner == counterBytes { bytes = UInt64(bigEndian: b, r.lowerBound) }
                }
                if let packets, let bytes { counter = Counter(packets: packets, bytes: bytes) }
            default: continue
            }
        }
        guard t == table, kind == objectCounter, let name, let counter else { return nil }
        return (name, counter)
    }

    /// A NUL-terminated attribute string (nil without its NUL or when not UTF-8).
    static func string(_ b: [UInt8], _ r: Range<Int>) -> String? {
        guard let nul = b[r].firstIndex(of: 0) else { return nil }
        return String(validating: b[r.lowerBound..<nul], as: UTF8.self)
    }
}

private extension UInt32 {
    init(bigEndian b: [UInt8], _ i: Int) {
        self = UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}

private extension UInt64 {
    init(bigEndian b: [UInt8], _ i: Int) {
        self = UInt64(UInt32(bigEndian: b, i)) << 32 | UInt64(UInt32(bigEndian: b, i + 4))
    }
}
