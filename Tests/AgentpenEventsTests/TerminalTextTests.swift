import Foundation
import Testing
@testable import AgentpenEvents

@Suite struct TerminalTextTests {

    @Test func literalsAreTrustedInterpolationsEscaped() {
        let name = "evil\nagentpen: forged"
        let t: TerminalText = "blocked \(name):\n  next"
        #expect(t.rendered == "blocked evil\\nagentpen: forged:\n  next")
    }

    @Test(arguments: [
        ("\u{1b}]0;pwned\u{07}", #"\x1b]0;pwned\x07"#),     // OSC: set the window title
        ("\u{1b}[2J\u{1b}[H", #"\x1b[2J\x1b[H"#),           // CSI: clear the screen
        ("a\rb", #"a\rb"#),
        ("a\nb", #"a\nb"#),
        ("a\tb", #"a\tb"#),
        ("a\u{0}b", #"a\x00b"#),
        ("a\u{7f}b", #"a\x7fb"#),
        ("\u{80}\u{85}\u{9b}\u{9f}", #"\u{80}\u{85}\u{9b}\u{9f}"#),   // C1 as code points
        ("a\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}b", #"a\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}b"#),
        ("\u{2066}\u{2067}\u{2068}\u{2069}", #"\u{2066}\u{2067}\u{2068}\u{2069}"#),
        ("\u{200e}\u{200f}\u{061c}\u{200b}\u{feff}", #"\u{200e}\u{200f}\u{61c}\u{200b}\u{feff}"#),
        ("\u{2028}\u{2029}", #"\u{2028}\u{2029}"#),
        ("\u{e0041}\u{e000}\u{fffd}\u{3164}", #"\u{e0041}\u{e000}\u{fffd}\u{3164}"#),
        (#"back\slash \x1b"#, #"back\\slash \\x1b"#),      // a literal "\x1b" cannot pass for an escape
        ("plain-host.example_1 é 日本 ✓", "plain-host.example_1 é 日本 ✓"),
    ])
    func escapes(_ input: String, _ expected: String) {
        let t: TerminalText = "\(input)"
        #expect(t.rendered == expected, "\(input.debugDescription)")
        #expect(TerminalText.escape(input) == expected)
    }

    @Test func rawBytesShowInvalidUTF8AsHex() {
        let t: TerminalText = "\(bytes: [0x61, 0x80, 0x9b, 0xc2, 0x85, 0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xe2, 0x82, 0x62])"
        // 0x80 and 0x9b raw, U+0085 well formed, 0xff, an overlong '/', a surrogate, a truncated sequence.
        #expect(t.rendered == #"a\x80\x9b\u{85}\xff\xc0\xaf\xed\xa0\x80\xe2\x82b"#, "\(t.rendered)")
        let ok: TerminalText = "\(bytes: Array("é✓\u{1F600}".utf8))"
        #expect(ok.rendered == "é✓\u{1F600}")
    }

    @Test func noEscapedOutputHoldsARawDangerousCharacter() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let fromBytes = TerminalText.escape(bytes: bytes)
            let fromString = TerminalText.escape(String(decoding: bytes, as: UTF8.self))
            for out in [fromBytes, fromString] {
                #expect(!out.unicodeScalars.contains { TerminalText.isDangerous($0) }, "\(bytes)")
            }
        }
    }

    @Test func indentedLinesNeverStartALine() {
        let t: TerminalText = "listing:\n\(indented: "table inet x {\nagentpen: forged\u{1b}[1A")"
        #expect(t.rendered == "listing:\n    table inet x {\n    agentpen: forged\\x1b[1A")
    }

    @Test func writesEveryBytePastANul() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let t: TerminalText = "before \("a\u{0}b") after"
        #expect(t.write(to: fds[1]))
        close(fds[1])
        var buf = [UInt8](repeating: 0, count: 256)
        let n = read(fds[0], &buf, buf.count)
        close(fds[0])
        #expect(String(decoding: buf[0..<max(n, 0)], as: UTF8.self) == #"before a\x00b after"#)
    }

    @Test func joinedKeepsSeparatorsTrusted() {
        let items: [TerminalText] = ["\("a\nb")", "c"]
        #expect(items.joined(separator: ", ").rendered == #"a\nb, c"#)
    }
}

@Suite struct EventLineDecoderTests {
    @Test func decodesSplitLinesAndDropsGarbage() {
        let e1 = Event(.dnsRefused, subject: "a\u{7f}\u{202e}\n", reason: "x", time: Date(timeIntervalSince1970: 1_700_000_000))
        let e2 = Event(.connectionBlocked, subject: "b", reason: "y", time: Date(timeIntervalSince1970: 1_700_000_001))
        let stream = Array((e1.jsonLine() + "\n" + "not json\n\u{0}\u{ff}\n" + e2.jsonLine() + "\n").utf8)
        let d = EventLineDecoder()
        var got: [Event] = []
        for b in stream { got += d.feed([b]) }   // one byte at a time
        #expect(got == [e1, e2])
        #expect(d.rejected == 2)
    }

    @Test func overlongLineIsDroppedWithoutBeingHeld() {
        let d = EventLineDecoder()
        let chunk = [UInt8](repeating: 0x41, count: 4096)
        for _ in 0..<(EventLineDecoder.maxLine / 4096 + 4) { #expect(d.feed(chunk).isEmpty) }
        let e = Event(.dnsRefused, subject: "after", reason: "z", time: Date(timeIntervalSince1970: 1_700_000_000))
        #expect(d.feed(Array(("\n" + e.jsonLine() + "\n").utf8)) == [e])
        #expect(d.rejected == 1)
    }
}
