import AgentpenPolicy
import AgentpenTestSupport
import CShim
import Foundation
import Testing
@testable import AgentpenProxy

extension SNIProxyTests {
    /// The reassembler is fed only the newly peeked bytes on each wake-up: a
    /// post-quantum-sized hello in one-byte records, sent one record per write,
    /// is still decided once and reaches upstream byte for byte.
    @Test func postQuantumHelloInOneByteRecordsReachesUpstreamExactly() throws {
        let upstream = try TestServer.echo(keep: 16384)
        defer { upstream.stop() }
        let r = try rig(upstream: upstream)
        defer { r.proxy.stop() }
        let c = try Net.connect(r.port)
        defer { close(c) }
        Net.setNoDelay(c)
        let msg = HelloBuilder.message(sni: "ok.test.example", keyShare: 1700)
        let bytes = HelloBuilder.records(msg, fragments: Array(repeating: 1, count: msg.count))
        #expect(bytes.count > 10_000 && bytes.count < ClientHello.maxSize)
        // One record per segment, each seen by the proxy before the next is sent
        // (it wakes once per arrival: SO_RCVLOWAT is one past what it has).
        for (k, i) in stride(from: 0, to: bytes.count, by: 6).enumerated() {
            try Net.sendAll(c, Array(bytes[i..<min(i + 6, bytes.count)]))
            // Bounded against a hang only (30 s a record, monotonic clock).
            let deadline = DispatchTime.now() + 30
            while r.proxy.helloPeeks.withLock({ $0.count }) <= k && DispatchTime.now() < deadline {
                usleep(100)
            }
        }
        #expect(r.proxy.helloPeeks.withLock { $0.count } >= bytes.count / 6, "the proxy did not see each record")
        #expect(Net.read(c, upTo: bytes.count).0 == bytes)
        #expect(r.events.wait { $0.kind == .connectionAllowed && $0.subject == "ok.test.example" } != nil)
        // Copied out of the kernel once: with SO_PEEK_OFF (TCP, Linux 6.9 and
        // later) each peek continues where the last ended. Without it, each
        // wake-up copies the queued prefix again (bounded by the hello size).
        let peeked = r.proxy.helloPeeks.withLock { $0.bytes }
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(probe) }
        if ap_set_peek_off(probe, 0) == 0 {
            #expect(peeked == bytes.count, "peeked \(peeked) bytes for a \(bytes.count)-byte hello")
        } else {
            #expect(peeked >= bytes.count && peeked <= ClientHello.maxSize * (bytes.count / 6 + 1), "\(peeked)")
        }
    }
}
