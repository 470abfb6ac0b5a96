import Foundation
import Glibc
import AgentpenTestSupport
import Testing
@testable import AgentpenPolicy

@Suite struct ClientHelloTests {
    @Test func readsTheServerName() {
        let r = ClientHello.parse(HelloBuilder.hello("API.Example.com"))
        #expect(r.outcome == .serverName("api.example.com"))
        #expect(!r.hasECH)
        #expect(r.length == HelloBuilder.hello("API.Example.com").count)
    }

    @Test func trailingBytesAfterTheHelloAreIgnored() {
        let bytes = HelloBuilder.hello("a.example") + [23, 3, 3, 0, 5, 1, 2, 3, 4, 5]
        let r = ClientHello.parse(bytes)
        #expect(r.outcome == .serverName("a.example"))
        #expect(r.length == bytes.count - 10)
    }

    @Test func everyPrefixNeedsMoreThenTheWholeAnswers() {
        let bytes = HelloBuilder.hello("one.byte.example")
        for k in 0..<bytes.count {
            #expect(ClientHello.parse(Array(bytes[0..<k])).outcome == .needMore, "prefix \(k)")
        }
        #expect(ClientHello.parse(bytes).outcome == .serverName("one.byte.example"))
    }

    @Test func helloSplitOverRecords() {
        let msg = HelloBuilder.message(sni: "split.example")
        for splits in [[1], [3], [4], [40], [msg.count - 1], [10, 10, 10], Array(repeating: 1, count: msg.count)] {
            let bytes = HelloBuilder.records(msg, fragments: splits)
            #expect(ClientHello.parse(bytes).outcome == .serverName("split.example"), "splits \(splits.prefix(3))")
            // And incomplete until the end.
            #expect(ClientHello.parse(Array(bytes.dropLast())).outcome == .needMore)
        }
    }

    @Test func largePostQuantumHello() {
        let bytes = HelloBuilder.hello("pq.example", keyShare: 1500)
        #expect(bytes.count > 1600 && bytes.count < 1800)
        #expect(ClientHello.parse(bytes).outcome == .serverName("pq.example"))
        // As two TCP segments: the first part alone is not enough.
        #expect(ClientHello.parse(Array(bytes[0..<1448])).outcome == .needMore)
        // And spread over two records.
        let msg = HelloBuilder.message(sni: "pq.example", keyShare: 1500)
        #expect(ClientHello.parse(HelloBuilder.records(msg, fragments: [1000])).outcome == .serverName("pq.example"))
    }

    @Test func noServerName() {
        #expect(ClientHello.parse(HelloBuilder.hello(nil)).outcome == .noServerName)
    }

    @Test func echIsReported() {
        let r = ClientHello.parse(HelloBuilder.hello("public.example", ech: true))
        #expect(r.outcome == .serverName("public.example"))
        #expect(r.hasECH)
    }

    @Test func garbageIsInvalid() {
        for bytes: [UInt8] in [
            Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
            [0x16, 0x03, 0x01, 0x00, 0x00],                 // empty record
            [0x16, 0x02, 0x00, 0x00, 0x05, 1, 0, 0, 1, 0],  // SSL 2 version
            [0x16, 0x03, 0x01, 0x00, 0x04, 2, 0, 0, 0],     // ServerHello
            [0x17, 0x03, 0x03, 0x00, 0x01, 0],               // application data
        ] {
            guard case .invalid = ClientHello.parse(bytes).outcome else {
                Issue.record("accepted \(bytes.prefix(8))")
                continue
            }
        }
        // A truncated header is just incomplete.
        #expect(ClientHello.parse([0x16, 0x03]).outcome == .needMore)
        // Random bytes never crash and never yield a name.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var b = (0..<Int.random(in: 0..<300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if b.count > 5 && Bool.random(using: &rng) { b[0] = 22; b[1] = 3; b[2] = 1 }
            if case .serverName = ClientHello.parse(b).outcome { Issue.record("name from random bytes") }
        }
        // Every single-byte corruption of a real hello is handled without a crash.
        let good = HelloBuilder.hello("fuzz.example")
        for i in 0..<good.count {
            var b = good
            b[i] ^= 0xff
            _ = ClientHello.parse(b)
        }
    }

    @Test func interruptedByAnotherRecordType() {
        let msg = HelloBuilder.message(sni: "x.example")
        var bytes = HelloBuilder.records(Array(msg[0..<20]))
        bytes += [21, 3, 3, 0, 2, 2, 40]   // alert in the middle
        bytes += HelloBuilder.records(Array(msg[20...]))
        guard case .invalid = ClientHello.parse(bytes).outcome else { Issue.record("accepted"); return }
    }

    @Test func oversizeIsRefused() {
        // Declared length over the limit: refused as soon as the header is seen.
        let big = HelloBuilder.hello("big.example", keyShare: 17000)
        guard case .invalid = ClientHello.parse(Array(big[0..<9])).outcome else { Issue.record("big declared"); return }
        // Many tiny records: more than 16 KiB on the wire without completing.
        let msg = HelloBuilder.message(sni: "tiny.example", keyShare: 3000)
        let tiny = HelloBuilder.records(msg, fragments: Array(repeating: 1, count: msg.count))
        #expect(tiny.count > ClientHello.maxSize)
        guard case .invalid = ClientHello.parse(tiny).outcome else { Issue.record("tiny records"); return }
        guard case .invalid = ClientHello.parse(Array(tiny[0..<ClientHello.maxSize])).outcome else { Issue.record("cap"); return }
        // Just under the limit is fine.
        let near = HelloBuilder.hello("near.example", keyShare: 16000)
        #expect(near.count < ClientHello.maxSize)
        #expect(ClientHello.parse(near).outcome == .serverName("near.example"))
    }

    @Test(arguments: [
        "bad\u{0}.example", "white space.example", "new\nline.example", "under_score.example",
        "127.0.0.1", "0x7f000001", "2130706433", "localhost", "a.localhost", "a..b", ".a.example",
        "trailing.example.", "*.example.com", "[::1]", "caf\u{e9}.example",
    ])
    func badServerNamesAreInvalid(_ name: String) {
        let r = ClientHello.parse(HelloBuilder.hello(name))
        guard case .invalid = r.outcome else { Issue.record("\(name.debugDescription) → \(r.outcome)"); return }
    }

    @Test func structuralSNITricks() {
        // Two server_name extensions.
        let two = HelloBuilder.records(HelloBuilder.message(sni: "a.example", extra: [HelloBuilder.sniExt("b.example")]))
        guard case .invalid = ClientHello.parse(two).outcome else { Issue.record("two sni extensions"); return }
        // Two host names in one extension.
        let e1: [UInt8] = [0] + HelloBuilder.u16(9) + Array("a.example".utf8)
        let e2: [UInt8] = [0] + HelloBuilder.u16(9) + Array("b.example".utf8)
        let twoNames = HelloBuilder.ext(0, HelloBuilder.u16(e1.count + e2.count) + e1 + e2)
        let r2 = ClientHello.parse(HelloBuilder.records(HelloBuilder.message(sni: nil, rawSNI: twoNames)))
        guard case .invalid = r2.outcome else { Issue.record("two names"); return }
        // A list length that disagrees with the extension length.
        let lying = HelloBuilder.ext(0, HelloBuilder.u16(50) + e1)
        guard case .invalid = ClientHello.parse(HelloBuilder.records(HelloBuilder.message(sni: nil, rawSNI: lying))).outcome else {
            Issue.record("lying list length"); return
        }
        // An empty server_name extension.
        let empty = HelloBuilder.ext(0, [])
        guard case .invalid = ClientHello.parse(HelloBuilder.records(HelloBuilder.message(sni: nil, rawSNI: empty))).outcome else {
            Issue.record("empty sni"); return
        }
    }

    // MARK: real ClientHellos from openssl

    /// Captures what `openssl s_client` sends first, from a local listener.
    static func captureOpenSSLHello(_ args: [String]) throws -> [UInt8] {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f000001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        listen(listener, 4)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["s_client", "-connect", "127.0.0.1:\(port)"] + args
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer {
            if p.isRunning { p.terminate() }
            p.waitUntilExit()
        }
        var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 30_000) == 1 else { throw CaptureError.timeout }
        let c = accept(listener, nil, nil)
        defer { close(c) }
        var got: [UInt8] = []
        let deadline = DispatchTime.now() + 30
        var buf = [UInt8](repeating: 0, count: 4096)
        while DispatchTime.now() < deadline {
            var cfd = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
            guard poll(&cfd, 1, 1000) == 1 else { continue }
            let n = read(c, &buf, buf.count)
            if n <= 0 { break }
            got += buf[0..<n]
            if ClientHello.parse(got).outcome != .needMore { break }
        }
        return got
    }

    enum CaptureError: Error { case timeout }

    @Test func realOpenSSLHellos() throws {
        let h13 = try Self.captureOpenSSLHello(["-servername", "Real.Example.org", "-tls1_3"])
        #expect(ClientHello.parse(h13).outcome == .serverName("real.example.org"))
        let h12 = try Self.captureOpenSSLHello(["-servername", "tls12.example.org", "-tls1_2"])
        #expect(ClientHello.parse(h12).outcome == .serverName("tls12.example.org"))
        // One byte at a time.
        for k in 1..<h12.count {
            if ClientHello.parse(Array(h12[0..<k])).outcome != .needMore { Issue.record("early answer at \(k)"); break }
        }
        // The same hello re-split over records.
        let msg = Array(h13[5...])
        #expect(ClientHello.parse(HelloBuilder.records(msg, fragments: [7, 100])).outcome == .serverName("real.example.org"))
        let none = try Self.captureOpenSSLHello(["-noservername"])
        #expect(ClientHello.parse(none).outcome == .noServerName)
    }
}
