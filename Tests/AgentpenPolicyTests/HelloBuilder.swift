import Foundation
import AgentpenPolicy

/// Builds ClientHellos by hand, so tests control every length and split.
enum HelloBuilder {
    static func u16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    static func ext(_ type: UInt16, _ body: [UInt8]) -> [UInt8] { u16(Int(type)) + u16(body.count) + body }

    static func sniExt(_ name: String) -> [UInt8] {
        let n = Array(name.utf8)
        let entry: [UInt8] = [0] + u16(n.count) + n
        return ext(0, u16(entry.count) + entry)
    }

    /// The handshake message (type 1, 3-byte length, body).
    static func message(sni: String?, keyShare: Int = 32, ech: Bool = false,
                        extra: [[UInt8]] = [], rawSNI: [UInt8]? = nil) -> [UInt8] {
        var body: [UInt8] = [3, 3]
        body += (0..<32).map { UInt8($0) }
        body += [32] + [UInt8](repeating: 0xab, count: 32)
        body += u16(6) + [0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]
        body += [1, 0]
        var exts: [UInt8] = []
        if let sni { exts += sniExt(sni) }
        if let rawSNI { exts += rawSNI }
        exts += ext(43, [2, 3, 4])
        let share: [UInt8] = u16(0x11ec) + u16(keyShare) + [UInt8](repeating: 0x5a, count: keyShare)
        exts += ext(51, u16(share.count) + share)
        if ech { exts += ext(0xfe0d, [0, 0, 1, 0, 1, 7] + u16(32) + [UInt8](repeating: 1, count: 32) + u16(16) + [UInt8](repeating: 2, count: 16)) }
        for e in extra { exts += e }
        body += u16(exts.count) + exts
        return [1, UInt8(body.count >> 16), UInt8((body.count >> 8) & 0xff), UInt8(body.count & 0xff)] + body
    }

    /// Wraps a handshake message in TLS records of the given fragment sizes (the
    /// last one takes the rest).
    static func records(_ msg: [UInt8], fragments: [Int] = []) -> [UInt8] {
        var out: [UInt8] = []
        var rest = msg[...]
        for size in fragments where !rest.isEmpty {
            let part = rest.prefix(size)
            rest = rest.dropFirst(size)
            out += [22, 3, 1] + u16(part.count) + part
        }
        if !rest.isEmpty { out += [22, 3, 1] + u16(rest.count) + rest }
        return out
    }

    static func hello(_ sni: String?, keyShare: Int = 32, ech: Bool = false) -> [UInt8] {
        records(message(sni: sni, keyShare: keyShare, ech: ech))
    }
}
