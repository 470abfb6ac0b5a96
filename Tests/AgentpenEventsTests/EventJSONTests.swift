import AgentpenEvents
import Foundation
import Testing

/// `Event.jsonLine` is written by hand; these hold it to what JSONEncoder wrote
/// before (the format readers of events.jsonl know), byte for byte, and to
/// decoding back to the same event.
@Suite struct EventJSONTests {
    static func encoderLine(_ e: Event) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(e), as: UTF8.self)
    }

    static func decoded(_ line: String) throws -> Event {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(Event.self, from: Data(line.utf8))
    }

    static let times: [Date] = [
        Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_764_633_777.999),
        Date(timeIntervalSince1970: 1_798_761_599.5), Date(timeIntervalSince1970: 951_782_400),   // 2000-02-29
        Date(timeIntervalSince1970: 4_102_444_800.25),
    ]

    @Test func everyASCIIScalarIsWrittenAsJSONEncoderWroteIt() throws {
        for v in UInt32(0)..<0x7f {
            let c = String(Character(Unicode.Scalar(v)!))
            var e = Event(.dnsRefused, subject: "a\(c)b", reason: c + "/" + c, details: ["k\(c)": c], time: Self.times[1])
            e.seq = Int(v)
            #expect(e.jsonLine() == (try Self.encoderLine(e)), "scalar \(v)")
            #expect(try Self.decoded(e.jsonLine()) == Event.decodedForm(e))
        }
    }

    @Test func fieldsTimesAndKeyOrderAreJSONEncoders() throws {
        let detailSets: [[String: String]] = [
            [:], ["upstream": "198.18.0.1:443", "bytes-up": "12", "bytes-down": "3400", "duration-ms": "7"],
            ["a10": "x", "a9": "y", "A1": "z", "a-b": "", "a_b": "", "ab": "", "é": "ü", "😀": "🚀"],
        ]
        for (i, time) in Self.times.enumerated() {
            for details in detailSets {
                var e = Event(.connectionAllowed, subject: "api.example.com", reason: "allowed: \"preset\" \\ list",
                              details: details, time: time)
                if i % 2 == 0 { e.seq = i * 1000 }
                if i % 3 == 0 { e.session = "20261201-234937-21174" }
                #expect(e.jsonLine() == (try Self.encoderLine(e)))
                #expect(try Self.decoded(e.jsonLine()) == Event.decodedForm(e))
            }
        }
    }

    /// Beyond ASCII, JSONEncoder writes characters as they are; the hand writer
    /// does too, except the dangerous ones, which it escapes (and JSONEncoder did
    /// not: the old line was escaped a second time for those).
    @Test func beyondASCIIOnlyTheDangerousAreEscaped() throws {
        let plain = ["é", "中文", "😀", "\u{a0}", "ß"]
        for c in plain {
            let e = Event(.setup, subject: c, reason: c, details: [c: c], time: Self.times[2])
            #expect(e.jsonLine() == (try Self.encoderLine(e)))
        }
        for c in ["\u{7f}", "\u{85}", "\u{9b}", "\u{202e}", "\u{2066}", "\u{200b}", "\u{feff}", "\u{e0001}"] {
            let e = Event(.setup, subject: "x\(c)y", reason: c, details: ["k": c], time: Self.times[2])
            let line = e.jsonLine()
            #expect(!line.unicodeScalars.contains { $0.value >= 0x7f }, "\(line)")
            #expect(try Self.decoded(line) == Event.decodedForm(e))
        }
    }
}

extension Event {
    /// What decoding gives back: the time in whole seconds.
    static func decodedForm(_ e: Event) -> Event {
        var d = e
        d.time = Date(timeIntervalSince1970: e.time.timeIntervalSince1970.rounded(.down))
        return d
    }
}
