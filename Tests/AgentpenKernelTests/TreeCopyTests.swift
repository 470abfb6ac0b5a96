import AgentpenKernel
import Foundation
import Glibc
import Testing

/// The paranoid profile's copies: symlinks copied as links, special files
/// skipped, set-id bits dropped; changes listed and applied without following links.
@Suite struct TreeCopyTests {
    func temp() throws -> String {
        var t = Array((NSTemporaryDirectory() + "/treecopy.XXXXXX").utf8CString)
        guard let p = mkdtemp(&t) else { throw POSIXError(.EIO) }
        return String(cString: p)
    }

    @Test func copiesWithoutFollowingAndAppliesBack() throws {
        let root = try temp()
        defer { TreeCopy.remove(root) }
        let src = root + "/src", outside = root + "/outside"
        try FileManager.default.createDirectory(atPath: src + "/d", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try "a".write(toFile: src + "/d/a", atomically: false, encoding: .utf8)
        try "x".write(toFile: src + "/suid", atomically: false, encoding: .utf8)
        chmod(src + "/suid", 0o4755)
        try FileManager.default.createSymbolicLink(atPath: src + "/link", withDestinationPath: outside)
        #expect(mkfifo(src + "/fifo", 0o644) == 0)
        let stats = try TreeCopy.copy(src, to: root + "/copy")
        #expect(stats.files == 2 && stats.directories == 1 && stats.symlinks == 1 && stats.skipped == 1, "\(stats)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/copy/link")) == outside)
        var st = stat()
        #expect(stat(root + "/copy/suid", &st) == 0 && st.st_mode & 0o7000 == 0)
        #expect(!FileManager.default.fileExists(atPath: root + "/copy/fifo"))

        // Changes in the copy, including one through its symlink's name.
        try "b".write(toFile: root + "/copy/d/a", atomically: false, encoding: .utf8)
        try "n".write(toFile: root + "/copy/new", atomically: false, encoding: .utf8)
        let changes = try TreeCopy.changes(project: src, copy: root + "/copy")
        #expect(changes.contains(.write("d/a")) && changes.contains(.write("new")) && !changes.contains(.remove("fifo")), "\(changes)")
        // A change whose parent is a symlink in the project is not made through it.
        let failed = TreeCopy.apply(changes + [.write("link/escaped")], project: src, copy: root + "/copy")
        #expect(failed.count == 1 && failed[0].contains("link/escaped"), "\(failed)")
        #expect(!FileManager.default.fileExists(atPath: outside + "/escaped"))
        #expect((try? String(contentsOfFile: src + "/d/a", encoding: .utf8)) == "b")
        #expect((try? String(contentsOfFile: src + "/new", encoding: .utf8)) == "n")
        #expect(try TreeCopy.changes(project: src, copy: root + "/copy").isEmpty)
        #expect(lstat(src + "/fifo", &st) == 0, "a FIFO the copy skipped was removed from the project")
    }
}
