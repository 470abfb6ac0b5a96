import Foundation
import Testing
@testable import AgentpenEvents

/// Event subjects come from the sandbox (DNS names, SNI) and the project (paths):
/// the summary printed at exit and the --log lines must carry them escaped.
@Suite struct EventOutputTests {
    static let hostile: [String] = [
        "\u{1b}]0;pwned\u{07}\r.test",
        "x\nagentpen: forged line",
        "a\u{0}after-nul",
        "del\u{7f}c1\u{85}\u{9b}",
        "bidi\u{202e}\u{2066}\u{200f}rtl",
    ]

    static func raw(_ text: String) -> [UInt32] {
        text.unicodeScalars.map(\.value).filter {
            $0 < 0x20 || $0 == 0x7f || (0x80...0x9f).contains($0) || (0x202a...0x202e).contains($0)
                || (0x2066...0x2069).contains($0) || $0 == 0x200e || $0 == 0x200f
        }
    }

    @Test func summaryIsOneEscapedLineThatKeepsEverything() {
        let log = EventLog()
        for s in Self.hostile { log.record(Event(.dnsRefused, subject: s, reason: "not a host name")) }
        log.record(Event(.persistenceRemoved, subject: "/p/.git/commondir", reason: "removed"))
        let summary = "\(log.summary()!)"
        #expect(Self.raw(summary).isEmpty, "raw control in \(summary.debugDescription)")
        #expect(!summary.contains("\n"))
        #expect(summary.hasPrefix("blocked 6: "))
        // Nothing after the NUL is lost, and the later item is there.
        #expect(summary.contains(#"a\x00after-nul"#), "\(summary.debugDescription)")
        #expect(summary.contains("persistence-removed /p/.git/commondir"), "\(summary.debugDescription)")
        #expect(summary.contains(#"\x1b]0;pwned\x07\r.test"#), "\(summary.debugDescription)")
        #expect(summary.contains(#"x\nagentpen: forged line"#), "\(summary.debugDescription)")
        #expect(summary.contains(#"del\x7fc1\u{85}\u{9b}"#), "\(summary.debugDescription)")
        #expect(summary.contains(#"bidi\u{202e}\u{2066}\u{200f}rtl"#), "\(summary.debugDescription)")
    }

    @Test func jsonLinesEscapeDELC1AndBidiAndRoundTrip() throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        for s in Self.hostile + ["tag\u{E0041}\u{2028}\u{feff}end", "plain \\ \"quoted\" é 日本"] {
            let e = Event(.dnsRefused, subject: s, reason: "why " + s, details: ["k" + s: s],
                          time: Date(timeIntervalSince1970: 1_700_000_000))
            let line = e.jsonLine()
            #expect(!line.contains("\n"))
            #expect(line.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f && !(0x80...0x9f).contains($0.value) },
                    "\(line.debugDescription)")
            #expect(Self.raw(line).isEmpty, "\(line.debugDescription)")
            #expect(!line.unicodeScalars.contains { [0x2028, 0x2029, 0xfeff, 0xE0041].contains($0.value) }, "\(line.debugDescription)")
            let back = try decoder.decode(Event.self, from: Data(line.utf8))
            #expect(back == e, "\(line)")
        }
        #expect(Event(.dnsRefused, subject: "a\u{7f}\u{85}\u{202e}", reason: "").jsonLine()
            .contains(#""subject":"a\u007f\u0085\u202e""#))
    }
}
