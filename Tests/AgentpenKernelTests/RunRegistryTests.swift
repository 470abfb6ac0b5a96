import AgentpenKernel
import AgentpenPolicy
import Foundation
import Testing

/// The registry files the attribution between runs rests on: each run's
/// ledger, what runs that left proved their own, and when they ran.
@Suite struct RunRegistryTests {
    @Test func ledgersHandledAndWindows() throws {
        var t = Array((NSTemporaryDirectory() + "/registry.XXXXXX").utf8CString)
        let root = String(cString: try #require(mkdtemp(&t)))
        defer { try? FileManager.default.removeItem(atPath: root) }
        let project = root + "/p", base = root + "/state"
        try FileManager.default.createDirectory(atPath: project, withIntermediateDirectories: true)
        let t0 = PersistenceAudit.Timestamp(sec: 100, nsec: 1)
        let a = try #require(RunRegistry(base: base, project: project, runID: "a", start: t0, refuse: { _ in false }))
        let b = try #require(RunRegistry(base: base, project: project, runID: "b", start: t0, refuse: { _ in false }))
        guard let ledger = a.createLedger() else { Issue.record("no ledger"); return }
        let text = "1 2\n3 4\n5 6"          // the last line cut short: not read
        _ = text.withCString { write(ledger.raw, $0, strlen($0)) }
        ledger.close()
        let again = a.createLedger()
        var madeTwice = false
        if case .some = again { madeTwice = true }
        #expect(!madeTwice)    // made once (O_EXCL)
        let others = b.othersActive()
        #expect(others.map(\.runID) == ["a"])
        #expect(b.written(by: others.map(\.runID)) == [.init(dev: 1, ino: 2), .init(dev: 3, ino: 4)])
        let fp = PersistenceAudit.Fingerprint(dev: 7, ino: 8, ctime: t0)
        a.record([fp], start: t0, end: .init(sec: 200, nsec: 0))
        a.leave()
        #expect(b.othersActive().isEmpty)
        #expect(b.written(by: ["a"]).isEmpty)          // a's ledger went with it
        let h = b.handled()
        #expect(h.proved == [fp])
        #expect(h.ended == [.init(start: t0, end: .init(sec: 200, nsec: 0))])
        b.leave()                                      // the last to leave clears the list
        let dir = try FileManager.default.contentsOfDirectory(atPath: base + "/runs")
        let left = try dir.flatMap { try FileManager.default.contentsOfDirectory(atPath: base + "/runs/" + $0) }
        #expect(left.isEmpty, "\(left)")
    }
}
