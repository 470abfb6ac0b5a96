import AgentpenPolicy
import AgentpenTestSupport
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
        for i in stride(from: 0, to: bytes.count, by: 6) {
            try Net.sendAll(c, Array(bytes[i..<min(i + 6, bytes.count)]))
        }
        #expect(Net.read(c, upTo: bytes.count).0 == bytes)
        #expect(r.events.wait { $0.kind == .connectionAllowed && $0.subject == "ok.test.example" } != nil)
    }
}
