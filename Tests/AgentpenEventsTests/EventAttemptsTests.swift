import AgentpenEvents
import Testing

/// An event may stand for several attempts (`attempts` detail: the refused-flow
/// reporter sends the repeats of one destination once, at the end); the exit
/// summary counts them, and nonsense in the detail counts as one.
@Suite struct EventAttemptsTests {
    @Test func theSummaryAddsAttempts() {
        let log = EventLog()
        log.record(Event(.connectionBlocked, subject: "tcp 198.18.0.10:8080", reason: "refused"))
        log.record(Event(.connectionBlocked, subject: "tcp 198.18.0.10:8080", reason: "4 more",
                         details: ["attempts": "4"]))
        for bad in ["-3", "0", "x", "99999999999999999999999"] {
            log.record(Event(.connectionBlocked, subject: "udp 198.18.0.1:53", reason: "r", details: ["attempts": bad]))
        }
        #expect(log.summary()?.description == "blocked 9: connection-blocked tcp 198.18.0.10:8080 ×5, connection-blocked udp 198.18.0.1:53 ×4")
    }

    @Test func hugeCountsSaturate() {
        let log = EventLog()
        for _ in 0..<3 {
            log.record(Event(.connectionBlocked, subject: "s", reason: "r", details: ["attempts": String(Int.max)]))
        }
        #expect(log.summary()?.description.hasPrefix("blocked ") == true)
    }
}
