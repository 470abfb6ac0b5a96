import AgentpenEvents
import Foundation
import Testing

/// secret-read events in the exit summary and the refusals file; the bench
/// switch that records no allowed connection; the several-sessions screen.
@Suite struct SecretAndSeveralTests {
    @Test func secretReadsHaveTheirOwnSummaryLineNotTheBlockedOne() {
        let log = EventLog()
        #expect(log.secretsLine() == nil)
        log.record(Event(.secretRead, subject: "/home/u/.netrc", reason: "r"))
        log.record(Event(.secretRead, subject: "/home/u/.aws/credentials", reason: "r"))
        log.record(Event(.secretRead, subject: "/home/u/.aws/credentials", reason: "r; 3 more", details: ["attempts": "3"]))
        #expect(log.secretsLine()?.description
                == "secrets reached for: /home/u/.aws/credentials ×4, /home/u/.netrc (empty decoys: the real files are not in the sandbox)")
        #expect(log.summary() == nil, "a secret read is not a block")
        #expect(log.countsLine().description == "0 allowed, nothing refused; 0 persistence findings; 5 secret reads")
        // The path came from inside: escaped on the one line.
        log.record(Event(.secretRead, subject: "/home/u/.ssh/\u{1b}[2Jx", reason: "r"))
        #expect(log.secretsLine()?.description.contains("\\x1b[2Jx") == true)
        var list = RefusalList()
        let added = list.add(Event(.secretRead, subject: "/home/u/.netrc", reason: "opened"))
        #expect(added)
        #expect(list.text.contains("secret-read /home/u/.netrc (1x): opened -> no flag permits this"), "\(list.text)")
    }

    @Test func theBenchSwitchRecordsNoAllowedConnectionAndNothingElseLess() {
        let lines = LockedLines()
        let log = EventLog(onRecord: { _, line in lines.append(line) }, dropsAllowed: true)
        log.record(Event(.connectionAllowed, subject: "a.test", reason: "allowed"))
        log.record(Event(.tunnelClosed, subject: "a.test", reason: "closed"))
        log.record(Event(.dnsRefused, subject: "b.test", reason: "refused"))
        #expect(lines.all.count == 1 && lines.all[0].contains("\"seq\":1") && lines.all[0].contains("dns-refused"), "\(lines.all)")
        #expect(log.counts() == ["dns-refused": 1])
        let normal = EventLog()
        normal.record(Event(.connectionAllowed, subject: "a.test", reason: "allowed"))
        #expect(normal.counts() == ["connection-allowed": 1])
    }

    @Test func severalSessionsOnOneScreenEachLineNamingItsSession() {
        var a = SessionView(id: "20261201-120000-1"), b = SessionView(id: "20261201-120001-2")
        let t = Date(timeIntervalSince1970: 1_790_000_000)
        a.add(Event(.runStart, subject: "/p", reason: "", details: ["project": "/p", "agent": "sh", "hosts": "0"], time: t))
        b.add(Event(.runStart, subject: "/q", reason: "", details: ["project": "/q", "agent": "claude", "hosts": "3"], time: t))
        a.add(Event(.secretRead, subject: "/home/u/.netrc", reason: "decoy", time: t.addingTimeInterval(1)))
        b.add(Event(.dnsRefused, subject: "evil.test", reason: "not allowed", time: t.addingTimeInterval(2)))
        b.add(Event(.runEnd, subject: "/q", reason: "", details: ["status": "0"], time: t.addingTimeInterval(3)))
        let lines = SessionsView.render([.init(view: a, live: true), .init(view: b, live: false)], now: t.addingTimeInterval(4),
                                        style: .init(colour: false, width: 200, height: 40)).map(\.description)
        #expect(lines[0] == "agentpen watch · 2 sessions · 1 running", "\(lines)")
        #expect(lines.contains { $0.hasPrefix("  20261201-120000-1  running · uptime 0:04 · project /p · agent sh") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("  20261201-120001-2  ended (status 0) · uptime 0:03 · project /q · agent claude") }, "\(lines)")
        for (id, what) in [("20261201-120000-1", "/home/u/.netrc"), ("20261201-120001-2", "evil.test")] {
            let rows = lines.filter { $0.contains(what) }
            #expect(rows.count == 2 && rows.allSatisfy { $0.contains(id) }, "\(what): \(rows)")
        }
    }
}

/// Lines handed to onRecord, from any thread.
final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ l: String) { lock.lock(); lines.append(l); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
