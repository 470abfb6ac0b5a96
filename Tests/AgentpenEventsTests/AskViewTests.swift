import AgentpenEvents
import Foundation
import Testing

/// Issue 13 (ask): what watch and the exit summary make of would-block and
/// connection-held events.
@Suite struct AskViewTests {
    @Test func thePromptShowsTheOldestHeldConnectionUntilItIsAnswered() {
        var v = SessionView(id: "20261201-120000-1")
        let held: [String: String] = ["hold": "1", "agent": "claude", "process": "pid 9 curl", "timeout-s": "60"]
        v.add(Event(.runStart, subject: "/p", reason: "run started", details: ["agent": "claude"]))
        v.add(Event(.connectionHeld, subject: "a.example", reason: "waiting", details: held))
        v.add(Event(.connectionHeld, subject: "b.example", reason: "waiting", details: held.merging(["hold": "2"]) { $1 }))
        func screen(live: Bool = true) -> String {
            v.render(now: Date(), style: .init(colour: false, width: 160, height: 40), live: live).map(\.rendered).joined(separator: "\n")
        }
        var text = screen()
        #expect(text.contains("WAITING a.example wants to connect (agent claude, process pid 9 curl), up to 60 s (+1 more waiting)"), "\(text)")
        #expect(text.contains("[o] once") && text.contains("[d] deny") && text.contains("agentpen allow a.example"), "\(text)")
        #expect(v.refused == 0, "a hold is not a refusal")
        #expect(!screen(live: false).contains("WAITING"), "no prompt for a session that is not running")
        v.add(Event(.connectionBlocked, subject: "a.example", reason: "denied", details: ["hold": "1", "decision": "deny"]))
        text = screen()
        #expect(text.contains("WAITING b.example") && !text.contains("more waiting"), "\(text)")
        v.add(Event(.connectionAllowed, subject: "b.example", reason: "allowed", details: ["hold": "2", "decision": "once"]))
        #expect(!screen().contains("WAITING") && v.waiting.isEmpty)
        // A hostile host name in a prompt is escaped like every subject.
        v.add(Event(.connectionHeld, subject: "\u{1b}[2Jx.example", reason: "waiting", details: held.merging(["hold": "3"]) { $1 }))
        #expect(screen().contains(#"WAITING \x1b[2Jx.example"#), "\(screen())")
    }

    @Test func wouldBlockAndHeldAreCountedApartFromRefusals() {
        let log = EventLog()
        log.record(Event(.wouldBlock, subject: "a.example", reason: "let through", details: ["permit": "--allow a.example"]))
        log.record(Event(.wouldBlock, subject: "a.example", reason: "let through", details: ["permit": "--allow a.example"]))
        log.record(Event(.connectionHeld, subject: "b.example", reason: "waiting", details: ["hold": "1"]))
        log.record(Event(.connectionBlocked, subject: "b.example", reason: "denied", details: ["hold": "1", "decision": "deny"]))
        let counts = log.countsLine().rendered
        #expect(counts.contains("refused: connection-blocked 1;") && counts.contains("2 would-block (--audit)")
                && counts.contains("1 held for a decision (--ask)") && !counts.contains("connection-held"), "\(counts)")
        #expect(log.wouldBlockSummary()?.rendered == "would block 1 (--audit, let through): a.example ×2")
        #expect(log.summary()?.rendered == "blocked 1: connection-blocked b.example")
        var v = SessionView(id: "20261201-120000-1")
        v.add(Event(.wouldBlock, subject: "a.example", reason: "let through"))
        #expect(v.wouldBlock == 1 && v.refused == 0)
        #expect(!Event(.wouldBlock, subject: "a.example", reason: "x", details: ["permit": "--allow a.example"]).isRefusal)
    }
}
