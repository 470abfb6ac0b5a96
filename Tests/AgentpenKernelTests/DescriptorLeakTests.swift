import AgentpenKernel
import AgentpenPolicy
import Foundation
import Testing

/// The paths this process holds open under `dir` (by /proc/self/fd). Tests run
/// in parallel in one process, so a count of descriptors would race; each test
/// looks only at descriptors into its own temporary directory.
func descriptorsOpen(under dir: String) -> [String] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return ["/proc/self/fd unreadable"] }
    return names.compactMap { name -> String? in
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/fd/\(name)", &buf, 4096)
        guard n > 0 else { return nil }
        let target = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target == dir || target.hasPrefix(dir + "/") ? target : nil
    }
}

/// Every path of a walk or copy that gives up half way must still close what
/// it opened: each test below ends on such a path and looks for a descriptor
/// left open into its own directory.
@Suite struct DescriptorLeakTests {
    func tempDir(_ name: String) throws -> String {
        var t = Array((NSTemporaryDirectory() + "/\(name).XXXXXX").utf8CString)
        guard let p = mkdtemp(&t) else { throw CocoaError(.fileWriteUnknown) }
        return URL(fileURLWithPath: String(cString: p)).resolvingSymlinksInPath().path
    }

    func mkdirs(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The walk stops at its entry bound deep inside the tree (a stack of open
    /// directories), after entering unreadable directories and a `.git` link.
    @Test func persistenceWalkStoppedHalfWayClosesEveryDirectory() throws {
        let p = try tempDir("walkleak")
        defer {
            _ = chmod(p + "/locked", 0o755); _ = chmod(p + "/search-only", 0o755)
            try? FileManager.default.removeItem(atPath: p)
        }
        let state = PersistenceWalk.begin(project: p, guardedGitDirs: [], home: p, xdgConfigHome: p + "/xdg")
        try mkdirs(p + "/repo/.git/objects"); try mkdirs(p + "/repo/.git/refs")
        try "ref: refs/heads/main\n".write(toFile: p + "/repo/.git/HEAD", atomically: false, encoding: .utf8)
        try mkdirs(p + "/w")
        _ = symlink("../repo/.git", p + "/w/.git")
        try mkdirs(p + "/locked/inner"); _ = chmod(p + "/locked", 0)
        try mkdirs(p + "/search-only/inner"); _ = chmod(p + "/search-only", 0o100)
        var deep = p + "/deep"
        for i in 0..<40 { deep += "/d\(i)" }
        try mkdirs(deep)
        for f in 0..<50 { FileManager.default.createFile(atPath: deep + "/f\(f)", contents: nil) }
        var input = PersistenceWalk.Input(project: p, state: state, runID: "t")
        input.limits.maxEntries = 70
        let r = PersistenceWalk.run(input)
        #expect(r.findings.contains { $0.reason.contains("stopped here") }, "\(r.findings)")
        #expect(descriptorsOpen(under: p) == [])

        // And the whole walk, to its end.
        input.limits = .init()
        _ = PersistenceWalk.run(input)
        #expect(descriptorsOpen(under: p) == [])
    }

    @Test func persistenceWalkOfAMissingProjectOpensNothing() throws {
        let p = try tempDir("walkgone")
        defer { try? FileManager.default.removeItem(atPath: p) }
        let state = PersistenceWalk.begin(project: p + "/gone", guardedGitDirs: [])
        let r = PersistenceWalk.run(.init(project: p + "/gone", state: state, runID: "t"))
        #expect(r.findings.contains { $0.reason.contains("could not open the project") })
        #expect(descriptorsOpen(under: p) == [])
    }

    /// A copy that fails deep in the tree (nested past its bound of 64: 64 pairs
    /// of directories open), onto a missing parent, and changes carried out
    /// from a copy that lost its files.
    @Test func treeCopyFailuresCloseEverything() throws {
        let root = try tempDir("copyleak")
        defer { try? FileManager.default.removeItem(atPath: root) }
        var deep = root + "/src"
        for i in 0..<66 { deep += "/d\(i)" }
        try mkdirs(deep)
        FileManager.default.createFile(atPath: root + "/src/file", contents: Data("x".utf8))
        #expect(throws: TreeCopy.Failure.self) { try TreeCopy.copy(root + "/src", to: root + "/copy") }
        #expect(descriptorsOpen(under: root) == [])
        #expect(throws: TreeCopy.Failure.self) { try TreeCopy.copy(root + "/src", to: root + "/missing/copy") }
        #expect(descriptorsOpen(under: root) == [])
        #expect(throws: TreeCopy.Failure.self) { try TreeCopy.changes(project: root + "/src", copy: root + "/none") }
        #expect(descriptorsOpen(under: root) == [])
        let failed = TreeCopy.apply([.write("d0/d1/gone"), .link("d0/gone"), .write("nodir/x"), .remove("d0/d1/d2")],
                                    project: root + "/src", copy: root + "/copy")
        #expect(failed.count == 3, "\(failed)")
        #expect(descriptorsOpen(under: root) == [])
        TreeCopy.remove(root + "/copy")
        #expect(descriptorsOpen(under: root) == [])
    }

    /// Config files refused after they were opened (a FIFO, one too large)
    /// and one written anew: each descriptor closed.
    @Test func configFilesRefusedAfterOpeningCloseThem() throws {
        let root = try tempDir("configleak")
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(mkfifo(root + "/fifo", 0o600) == 0)
        try Data(count: 4096).write(to: URL(fileURLWithPath: root + "/big"))
        guard case .refused = ConfigFiles.read(root + "/fifo", limit: 1024) else { Issue.record("a FIFO was read"); return }
        guard case .refused = ConfigFiles.read(root + "/big", limit: 1024) else { Issue.record("a large file was read"); return }
        #expect(ConfigFiles.replace(dir: root + "/sub", name: "c.toml", "x = 1\n") == nil)
        #expect(ConfigFiles.createNew(root + "/sub/c.toml", "y") == "already exists")
        #expect(ConfigFiles.createNew(root + "/new.toml", "y") == nil)
        #expect(descriptorsOpen(under: root) == [])
    }
}
