import AgentpenEvents
import Foundation
import Testing

@Suite struct SessionViewTests {
    static func numbered(_ events: [Event]) -> [Event] {
        events.enumerated().map { var e = $0.element; e.seq = $0.offset + 1; return e }
    }

    @Test func blocksRankByCountAndEveryStringIsEscaped() {
        var v = SessionView(id: "20261201-120000-1")
        let t0 = Date(timeIntervalSince1970: 1_796_126_400)
        var events = [Event(.runStart, subject: "/p", reason: "run started",
                            details: ["project": "/p", "agent": "claude", "profile": "untrusted", "hosts": "4"], time: t0)]
        for _ in 0..<3 { events.append(Event(.dnsRefused, subject: "a.test", reason: "not in the allowlist")) }
        events.append(Event(.connectionBlocked, subject: "\u{1b}]0;pwn\u{07}b.test\u{202e}", reason: "not in the allowlist"))
        events.append(Event(.connectionAllowed, subject: "api.example", reason: "allowed by api.example"))
        events.append(Event(.tunnelClosed, subject: "api.example", reason: "closed",
                            details: ["bytes-up": "2048", "bytes-down": "1048576", "duration-ms": "12"]))
        for e in Self.numbered(events) { v.add(e) }
        #expect(v.rankedBlocks.map(\.subject).first == "a.test" && v.rankedBlocks.first?.count == 3)
        let t = v.traffic["api.example"]
        #expect(t?.connections == 1 && t?.bytesUp == 2048 && t?.bytesDown == 1_048_576)
        #expect(v.lastSeq == events.count)
        for colour in [false, true] {
            let lines = v.render(now: t0.addingTimeInterval(65), style: .init(colour: colour, width: 100, height: 30), live: true)
            let text = lines.map(\.rendered).joined(separator: "\n")
            #expect(text.contains("uptime 1:05") && text.contains("agent claude") && text.contains("running"), "\(text)")
            #expect(text.contains(#"\x1b]0;pwn\x07b.test\u{202e}"#), "\(text)")
            #expect(text.contains("1.0 MiB"), "\(text)")
            // No raw control or bidi character but the colour sequences agentpen writes.
            let stripped = text.replacingOccurrences(of: "\u{1b}\\[[0-9;]*m", with: "", options: .regularExpression)
            #expect(!stripped.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x202e }, "\(stripped.debugDescription)")
            #expect(lines.count <= 30 && lines.allSatisfy { $0.rendered.replacingOccurrences(of: "\u{1b}\\[[0-9;]*m", with: "", options: .regularExpression).count <= 100 })
            #expect(colour == text.contains("\u{1b}["))
        }
        v.add(Event(.runEnd, subject: "/p", reason: "run ended", details: ["status": "0"], time: t0.addingTimeInterval(90)))
        let ended = v.render(now: t0.addingTimeInterval(500), style: .init(colour: false, width: 100, height: 30), live: false)
        #expect(ended[0].rendered.contains("ended (status 0)") && ended[0].rendered.contains("uptime 1:30"), "\(ended[0])")
    }

    @Test func theRefusalListNamesTheFlagAndStaysBounded() {
        var list = RefusalList()
        let first = list.add(Event(.dnsRefused, subject: "x.test", reason: "not in the allowlist", details: ["permit": "--allow x.test"]))
        let repeated = list.add(Event(.dnsRefused, subject: "x.test", reason: "not in the allowlist", details: ["permit": "--allow x.test"]))
        let other = list.add(Event(.connectionBlocked, subject: "firewall\n# forged", reason: "dropped"))
        #expect(first && !repeated && other)
        #expect(list.text.contains("dns-refused x.test (2x): not in the allowlist -> --allow x.test"), "\(list.text)")
        #expect(list.text.contains(#"firewall\n# forged (1x): dropped -> no flag permits this"#), "\(list.text)")
        for i in 0..<(RefusalList.limit + 5) { list.add(Event(.dnsRefused, subject: "n\(i).test", reason: "r")) }
        #expect(list.text.contains("7 more refusals not listed"), "\(list.text.suffix(200))")
    }

    @Test func eventsCarryTheirVersionAndSequence() throws {
        final class Lines: @unchecked Sendable { var all: [String] = [] }   // appended under the log's lock
        let box = Lines()
        let numbered = EventLog(onRecord: { _, line in box.all.append(line) })
        numbered.record(Event(.runStart, subject: "/p", reason: "r"))
        numbered.record(Event(.dnsRefused, subject: "x", reason: "r"))
        let lines = box.all
        #expect(lines.count == 2 && lines[0].contains("\"seq\":1") && lines[1].contains("\"seq\":2") && lines[0].contains("\"v\":1"))
        // A line from before `v` existed decodes as version 1.
        let old = EventLineDecoder().feed(Array(#"{"details":{},"kind":"dns-refused","reason":"r","subject":"x","time":"2026-12-01T12:00:00Z"}"#.utf8) + [10])
        #expect(old.first?.v == 1 && old.first?.seq == nil)
        #expect(numbered.countsLine().rendered == "0 allowed, refused: dns-refused 1; 0 persistence findings")
    }

    /// The counts line and the blocked summary agree on a tallied refusal: the first
    /// call as its own event, the repeats as one event with `attempts`.
    @Test func countsLineCountsTalliedAttempts() {
        let log = EventLog()
        log.record(Event(.syscallRefused, subject: "keyctl", reason: "r"))
        log.record(Event(.syscallRefused, subject: "keyctl", reason: "r", details: ["attempts": "4"]))
        #expect(log.countsLine().rendered == "0 allowed, refused: syscall-refused 5; 0 persistence findings")
        #expect(log.summary()?.rendered == "blocked 5: syscall-refused keyctl ×5")
    }
}
