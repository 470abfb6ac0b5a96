import Foundation
import Testing

/// `make install`: the binary, agentpen(1) and the three completion scripts,
/// all written by the binary from its own argument table.
@Suite struct InstallTests {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    @Test func makeInstallWritesTheManPageAndCompletions() throws {
        let f = try Fixture(gitInit: false)
        let dest = f.root + "/dest"
        // SWIFT=true: the binary under test is installed as built, no release build here.
        let r = try runProgram("/usr/bin/make", ["-s", "-C", Self.repository, "install", "SWIFT=true", "BIN=\(Agentpen.binary)",
                                                 "DESTDIR=\(dest)", "PREFIX=/usr"],
                               env: ["PATH": "/usr/bin:/bin"], cwd: f.root, timeout: 120)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(FileManager.default.isExecutableFile(atPath: dest + "/usr/bin/agentpen"))
        let man = try #require(f.read(dest + "/usr/share/man/man1/agentpen.1"))
        for word in ["--mount-rw", "--tmpfs-size", "config.toml", ".agentpen.toml", "trust", "init"] {
            #expect(man.contains(word.replacingOccurrences(of: "-", with: "\\-")), "\(word) missing from the man page")
        }
        // It renders without a single roff warning.
        let rendered = try runProgram("/usr/bin/groff", ["-man", "-Tutf8", "-ww", dest + "/usr/share/man/man1/agentpen.1"],
                                      env: ["PATH": "/usr/bin:/bin"], cwd: f.root)
        #expect(rendered.status == 0 && rendered.stderr.isEmpty, "\(rendered.stderr)")
        // (grotty marks bold by overstriking: drop "X\u{8}" pairs before looking.)
        var plain = ""
        for c in rendered.stdout { if c == "\u{8}" { plain.removeLast() } else { plain.append(c) } }
        #expect(plain.contains("FILES") && plain.contains("untrusted"), "the man page did not render")
        let bash = try #require(f.read(dest + "/usr/share/bash-completion/completions/agentpen"))
        #expect(bash.contains("config") && bash.contains("trust") && bash.contains("--allow-private"))
        #expect(f.read(dest + "/usr/share/zsh/site-functions/_agentpen")?.contains("#compdef agentpen") == true)
        #expect(f.read(dest + "/usr/share/fish/vendor_completions.d/agentpen.fish")?.contains("memory-max") == true)
    }
}
