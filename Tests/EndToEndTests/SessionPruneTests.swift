import Foundation
import Testing

/// Old sessions are pruned on another thread while the run starts (issue 11,
/// exitpath: unlinking is file-system work the start need not wait for).
/// When agentpen has exited the pruning is complete, and the run's own
/// session, the newest, is whole.
@Suite struct SessionPruneTests {
    @Test func pruningIsCompleteAtExitAndSparesTheRunsOwnSession() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let sessions = state + "/agentpen/sessions"
        try FileManager.default.createDirectory(atPath: sessions, withIntermediateDirectories: true)
        chmod(state + "/agentpen", 0o700); chmod(sessions, 0o700)
        // 120 recent sessions (a second apart, the last an hour ago), each with
        // two files: 71 of them go, which takes the pruning a while.
        let format = DateFormatter()
        format.dateFormat = "yyyyMMdd-HHmmss"
        format.timeZone = TimeZone(identifier: "UTC")
        let recent = (0..<120).map { format.string(from: Date().addingTimeInterval(Double(-3600 - 120 + $0))) + "-1" }
        for name in recent {
            try f.write(sessions + "/" + name + "/events.jsonl", String(repeating: "{}\n", count: 100))
            try f.write(sessions + "/" + name + "/view/refusals", "x\n")
        }
        let r = try f.agentpen(["--", "/bin/sh", "-c", "exec cat ~/.netrc"], env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stderr)")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: sessions)) ?? []).sorted()
        #expect(left.count == 50, "\(left.count) sessions left")
        #expect(Array(left.prefix(49)) == Array(recent.suffix(49)), "\(left.prefix(3)) … ")
        // The run's own: the newest, with its whole stream and its decoy read.
        let own = try #require(left.last)
        #expect(!recent.contains(own))
        let kinds = readEvents(sessions + "/" + own + "/events.jsonl").compactMap { $0["kind"] as? String }
        #expect(kinds.first == "run-start" && kinds.last == "run-end" && kinds.contains("secret-read"), "\(kinds)")
    }
}
