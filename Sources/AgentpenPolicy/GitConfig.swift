/// A git config file parsed the way git reads it (config.c), for the persistence
/// audit. The input is hostile (written inside the sandbox), so the parser never
/// guesses: anything git itself would reject, or that this parser cannot follow,
/// is an error, and the caller treats an unparseable config as dangerous.
public struct GitConfig: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// Lower-cased section name (`core`, `filter`).
        public var section: String
        /// The subsection as written (case-sensitive), or nil (`[core]`).
        public var subsection: String?
        /// Lower-cased variable name (`fsmonitor`).
        public var name: String
        /// The value after unquoting; nil for a bare `name` (boolean true).
        public var value: String?

        public init(section: String, subsection: String?, name: String, value: String?) {
            self.section = section; self.subsection = subsection; self.name = name; self.value = value
        }

        /// `section.subsection.name` as git prints it.
        public var key: String {
            subsection.map { "\(section).\($0).\(name)" } ?? "\(section).\(name)"
        }
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public var entries: [Entry]

    /// The last value of `section.key` (no subsection), as git would read it;
    /// nil when unset, set without `=`, or when the text is not a config git
    /// would accept (a caller validating a plan then fails closed).
    public static func value(section: String, key: String, in text: String) -> String? {
        guard let c = try? parse(Array(text.utf8)) else { return nil }
        let s = section.lowercased(), k = key.lowercased()
        return c.entries.last { $0.section == s && $0.subsection == nil && $0.name == k }?.value
    }

    /// Parses `bytes`; throws on anything git would refuse or we cannot follow.
    public static func parse(_ bytes: [UInt8]) throws(ParseError) -> GitConfig {
        var p = Parser(bytes: bytes)
        return GitConfig(entries: try p.run())
    }
}

private struct Parser {
    let bytes: [UInt8]
    var i = 0
    var line = 1
    var section: String?
    var subsection: String?
    var entries: [GitConfig.Entry] = []

    init(bytes: [UInt8]) {
        self.bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }   // git skips a UTF-8 BOM
    }

    func fail(_ reason: String) -> GitConfig.ParseError { .init(line: line, reason: reason) }

    /// The next byte with `\r\n` read as `\n`; nil at the end.
    mutating func next() throws(GitConfig.ParseError) -> UInt8? {
        guard i < bytes.count else { return nil }
        var c = bytes[i]
        i += 1
        if c == 0 { throw fail("NUL byte") }
        if c == 13, i < bytes.count, bytes[i] == 10 { c = 10; i += 1 }
        if c == 10 { line += 1 }
        return c
    }

    mutating func peek() -> UInt8? {
        guard i < bytes.count else { return nil }
        if bytes[i] == 13, i + 1 < bytes.count, bytes[i + 1] == 10 { return 10 }
        return bytes[i]
    }

    /// git's own isspace (sane_ctype): space, tab, CR (LF is handled apart).
    static func isSpace(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 13 }
    static func isAlpha(_ c: UInt8) -> Bool { (c | 0x20) >= 97 && (c | 0x20) <= 122 }
    static func isAlnum(_ c: UInt8) -> Bool { isAlpha(c) || (c >= 48 && c <= 57) }
    static func lower(_ c: UInt8) -> UInt8 { (c >= 65 && c <= 90) ? c | 0x20 : c }

    mutating func skipToEndOfLine() throws(GitConfig.ParseError) {
        while let c = try next(), c != 10 {}
    }

    mutating func run() throws(GitConfig.ParseError) -> [GitConfig.Entry] {
        while let c = try next() {
            if c == 10 || Self.isSpace(c) { continue }
            if c == 35 || c == 59 { try skipToEndOfLine(); continue }   // # ;
            if c == 91 { try header(); continue }                         // [
            guard Self.isAlpha(c) else { throw fail("unexpected character \(c)") }
            try variable(first: c)
        }
        return entries
    }

    /// `[section]`, `[section "subsection"]` or the old `[section.subsection]`.
    mutating func header() throws(GitConfig.ParseError) {
        var name: [UInt8] = []
        while true {
            guard let c = try next() else { throw fail("unterminated section header") }
            if c == 93 { break }                                         // ]
            if Self.isSpace(c) { try extendedHeader(name); return }
            guard Self.isAlnum(c) || c == 45 || c == 46 else { throw fail("bad section name") }
            name.append(Self.lower(c))
        }
        guard !name.isEmpty else { throw fail("empty section name") }
        // [a.b.c]: section a, subsection "b.c" (lower-cased, as git does for this form).
        if let dot = name.firstIndex(of: 46) {
            section = String(decoding: name[..<dot], as: UTF8.self)
            subsection = String(decoding: name[(dot + 1)...], as: UTF8.self)
        } else {
            section = String(decoding: name, as: UTF8.self)
            subsection = nil
        }
    }

    mutating func extendedHeader(_ name: [UInt8]) throws(GitConfig.ParseError) {
        guard !name.isEmpty, !name.contains(46) else { throw fail("bad section name") }
        var c = try next()
        while let s = c, Self.isSpace(s) { c = try next() }
        guard c == 34 else { throw fail("expected a quoted subsection") }   // "
        var sub: [UInt8] = []
        while true {
            guard let b = try next(), b != 10 else { throw fail("unterminated subsection") }
            if b == 34 { break }
            if b == 92 {                                                   // backslash: next byte literally
                guard let e = try next(), e != 10 else { throw fail("unterminated subsection") }
                sub.append(e)
            } else {
                sub.append(b)
            }
        }
        guard try next() == 93 else { throw fail("expected ] after the subsection") }
        section = String(decoding: name, as: UTF8.self)
        subsection = String(decoding: sub, as: UTF8.self)
    }

    mutating func variable(first: UInt8) throws(GitConfig.ParseError) {
        guard let section else { throw fail("variable outside any section") }
        var name: [UInt8] = [Self.lower(first)]
        while let c = peek(), Self.isAlnum(c) || c == 45 {
            name.append(Self.lower(c)); i += 1
        }
        while let c = peek(), Self.isSpace(c), c != 10 { i += 1 }
        let key = String(decoding: name, as: UTF8.self)
        switch peek() {
        case nil, 10?:
            _ = try next()
            entries.append(.init(section: section, subsection: subsection, name: key, value: nil))
        case 35?, 59?:
            try skipToEndOfLine()
            entries.append(.init(section: section, subsection: subsection, name: key, value: nil))
        case 61?:                                                          // =
            i += 1
            let value = try value()
            entries.append(.init(section: section, subsection: subsection, name: key, value: value))
        default:
            throw fail("bad variable name")
        }
    }

    /// A value up to the end of its (possibly continued) line: quotes, escapes,
    /// comments outside quotes, whitespace collapsed and trimmed as git does.
    mutating func value() throws(GitConfig.ParseError) -> String {
        var out: [UInt8] = []
        var quoted = false
        var pendingSpace = 0
        while true {
            guard let c = try next() else {
                if quoted { throw fail("unterminated quote") }
                break
            }
            if c == 10 {
                if quoted { throw fail("newline inside quotes") }
                break
            }
            if !quoted && (c == 35 || c == 59) { try skipToEndOfLine(); break }
            if !quoted && Self.isSpace(c) {
                if !out.isEmpty { pendingSpace += 1 }
                continue
            }
            if pendingSpace > 0 {
                out += [UInt8](repeating: 32, count: pendingSpace)
                pendingSpace = 0
            }
            if c == 92 {
                guard let e = try next() else { throw fail("backslash at the end") }
                switch e {
                case 10: continue                                          // continuation line
                case 116: out.append(9)                                    // \t
                case 98: out.append(8)                                     // \b
                case 110: out.append(10)                                   // \n
                case 92, 34: out.append(e)
                default: throw fail("bad escape sequence")
                }
                continue
            }
            if c == 34 { quoted.toggle(); continue }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
