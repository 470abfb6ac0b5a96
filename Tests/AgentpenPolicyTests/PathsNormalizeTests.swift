import Testing
@testable import AgentpenPolicy

/// issue 11 (start-up): `Paths.normalize` returns a path that is already normal
/// as it is, and gives every other path the same result as before the shortcut.
@Suite struct PathsNormalizeTests {
    /// The normalizer without the shortcut (as it was), for comparison.
    static func slow(_ path: String) -> String {
        var out: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { if !out.isEmpty { out.removeLast() }; continue }
            out.append(part)
        }
        return "/" + out.joined(separator: "/")
    }

    @Test(arguments: ["/", "/a", "/a/b", "/home/user/src/project", "/...", "/a/.b", "/a/b..", "/.git", "/a/...b/c",
                      "", "a", "a/b", "//", "/a/", "/a//b", "/./a", "/a/.", "/a/..", "/../a", "/a/../b", "/a/./b",
                      "///", "/.", "/..", "./a", "../a", "/a/b/", "/é/ü", "/a\u{0}b"])
    func sameAsBefore(_ path: String) {
        #expect(Paths.normalize(path) == Self.slow(path), "\(path)")
        #expect(Paths.isNormalized(path) == (Self.slow(path) == path), "\(path)")
    }
}
