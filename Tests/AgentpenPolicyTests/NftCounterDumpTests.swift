import AgentpenPolicy
import Testing

/// NftCounterDump: the nfnetlink request's bytes and the parse of the kernel's
/// answer, every length checked (the kernel answers, but a parse that trusts a
/// length reads past its buffer).
@Suite struct NftCounterDumpTests {
    static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
    static func le32(_ v: Int) -> [UInt8] { le16(v & 0xffff) + le16(v >> 16 & 0xffff) }
    static func be(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).reversed().map { UInt8(v >> (8 * UInt64($0)) & 0xff) } }
    static func attr(_ type: Int, _ payload: [UInt8]) -> [UInt8] {
        let a = le16(4 + payload.count) + le16(type) + payload
        return a + [UInt8](repeating: 0, count: (4 - a.count % 4) % 4)
    }
    static func message(_ type: Int, _ body: [UInt8]) -> [UInt8] {
        le32(16 + body.count) + le16(type) + le16(2) + le32(1) + le32(0) + body
    }
    static func counterObject(table: String, name: String, type: UInt64 = 1, packets: UInt64, bytes: UInt64) -> [UInt8] {
        message(10 << 8 | 18, [1, 0, 0, 0]
            + attr(1, Array(table.utf8) + [0]) + attr(2, Array(name.utf8) + [0]) + attr(3, be(type, 4))
            + attr(4 | 0x8000, attr(1, be(bytes, 8)) + attr(2, be(packets, 8)) + attr(3, [0, 0, 0, 0])))
    }
    static let done = message(3, le32(0))

    @Test func theRequestAsksForOneTablesCounterObjects() {
        let r = NftCounterDump.request(table: "agentpen", sequence: 7)
        #expect(r.count == 16 + 4 + 16 + 8)
        #expect(Array(r[0..<4]) == Self.le32(r.count))
        #expect(Array(r[4..<8]) == Self.le16(10 << 8 | 19) + Self.le16(0x301))
        #expect(Array(r[8..<12]) == Self.le32(7))
        #expect(Array(r[16..<20]) == [1, 0, 0, 0])
        #expect(Array(r[20...]) == Self.attr(1, Array("agentpen".utf8) + [0]) + Self.attr(3, [0, 0, 0, 1]))
    }

    @Test func countersOfTheTableAreRead() {
        let buffer = Self.counterObject(table: "agentpen", name: "blocked_tcp", packets: 3, bytes: 180)
            + Self.counterObject(table: "agentpen", name: "blocked_udp", packets: UInt64.max, bytes: 1 << 40)
            + Self.counterObject(table: "other", name: "blocked_icmp", packets: 9, bytes: 9)
            + Self.counterObject(table: "agentpen", name: "quota", type: 2, packets: 9, bytes: 9)
            + Self.done
        let b = NftCounterDump.parse(buffer, table: "agentpen")
        #expect(b.counters == ["blocked_tcp": .init(packets: 3, bytes: 180),
                               "blocked_udp": .init(packets: .max, bytes: 1 << 40)])
        #expect(b.done)
        #expect(b.errors.isEmpty)
        #expect(b.unreadable == 2)   // the other table's and the non-counter object
    }

    @Test func anErrorIsReportedAsItsErrno() {
        let b = NftCounterDump.parse(Self.message(2, Self.le32(-2 & 0xffff_ffff) + [UInt8](repeating: 0, count: 16)), table: "agentpen")
        #expect(b.errors == [2])
        #expect(!b.done)
        let hostile = NftCounterDump.parse(Self.message(2, [0, 0, 0, 0x80]), table: "agentpen")
        #expect(hostile.errors == [Int32.max])
    }

    /// Every truncation of a valid answer, and lengths that point past the end:
    /// nothing is read beyond the buffer, and a cut object is not a counter.
    @Test func truncatedAndLyingLengthsAreRefused() {
        let one = Self.counterObject(table: "agentpen", name: "blocked_tcp", packets: 3, bytes: 180)
        for cut in 0..<one.count {
            let b = NftCounterDump.parse(Array(one[0..<cut]), table: "agentpen")
            #expect(b.counters.isEmpty, "cut at \(cut)")
        }
        var lying = one
        lying[0] = 0xff; lying[1] = 0xff    // the message claims more than there is
        #expect(NftCounterDump.parse(lying, table: "agentpen").counters.isEmpty)
        var attrLie = one
        attrLie[20] = 0xf0                  // the table attribute claims more than its message
        #expect(NftCounterDump.parse(attrLie, table: "agentpen").counters.isEmpty)
        var noNul = one
        if let i = noNul.indices.first(where: { noNul[$0] == UInt8(ascii: "n") && noNul[$0 + 1] == 0 }) { noNul[i + 1] = UInt8(ascii: "x") }
        #expect(NftCounterDump.parse(noNul, table: "agentpen").counters.isEmpty)
    }
}
