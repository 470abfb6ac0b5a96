import Testing
@testable import AgentpenPolicy

/// IPAddress is stored inline (two words and a flag): these pin that it stays a
/// plain value and that every way in and out agrees with the byte form it had
/// when it was a `[UInt8]`.
@Suite struct IPAddressStorageTests {
    static func requireBitwiseCopyable<T: BitwiseCopyable>(_: T.Type) -> Int { MemoryLayout<T>.size }

    @Test func isAnInlineValue() {
        // BitwiseCopyable: no reference (no array buffer) inside; 16 bytes and the family flag.
        #expect(Self.requireBitwiseCopyable(IPAddress.self) == 17)
    }

    static let zeros: [UInt8] = Array(repeating: 0, count: 16)
    static let ones: [UInt8] = Array(repeating: 0xff, count: 16)
    static let forms: [(String, [UInt8])] = [
        ("1.2.3.4", [1, 2, 3, 4]),
        ("255.0.128.7", [255, 0, 128, 7]),
        ("::1", zeros.dropLast() + [1]),
        ("2001:db8::ff00:42:8329", [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0x00, 0x00, 0x42, 0x83, 0x29]),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", ones.dropLast() + [0xfe]),
        ("::ffff:10.1.2.3", zeros.prefix(10) + [0xff, 0xff, 10, 1, 2, 3]),
    ]

    @Test(arguments: forms)
    func textBytesAndSubscriptAgree(_ text: String, _ bytes: [UInt8]) throws {
        let a = try #require(IPAddress(text))
        #expect(a.bytes == bytes)
        #expect(a.byteCount == bytes.count && a.isIPv4 == (bytes.count == 4))
        #expect((0..<a.byteCount).map { a[$0] } == bytes)
        #expect(IPAddress(bytes: bytes) == a)
        #expect(IPAddress(bytes: bytes[...]) == a)
        #expect(a.withUnsafeBufferPointer { Array($0) } == bytes)
        #expect(IPAddress(a.description) == a)
    }

    @Test func familiesStayApart() throws {
        let v4 = IPAddress(1, 2, 3, 4)
        let mapped = try #require(IPAddress("::ffff:1.2.3.4"))
        let compatible = try #require(IPAddress("::1.2.3.4"))
        #expect(v4 != mapped && v4 != compatible && mapped != compatible)
        #expect(Set([v4, mapped, compatible, IPAddress(1, 2, 3, 4)]).count == 3)
        #expect(IPAddress("0.0.0.0") != IPAddress("::"))
        #expect(IPAddress.loopbackV6.bytes == [UInt8](repeating: 0, count: 15) + [1])
        #expect(IPAddress.loopbackV4.bytes == [127, 0, 0, 1])
    }

    @Test func otherByteCountsAreRefused() {
        for n in [0, 1, 3, 5, 8, 15, 17, 32] {
            #expect(IPAddress(bytes: [UInt8](repeating: 1, count: n)) == nil, "\(n) bytes")
        }
    }

    @Test func aByteBeyondTheAddressTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = IPAddress(1, 2, 3, 4)[4]
        }
    }
}
