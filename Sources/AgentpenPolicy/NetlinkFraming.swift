/// Netlink's framing, for the two readers of kernel netlink answers (NFLog's
/// records, NftCounterDump's counters): messages of a datagram and attributes
/// of a message, every length checked against what is left, bounded in number.
enum NetlinkFraming {
    struct Message {
        var type: UInt16
        /// After the 16-byte header, to the message's own end.
        var body: Range<Int>
    }

    /// At most `max` messages; `cut` when one did not fit (reading stops there).
    static func messages(_ b: [UInt8], max: Int) -> (list: [Message], cut: Bool) {
        var list: [Message] = []
        var pos = 0
        while pos + 16 <= b.count, list.count < max {
            let length = le32(b, pos)
            guard length >= 16, length <= b.count - pos else { return (list, true) }
            list.append(Message(type: UInt16(le16(b, pos + 4)), body: (pos + 16)..<(pos + length)))
            pos += (length + 3) & ~3
        }
        return (list, false)
    }

    /// The attributes in `range` (type with its flag bits masked off, payload),
    /// at most 64; `cut` when one did not fit (reading stops there).
    static func attributes(_ b: [UInt8], in range: Range<Int>) -> (list: [(type: UInt16, payload: Range<Int>)], cut: Bool) {
        var list: [(type: UInt16, payload: Range<Int>)] = []
        var pos = range.lowerBound
        while pos + 4 <= range.upperBound, list.count < 64 {
            let length = le16(b, pos)
            guard length >= 4, length <= range.upperBound - pos else { return (list, true) }
            list.append((UInt16(le16(b, pos + 2)) & 0x3fff, (pos + 4)..<(pos + length)))
            pos += (length + 3) & ~3
        }
        return (list, false)
    }

    static func le16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    static func le32(_ b: [UInt8], _ i: Int) -> Int { le16(b, i) | le16(b, i + 2) << 16 }

    /// An error message's errno (its first four bytes, negated; 0 is an ack).
    static func errno(_ b: [UInt8], _ m: Message) -> Int32? {
        guard m.body.count >= 4 else { return nil }
        let e = Int32(truncatingIfNeeded: UInt32(le32(b, m.body.lowerBound)))
        // Negated with a check: a hostile -2^31 must not trap (found by the fuzzer).
        return e == 0 ? nil : e == .min ? .max : -e
    }
}
