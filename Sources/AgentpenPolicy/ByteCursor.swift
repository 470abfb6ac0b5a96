/// A read position over bytes that came from outside (a ClientHello, a DNS
/// query): the one way the parsers look at hostile input.
///
/// Every read first checks what is left and answers nil (or false) past the
/// end without moving, so a malformed length becomes a parse error. Underneath,
/// every byte is read through `ArraySlice`'s subscript, which is bounds-checked
/// in release builds too: a mistake in the cursor itself traps instead of
/// reading past the input. A cursor from `window(_:)` is confined to its
/// window; it cannot read the bytes after it, though they share the storage.
///
/// (Not a `RawSpan`: storing one in a struct needs the experimental Lifetimes
/// feature on Swift 6.3.1.)
public struct ByteCursor: Sendable {
    private let bytes: ArraySlice<UInt8>
    /// Index into `bytes` of the next byte to read.
    private var index: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    /// Bytes read or skipped so far.
    public var offset: Int { index - bytes.startIndex }
    public var remaining: Int { bytes.endIndex - index }
    public var atEnd: Bool { index >= bytes.endIndex }

    public mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    /// Big-endian.
    public mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { index += 2 }
        return UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
    }

    /// Big-endian, three bytes (TLS handshake lengths).
    public mutating func u24() -> UInt32? {
        guard remaining >= 3 else { return nil }
        defer { index += 3 }
        return UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
    }

    /// Passes over `count` bytes; false (not moving) if fewer are left or `count` is negative.
    public mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        index += count
        return true
    }

    /// The next `count` bytes; nil (not moving) if fewer are left or `count` is negative.
    public mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, remaining >= count else { return nil }
        defer { index += count }
        return bytes[index..<(index + count)]
    }

    /// A cursor over the next `count` bytes only (a length-prefixed field).
    public mutating func window(_ count: Int) -> ByteCursor? {
        bytes(count).map(ByteCursor.init)
    }

    /// As many of the next `count` bytes as there are (for input that arrives in pieces).
    public mutating func prefix(upTo count: Int) -> ArraySlice<UInt8> {
        precondition(count >= 0, "ByteCursor.prefix(upTo:) with a negative count")
        let k = min(count, remaining)
        defer { index += k }
        return bytes[index..<(index + k)]
    }

    /// The bytes read since `mark`, an earlier copy of this cursor.
    public func bytes(since mark: ByteCursor) -> ArraySlice<UInt8> {
        bytes[mark.index..<index]
    }
}
