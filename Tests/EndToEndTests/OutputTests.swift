import Foundation
import Testing

/// Project content agentpen quotes back (paths, command names) goes to the
/// terminal escaped: no control byte, no bidi override, no line of its own.
@Suite struct OutputTests {
    static let hostile = "evil\u{1b}]0;pwned\u{07}\r\nagentpen: forged line\u{202e}\u{7f}\u{85}"

    static func check(_ text: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let raw = NetworkTests.OutputNetworkTests.rawDanger(text)
        #expect(raw.isEmpty, "\(what): raw \(raw) in \(text.debugDescription)", sourceLocation: sourceLocation)
        let forged = NetworkTests.OutputNetworkTests.lines(text).filter { $0.hasPrefix("agentpen: forged") }
        #expect(forged.isEmpty, "\(what): a name forged a line: \(text.debugDescription)", sourceLocation: sourceLocation)
    }

    @Test func errorQuotingAHostileProjectPath() throws {
        let f = try Fixture(gitInit: false)
        let missing = f.home + "/src/" + Self.hostile
        let r = try f.agentpen(["-C", missing, "--", "/bin/true"])
        #expect(r.status == 2, "\(r.stderr.debugDescription)")
        Self.check(r.stderr, "stderr")
        #expect(r.stderr.contains(#"evil\x1b]0;pwned\x07\r\nagentpen: forged line\u{202e}\x7f\u{85}"#),
                "the path is not shown escaped: \(r.stderr.debugDescription)")
    }

    @Test func errorQuotingAHostileCommandName() throws {
        let f = try Fixture(gitInit: false)
        let r = try f.agentpen(["--", "./" + Self.hostile])
        #expect(r.status == 127, "\(r.stderr.debugDescription)")
        Self.check(r.stderr, "stderr")
        #expect(r.stderr.contains("forged line"), "\(r.stderr.debugDescription)")
    }

    @Test func dryRunOfAHostileProjectPath() throws {
        let f = try Fixture(gitInit: false)
        let project = f.home + "/src/" + Self.hostile
        try FileManager.default.createDirectory(atPath: project, withIntermediateDirectories: true)
        let r = try f.agentpen(["--dry-run", "-C", project, "--", "/bin/sh", "-c", "echo \u{1b}[2J\u{9b}"])
        #expect(r.status == 0, "\(r.stderr.debugDescription)")
        Self.check(r.stdout, "--dry-run")
        Self.check(r.stderr, "stderr")
        let projectLine = NetworkTests.OutputNetworkTests.lines(r.stdout).first { $0.hasPrefix("project: ") }
        #expect(projectLine?.hasSuffix(#"evil\x1b]0;pwned\x07\r\nagentpen: forged line\u{202e}\x7f\u{85}"#) == true,
                "\(String(describing: projectLine))")
        // The layout itself still has its lines.
        #expect(r.stdout.contains("\n## bubblewrap\n"), "\(r.stdout)")
    }
}
