import AgentpenKernel
import AgentpenPolicy
import Foundation
import Testing

@Suite struct PersistenceWalkTests {
    func tempProject() throws -> String {
        var t = Array((NSTemporaryDirectory() + "/walk.XXXXXX").utf8CString)
        guard let p = mkdtemp(&t) else { throw CocoaError(.fileWriteUnknown) }
        return URL(fileURLWithPath: String(cString: p)).resolvingSymlinksInPath().path
    }

    func write(_ path: String, _ s: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try s.write(toFile: path, atomically: false, encoding: .utf8)
    }

    @Test func entryBoundIsHitAndSaid() throws {
        let p = try tempProject()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let state = PersistenceWalk.begin(project: p, guardedGitDirs: [])
        for d in 0..<30 { for f in 0..<100 { try write("\(p)/d\(d)/f\(f)", "") } }
        var input = PersistenceWalk.Input(project: p, state: state, runID: "t")
        input.limits.maxEntries = 1000
        let r = PersistenceWalk.run(input)
        #expect(r.entries <= 1000)
        #expect(r.findings.contains { $0.reason.contains("stopped here") }, "\(r.findings)")
    }

    @Test func plantedConfigMovesWithinItsDirectoryAndOldFilesStay() throws {
        let p = try tempProject()
        defer { try? FileManager.default.removeItem(atPath: p) }
        try write(p + "/old/.git/HEAD", "ref: refs/heads/main\n")
        try write(p + "/old/.git/config", "[core]\npager = x\n")
        try write(p + "/old/.git/hooks/pre-commit", "#!/bin/sh\n")
        // The start must come after the old files' ctime: wait for the coarse
        // clock to pass it (bounded), instead of sleeping a guessed time.
        var st = stat()
        stat(p + "/old/.git/hooks/pre-commit", &st)
        let old = PersistenceAudit.Timestamp(sec: Int64(st.st_ctim.tv_sec), nsec: Int64(st.st_ctim.tv_nsec))
        for _ in 0..<10_000 where PersistenceWalk.now() <= old { usleep(100) }
        let state = PersistenceWalk.begin(project: p, guardedGitDirs: [])
        #expect(state.start > old)
        try write(p + "/new/.git/HEAD", "ref: refs/heads/main\n")
        try write(p + "/new/.git/config", "[core]\n\tfsmonitor = \"touch /x\"\n")
        try write(p + "/.envrc", "x")
        func id(_ path: String) -> PersistenceWalk.FileID {
            var st = stat()
            lstat(path, &st)
            return .init(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
        }
        // Run "t"'s ledger shows it wrote both.
        var first = PersistenceWalk.Input(project: p, state: state, runID: "t")
        first.wrote = [id(p + "/new/.git/config"), id(p + "/.envrc")]
        let r = PersistenceWalk.run(first)
        let moved = r.findings.filter { $0.action == .quarantine }
        #expect(moved.map(\.path) == [p + "/new/.git/config"], "\(r.findings)")
        #expect(moved.first?.movedTo == p + "/new/.git/config" + PersistenceAudit.quarantineMarker + "t")
        #expect(FileManager.default.fileExists(atPath: p + "/new/.git/config" + PersistenceAudit.quarantineMarker + "t"))
        #expect(FileManager.default.fileExists(atPath: p + "/old/.git/config"))
        #expect(r.findings.contains { $0.path == p + "/.envrc" && $0.action == .report })
        #expect(r.handled.count == 2, "\(r.handled)")   // the .envrc, and the config as moved
        // Another run ending later, told what "t" proved its own, lists neither.
        var again = PersistenceWalk.Input(project: p, state: state, runID: "u")
        again.othersProved = Set(r.handled)
        #expect(PersistenceWalk.run(again).findings.isEmpty)
        // Without that proof it lists both: the .envrc, and the config "t" moved aside.
        let unproved = PersistenceWalk.run(PersistenceWalk.Input(project: p, state: state, runID: "u")).findings
        #expect(unproved.contains { $0.path == p + "/.envrc" }, "\(unproved)")
        #expect(unproved.contains { $0.path == p + "/new/.git/config" + PersistenceAudit.quarantineMarker + "t"
                                    && $0.reason.contains("another agentpen run") }, "\(unproved)")
        // A file another active run wrote (and this one did not) is left to it.
        var left = PersistenceWalk.Input(project: p, state: state, runID: "u")
        left.othersWrote = [id(p + "/.envrc")]
        #expect(!PersistenceWalk.run(left).findings.contains { $0.path == p + "/.envrc" })
        // A run that wrote it itself lists it whatever the others say.
        left.wrote = [id(p + "/.envrc")]
        #expect(PersistenceWalk.run(left).findings.contains { $0.path == p + "/.envrc" })
    }

    @Test func findingsAreBoundedButAllActedOn() throws {
        let p = try tempProject()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let state = PersistenceWalk.begin(project: p, guardedGitDirs: [])
        for d in 0..<20 { try write("\(p)/r\(d)/.git/HEAD", ""); try write("\(p)/r\(d)/.git/config", "[core]\npager = x\n") }
        var input = PersistenceWalk.Input(project: p, state: state, runID: "t")
        input.limits.maxFindings = 5
        let r = PersistenceWalk.run(input)
        #expect(r.findings.count == 6, "\(r.findings)")
        #expect(r.findings.last?.reason.contains("15 more findings") == true, "\(r.findings)")
        for d in 0..<20 { #expect(!FileManager.default.fileExists(atPath: "\(p)/r\(d)/.git/config")) }
    }
}
