import AgentpenPolicy
import Testing

@Suite struct GitConfigTests {
    func parse(_ s: String) throws -> [GitConfig.Entry] { try GitConfig.parse(Array(s.utf8)).entries }

    @Test func sectionsSubsectionsAndCase() throws {
        let e = try parse("[Core]\n\tFSMonitor = x\n[filter \"LFS\"]\n clean = y\n[Remote.Origin]\nurl=z\n")
        #expect(e.map(\.key) == ["core.fsmonitor", "filter.LFS.clean", "remote.origin.url"])
        #expect(e.map(\.value) == ["x", "y", "z"])
    }

    @Test func subsectionEscapesAndKeysOnTheHeaderLine() throws {
        let e = try parse("[diff \"a\\\"b\\\\c\"] textconv = cmd\n")
        #expect(e == [GitConfig.Entry(section: "diff", subsection: "a\"b\\c", name: "textconv", value: "cmd")])
    }

    @Test func quotingCommentsAndWhitespace() throws {
        let e = try parse("[core]\n pager = \"less; -R\" # comment\n editor =  vim   -f  ; c\n flag\n sp = a\\tb\\n\n")
        #expect(e.map(\.value) == ["less; -R", "vim   -f", nil, "a\tb\n"])   // as git config --list shows
    }

    @Test func continuationLinesJoinAValue() throws {
        let e = try parse("[core]\n\tfsmonitor = touch \\\n/tmp/x\n")
        #expect(e.first?.value == "touch /tmp/x")
    }

    @Test func crlfAndBOM() throws {
        let e = try GitConfig.parse([0xEF, 0xBB, 0xBF] + Array("[core]\r\n\tpager = p\r\n".utf8)).entries
        #expect(e.first?.key == "core.pager")
        #expect(e.first?.value == "p")
    }

    @Test func oldDottedHeaderIsLowerCased() throws {
        let e = try parse("[Credential.Foo]\nhelper = h\n")
        #expect(e.first?.key == "credential.foo.helper")
        // git refuses characters other than letters, digits, '-' and '.' there.
        #expect(throws: GitConfig.ParseError.self) { try GitConfig.parse(Array("[credential.HTTPS://x]\n".utf8)) }
    }

    @Test func hostileInputIsAnError() {
        for bad in ["[core\n", "[core \"x]\n", "[core]\n1x = y\n", "k = v\n", "[core]\np = \"open\n",
                    "[core]\np = a\\q\n", "[core]\np = a\u{0}b\n", "[a \"b\" ]\n", "[core]\np = x\\"] {
            #expect(throws: GitConfig.ParseError.self, "\(bad.debugDescription)") { try GitConfig.parse(Array(bad.utf8)) }
        }
    }

    @Test func arbitraryBytesNeverCrash() {
        var g = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0..<64, using: &g)).map { _ in
                "[]\"\\=#; \t\n\rabcAB.-1\u{0}".utf8.randomElement(using: &g)!
            }
            _ = try? GitConfig.parse(Array(bytes))
        }
    }

    @Test func lastPlainValue() {
        let text = "[core]\n\tworktree = ../a\n[core \"x\"]\n\tworktree = no\n[Core]\n\tWorkTree = \"../b\" ; c\n"
        #expect(GitConfig.value(section: "core", key: "worktree", in: text) == "../b")
        #expect(GitConfig.value(section: "core", key: "bare", in: text) == nil)
        #expect(GitConfig.value(section: "core", key: "worktree", in: "[core\nworktree = x") == nil)
    }
}
