import FoundationEssentials
import Glibc

/// Text on its way to the user's terminal. The only way agentpen prints: its
/// string literals are agentpen's own words (trusted, newlines included), and
/// every interpolated value is escaped, because names, paths and reasons come
/// from the sandbox or the project. An escaped value shows every control byte,
/// DEL, C1 control, bidi override and other invisible format character as a
/// visible escape (`\x1b`, `\n`, `\u{202e}`), undecodable bytes as `\xNN`, and
/// the backslash as `\\`; so it stays on the line agentpen started, cannot move
/// the cursor, retitle the window, hide what follows or reorder what is shown.
///
///     printError("blocked \(event.subject): \(event.reason)")
public struct TerminalText: Sendable, Equatable, CustomStringConvertible, ExpressibleByStringInterpolation {
    /// Safe to write as is.
    public private(set) var rendered: String

    public var description: String { rendered }

    /// Only a literal in agentpen's source can make trusted text: a `String`
    /// value cannot be passed here.
    public init(stringLiteral value: StaticString) {
        rendered = value.description
    }

    public init(stringInterpolation: StringInterpolation) {
        rendered = stringInterpolation.rendered
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var rendered = ""

        public init(literalCapacity: Int, interpolationCount: Int) {
            rendered.reserveCapacity(literalCapacity + 16 * interpolationCount)
        }

        public mutating func appendLiteral(_ literal: StaticString) {
            rendered += literal.description
        }

        /// Already safe.
        public mutating func appendInterpolation(_ text: TerminalText) {
            rendered += text.rendered
        }

        /// Any value, escaped.
        public mutating func appendInterpolation<T>(_ value: T) {
            TerminalText.escape(String(describing: value), into: &rendered)
        }

        /// Raw bytes (a name off the wire), escaped; invalid UTF-8 shows as `\xNN`.
        public mutating func appendInterpolation(bytes: some Sequence<UInt8>) {
            TerminalText.escape(bytes: bytes, into: &rendered)
        }

        /// Several lines of program output (nft's listing): each escaped, each
        /// on its own indented line, so none starts a line of its own.
        public mutating func appendInterpolation(indented text: some StringProtocol) {
            var first = true
            for line in String(text).unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
                rendered += first ? "    " : "\n    "
                first = false
                TerminalText.escape(String(line), into: &rendered)
            }
        }
    }

    public static func + (a: TerminalText, b: TerminalText) -> TerminalText {
        var t = a
        t.rendered += b.rendered
        return t
    }

    public static func += (a: inout TerminalText, b: TerminalText) {
        a.rendered += b.rendered
    }

    /// Columns it takes (one per Character: the escaped text holds no control
    /// or invisible character; wide characters count as one).
    public var width: Int { rendered.count }

    /// At most `columns` Characters, "…" marking a cut. Safe: what is rendered
    /// holds no escape sequence to cut in half (colour is added after).
    public func truncated(to columns: Int) -> TerminalText {
        guard rendered.count > columns else { return self }
        var t = self
        t.rendered = columns <= 0 ? "" : String(rendered.prefix(columns - 1)) + "…"
        return t
    }

    /// Cut or filled with spaces to exactly `columns`.
    public func padded(to columns: Int) -> TerminalText {
        var t = truncated(to: columns)
        if t.rendered.count < columns { t.rendered += String(repeating: " ", count: columns - t.rendered.count) }
        return t
    }

    // MARK: Escaping

    /// Whether `s` must not reach a terminal as itself: C0 and C1 controls, DEL,
    /// format characters (bidi embeddings, overrides and isolates, marks, zero
    /// widths, the BOM, tags), line and paragraph separators, private use,
    /// unassigned and noncharacter code points, the replacement character (what
    /// undecodable input became), and the invisible Hangul fillers.
    public static func isDangerous(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x20 || v == 0x7f { return true }
        if v < 0x7f { return false }
        if v <= 0x9f || v == 0xfffd { return true }
        if v == 0x115f || v == 0x1160 || v == 0x3164 || v == 0xffa0 { return true }
        if s.properties.isNoncharacterCodePoint { return true }
        switch s.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned:
            return true
        default:
            return false
        }
    }

    /// `text` with every dangerous character and the backslash escaped.
    public static func escape(_ text: some StringProtocol) -> String {
        var out = ""
        escape(String(text), into: &out)
        return out
    }

    static func escape(_ text: String, into out: inout String) {
        for s in text.unicodeScalars { escape(s, into: &out) }
    }

    static func escape(_ s: Unicode.Scalar, into out: inout String) {
        switch s {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if s.value < 0x20 || s.value == 0x7f {
                out += "\\x" + hex2(UInt8(s.value))
            } else if s.value > 0x7f && isDangerous(s) {
                out += "\\u{" + String(s.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(s)
            }
        }
    }

    /// Bytes decoded as UTF-8; a byte that is not part of a valid sequence is
    /// shown as `\xNN`, so `\x9b` (a raw byte) and `\u{9b}` (a code point) differ.
    public static func escape(bytes: some Sequence<UInt8>) -> String {
        var out = ""
        escape(bytes: bytes, into: &out)
        return out
    }

    static func escape(bytes: some Sequence<UInt8>, into out: inout String) {
        let b = Array(bytes)
        var i = 0
        while i < b.count {
            let (scalar, length) = decodeUTF8(b, at: i)
            if let scalar { escape(scalar, into: &out) }
            else { for k in i..<(i + length) { out += "\\x" + hex2(b[k]) } }
            i += length
        }
    }

    /// One UTF-8 sequence at `i`: the scalar and its length, or nil and the
    /// length of the invalid prefix (at least 1). Overlong forms, surrogates
    /// and values past U+10FFFF are invalid.
    static func decodeUTF8(_ b: [UInt8], at i: Int) -> (Unicode.Scalar?, Int) {
        let c0 = b[i]
        if c0 < 0x80 { return (Unicode.Scalar(c0), 1) }
        let need: Int, minimum: UInt32
        var value: UInt32
        switch c0 {
        case 0xc2...0xdf: need = 1; minimum = 0x80; value = UInt32(c0 & 0x1f)
        case 0xe0...0xef: need = 2; minimum = 0x800; value = UInt32(c0 & 0x0f)
        case 0xf0...0xf4: need = 3; minimum = 0x10000; value = UInt32(c0 & 0x07)
        default: return (nil, 1)
        }
        var k = 1
        while k <= need {
            guard i + k < b.count, b[i + k] & 0xc0 == 0x80 else { return (nil, k) }
            value = value << 6 | UInt32(b[i + k] & 0x3f)
            k += 1
        }
        guard value >= minimum, let s = Unicode.Scalar(value) else { return (nil, k) }
        return (s, k)
    }

    static func hex2(_ v: UInt8) -> String {
        let digits = Array("0123456789abcdef".unicodeScalars)
        var s = ""
        s.unicodeScalars.append(digits[Int(v >> 4)])
        s.unicodeScalars.append(digits[Int(v & 0xf)])
        return s
    }

    // MARK: Writing

    /// Writes the whole text to `fd` (every byte, whatever it holds; retried on
    /// EINTR and short writes). False if the descriptor refused it.
    @discardableResult
    public func write(to fd: Int32) -> Bool {
        var bytes = Array(rendered.utf8)
        return bytes.withUnsafeMutableBytes { TerminalText.writeAll(fd, UnsafeRawBufferPointer($0)) }
    }

    /// "agentpen: MESSAGE" as one line on stderr.
    public static func printError(_ message: TerminalText) {
        ("agentpen: " + message + "\n").write(to: 2)
    }

    /// write(2) over the whole buffer.
    public static func writeAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < buf.count {
            let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            if n == 0 { return false }
            done += n
        }
        return true
    }
}

extension Sequence where Element == TerminalText {
    public func joined(separator: TerminalText = "") -> TerminalText {
        var out: TerminalText = ""
        var first = true
        for t in self {
            if !first { out += separator }
            out += t
            first = false
        }
        return out
    }
}
