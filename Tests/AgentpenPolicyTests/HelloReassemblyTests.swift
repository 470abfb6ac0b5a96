import AgentpenTestSupport
import Testing
@testable import AgentpenPolicy

/// The proxy gives the reassembler only the bytes that arrived since the last
/// wake-up; the work per connection must stay linear however the hello is split.
@Suite struct HelloReassemblyTests {
    static func feedBytewise(_ stream: [UInt8], maxSize: Int = ClientHello.maxSize) -> (ClientHello, ClientHello.Reassembler) {
        var r = ClientHello.Reassembler(maxSize: maxSize)
        var last = ClientHello(.needMore)
        for b in stream {
            last = r.feed([b])
            if last.outcome != .needMore { break }
        }
        return (last, r)
    }

    @Test func postQuantumHelloOneBytePerRecordCostsLinearWork() {
        let msg = HelloBuilder.message(sni: "linear.example", keyShare: 1700)
        #expect(msg.count > 1750 && msg.count < 1900, "\(msg.count)")
        let stream = HelloBuilder.records(msg, fragments: Array(repeating: 1, count: msg.count))
        let (hello, r) = Self.feedBytewise(stream)
        #expect(hello.outcome == .serverName("linear.example"))
        #expect(hello.length == stream.count)
        // Each byte is looked at a bounded number of times: once on arrival, once
        // more when the complete message is parsed. Re-parsing from the start on
        // every byte would be ~stream.count² / 2 (about 55 million here).
        #expect(r.bytesExamined <= 2 * stream.count + 64, "examined \(r.bytesExamined) for \(stream.count) bytes")
        #expect(r.bodyParses == 1)
    }

    @Test func anySplitGivesTheSameAnswerAsOneParse() {
        let cases: [[UInt8]] = [
            HelloBuilder.hello("a.example"),
            HelloBuilder.hello("pq.example", keyShare: 1500),
            HelloBuilder.records(HelloBuilder.message(sni: "split.example"), fragments: [1, 3, 4, 40]),
            HelloBuilder.hello(nil),
            HelloBuilder.hello("e.example", ech: true),
            HelloBuilder.hello("a.example") + [23, 3, 3, 0, 5, 1, 2, 3, 4, 5],
            Array(HelloBuilder.hello("big.example", keyShare: 17000)[0..<40]),
            [0x16, 0x03, 0x01, 0x00, 0x04, 2, 0, 0, 0],
            Array("GET / HTTP/1.1\r\n\r\n".utf8),
        ]
        var rng = SystemRandomNumberGenerator()
        for stream in cases {
            let whole = ClientHello.parse(stream)
            for _ in 0..<20 {
                var r = ClientHello.Reassembler()
                var i = 0
                var got = ClientHello(.needMore)
                while i < stream.count && got.outcome == .needMore {
                    let k = min(stream.count - i, Int.random(in: 1...64, using: &rng))
                    got = r.feed(Array(stream[i..<(i + k)]))
                    i += k
                }
                #expect(got == whole, "\(stream.prefix(8)): \(got.outcome) vs \(whole.outcome)")
            }
        }
    }

    @Test func answerIsFinal() {
        var r = ClientHello.Reassembler()
        let first = r.feed(HelloBuilder.hello("one.example"))
        #expect(first.outcome == .serverName("one.example"))
        #expect(r.feed(HelloBuilder.hello("two.example")) == first)
    }

    @Test func manyTinyRecordsHitTheSizeBound() {
        let msg = HelloBuilder.message(sni: "tiny.example", keyShare: 3000)
        let tiny = HelloBuilder.records(msg, fragments: Array(repeating: 1, count: msg.count))
        let (hello, r) = Self.feedBytewise(tiny)
        guard case .invalid = hello.outcome else { Issue.record("\(hello.outcome)"); return }
        #expect(r.bytesExamined <= 2 * ClientHello.maxSize)
    }
}
