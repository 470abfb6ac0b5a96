import Foundation
import Testing

/// What the sandbox can make agentpen print. DNS names are chosen inside the
/// sandbox byte for byte; they reach the live block lines, the exit summary and
/// the --log file. None of them may carry a control byte, a bidi override or a
/// line of its own to the user's terminal, and none may hide what comes after it.
// Inside NetworkTests: the world (its arrival log, its servers) is shared, so
// every suite that uses it runs serialized with the others.
extension NetworkTests {
@Suite struct OutputNetworkTests {
    /// Sends one raw DNS query per label given in hex, waits for each answer.
    static let query = #"""
    import socket, struct, sys
    for i, hexlabel in enumerate(sys.argv[1:]):
        label = bytes.fromhex(hexlabel)
        q = struct.pack("!HHHHHH", 0x4000 + i, 0x0100, 1, 0, 0, 0)
        q += bytes([len(label)]) + label + b"\x04test\x00" + struct.pack("!HH", 1, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(q, ("127.0.0.1", 53))
        try:
            r = s.recv(512)
            print("answered", i, r[3] & 15, flush=True)
        except Exception as e:
            print("no answer", i, e, flush=True)
    """#

    /// The hostile names' labels, and a marker that must still be visible after each.
    static let labels: [(bytes: [UInt8], marker: String)] = [
        (Array("\u{1b}]0;pwned\u{07}\r".utf8) + Array("osc-marker".utf8), "osc-marker"),
        (Array("x\nagentpen: forged line".utf8), "forged line"),
        ([0x61, 0x00] + Array("after-nul-marker".utf8), "after-nul-marker"),
        ([0x64, 0x65, 0x6c, 0x7f] + [0xc2, 0x85] + [0x9b] + Array("c1-marker".utf8), "c1-marker"),
        (Array("bidi\u{202e}\u{2066}rtl-marker".utf8), "rtl-marker"),
        (Array("csi\u{1b}[2J\u{1b}[1Aclear-marker".utf8), "clear-marker"),
    ]

    /// Lines as the terminal sees them: split at every LF byte ("\r\n" is one
    /// Character to Swift, so String.split would not see that line break).
    static func lines(_ text: String) -> [Substring] {
        text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { Substring($0) }
    }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    /// Characters that must never reach the terminal raw: every control except the
    /// newline that ends agentpen's own lines, DEL, C1, bidi and other invisible
    /// format characters, and the replacement character (undecodable input).
    static func rawDanger(_ text: String) -> [String] {
        text.unicodeScalars.compactMap { s -> String? in
            let v = s.value
            let bad = (v < 0x20 && v != 0x0a) || v == 0x7f || (0x80...0x9f).contains(v)
                || (0x202a...0x202e).contains(v) || (0x2066...0x2069).contains(v) || v == 0x200e || v == 0x200f
                || v == 0x061c || v == 0xfffd || v == 0x2028 || v == 0x2029
            return bad ? String(format: "U+%04X", v) : nil
        }
    }

    @Test func hostileDNSNamesReachTheTerminalAndLogEscaped() throws {
        let f = try NetFixture()
        let log = f.root + "/events.jsonl"
        try f.f.write(f.project + "/dnsq.py", Self.query)
        let args = Self.labels.map { "'" + Self.hex($0.bytes) + "'" }.joined(separator: " ")
        // The planted commondir is reported (and removed) after the run: a summary
        // item that sorts after every DNS refusal.
        let r = try f.sh(["--log", log] + World.baseAllow, """
            /usr/bin/python3 dnsq.py \(args)
            echo ../../elsewhere > .git/commondir
            """)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.split(separator: "\n").filter { $0.hasPrefix("answered") }.count == Self.labels.count,
                "not every query was answered: \(r.stdout)")

        // stderr: no raw control byte, no forged line, nothing cut short.
        let errBytes = Array(r.stderr.utf8)
        #expect(!errBytes.contains(0), "a NUL reached stderr")
        #expect(Self.rawDanger(r.stderr).isEmpty, "raw on stderr: \(Self.rawDanger(r.stderr)) in \(r.stderr.debugDescription)")
        let lines = Self.lines(r.stderr)
        #expect(!lines.contains { $0.hasPrefix("agentpen: forged") }, "a name forged a line: \(r.stderr.debugDescription)")
        for line in lines where !line.isEmpty {
            #expect(line.hasPrefix("agentpen: "), "a line agentpen did not start: \(String(line).debugDescription)")
        }
        let summary = lines.last { $0.hasPrefix("agentpen: blocked ") && $0.contains("persistence-removed") }
        #expect(summary != nil, "the summary lost the later item: \(r.stderr.debugDescription)")
        if let summary {
            for l in Self.labels { #expect(summary.contains(l.marker), "\(l.marker) missing: \(String(summary).debugDescription)") }
            // Escapes are visible and unambiguous.
            #expect(summary.contains(#"\x1b]0;pwned\x07\r"#), "\(String(summary).debugDescription)")
            #expect(summary.contains(#"x\nagentpen: forged line"#), "\(String(summary).debugDescription)")
            #expect(summary.contains(#"a\x00after-nul-marker"#), "\(String(summary).debugDescription)")
            #expect(summary.contains(#"\u{202e}\u{2066}rtl-marker"#), "\(String(summary).debugDescription)")
            #expect(summary.contains(#"\x7f\u{85}"#), "\(String(summary).debugDescription)")
        }
        // The live lines, one per refusal, are escaped the same way.
        #expect(lines.contains { $0.hasPrefix("agentpen: blocked ") && $0.contains(#"a\x00after-nul-marker"#) },
                "\(r.stderr.debugDescription)")

        // The log: every line JSON, no raw DEL, C1 or bidi byte, the names intact.
        let raw = try Data(contentsOf: URL(fileURLWithPath: log))
        let text = String(decoding: raw, as: UTF8.self)
        #expect(Self.rawDanger(text.replacingOccurrences(of: "\n", with: "")).isEmpty,
                "raw in the log: \(Self.rawDanger(text))")
        let logLines = Self.lines(text).filter { !$0.isEmpty }
        let events = readEvents(log)
        #expect(events.count == logLines.count, "a log line is not JSON: \(text.debugDescription)")
        let subjects = Set(events.compactMap { $0["subject"] as? String })
        for l in Self.labels {
            let name = String(decoding: l.bytes, as: UTF8.self).lowercased() + ".test"
            #expect(subjects.contains(name), "\(name.debugDescription) not in the log: \(subjects)")
        }
        #expect(events.contains { $0["kind"] as? String == "persistence-removed" }, "\(text)")
    }
}
}
