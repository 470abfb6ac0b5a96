import Foundation
import Testing

/// The paranoid profile's throwaway copy of the project is reflinked where the
/// filesystem can: on XFS and btrfs (loop images tests/suite.sh mounts as root,
/// AGENTPEN_REFLINK_XFS, AGENTPEN_REFLINK_BTRFS) the copy's file shares the
/// project file's extents instead of taking their size again.
enum Reflink {
    static func dir(_ fs: String) -> String? {
        guard let d = ProcessInfo.processInfo.environment["AGENTPEN_REFLINK_\(fs.uppercased())"], !d.isEmpty else { return nil }
        return d
    }
    static let skipReason: Comment = "AGENTPEN_REFLINK_XFS/BTRFS are not set: tests/suite.sh mounts loop images there (needs root, mkfs.xfs, mkfs.btrfs)"

    /// `filefrag -v`'s extents of `path`: (physical offset range, flags) each.
    static func extents(_ path: String) throws -> [(physical: String, flags: String)] {
        let r = try runProgram("/usr/sbin/filefrag", ["-v", path], env: ["PATH": "/usr/bin:/bin"], cwd: "/")
        guard r.status == 0 else { throw TestFailure("filefrag \(path): \(r.stderr)") }
        // "   0:        0..    4095:      32792..     36887:   4096:             last,shared,eof"
        return r.stdout.split(separator: "\n").compactMap { line in
            let cols = line.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cols.count >= 5, Int(cols[0]) != nil else { return nil }
            return (cols[2], cols.count >= 6 ? cols[5] : cols[4])
        }
    }
}

@Suite struct ReflinkTests {
    @Test(.enabled(if: Reflink.dir("xfs") != nil || Agentpen.isCI, Reflink.skipReason))
    func theParanoidCopyIsReflinkedOnXFS() throws { try copyShares("xfs") }

    @Test(.enabled(if: Reflink.dir("btrfs") != nil || Agentpen.isCI, Reflink.skipReason))
    func theParanoidCopyIsReflinkedOnBtrfs() throws { try copyShares("btrfs") }

    func copyShares(_ fs: String) throws {
        guard let base = Reflink.dir(fs) else {
            throw TestFailure("AGENTPEN_REFLINK_\(fs.uppercased()) is not set (CI=true: no skip); see tests/suite.sh")
        }
        let f = try Fixture(base: base)
        // 8 MiB that no other file shares.
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<(8 << 20) / 8).flatMap { _ in withUnsafeBytes(of: rng.next()) { Array($0) } }
        try Data(bytes).write(to: URL(fileURLWithPath: f.project + "/big.bin"))
        let before = try Reflink.extents(f.project + "/big.bin")
        #expect(!before.isEmpty && before.allSatisfy { !$0.flags.contains("shared") }, "\(before)")

        let r = try f.agentpen(["--profile", "paranoid", "--", "/bin/sh", "-c", "cmp -s big.bin big.bin && wc -c < big.bin"])
        #expect(r.status == 0 && r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(8 << 20)", "\(r.stdout) \(r.stderr)")
        let review = f.home + "/.local/state/agentpen/review"
        let copies = (FileManager.default.enumerator(atPath: review)?.allObjects as? [String] ?? []).filter { $0.hasSuffix("/tree/big.bin") }
        let copy = try #require(copies.first.map { review + "/" + $0 }, "no copy under \(review)")
        #expect(FileManager.default.contentsEqual(atPath: copy, andPath: f.project + "/big.bin"))
        let original = try Reflink.extents(f.project + "/big.bin"), copied = try Reflink.extents(copy)
        #expect(original.allSatisfy { $0.flags.contains("shared") }, "the project's file shares nothing: \(original)")
        #expect(copied.map(\.physical) == original.map(\.physical), "the copy has extents of its own: \(copied) vs \(original)")
    }
}
