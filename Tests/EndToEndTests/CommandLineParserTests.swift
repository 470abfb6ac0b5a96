import Foundation
import Testing

/// The command line as a user meets it, through the real binary: exit statuses,
/// the reserved first words, `--` passthrough, completions and --help.
@Suite struct CommandLineParserTests {
    /// Reserved and not built yet (none since `allow`, issue 13).
    static let reserved: [String] = []

    /// A stand-in program named `watch` on the caller's PATH: it records its
    /// arguments in the project, so a test can tell whether it ran.
    static func fakeWatch(_ f: Fixture) throws -> String {
        try f.write(f.home + "/.local/bin/watch", "#!/bin/sh\necho \"fake-watch $*\"\necho \"$*\" > ./watch-ran\n", mode: 0o755)
        return "\(f.home)/.local/bin:/usr/bin:/bin"
    }

    @Test func exitStatuses() throws {
        let f = try Fixture()
        let bad = try f.agentpen(["--no-such-flag", "/bin/true"])
        #expect(bad.status == 2, "\(bad.status) \(bad.stderr)")
        #expect(bad.stderr.contains("unknown option --no-such-flag"), "\(bad.stderr)")
        #expect(bad.stderr.contains("usage: agentpen"), "\(bad.stderr)")
        let missing = try f.agentpen(["--allow"])
        #expect(missing.status == 2, "\(missing.status) \(missing.stderr)")
        #expect(missing.stderr.contains("--allow"), "\(missing.stderr)")
        let value = try f.agentpen(["--cpus", "lots", "--", "/bin/true"])
        #expect(value.status == 2)
        #expect(value.stderr.contains("--cpus \"lots\": a number of CPUs"), "\(value.stderr)")

        #expect(try f.agentpen(["--", "no-such-command-xyz"]).status == 127)
        try f.write(f.project + "/notexec.sh", "#!/bin/sh\necho hi\n", mode: 0o644)
        let notExec = try f.agentpen(["--", "./notexec.sh"])
        #expect(notExec.status == 126, "\(notExec.status) \(notExec.stderr)")
        #expect(notExec.stderr.contains("./notexec.sh: not executable"), "\(notExec.stderr)")

        // agentpen itself failing: a bubblewrap that never starts the command.
        let bwrap = f.root + "/fakebin/bwrap"
        try f.write(bwrap, "#!/bin/sh\nexit 1\n", mode: 0o755)
        let failed = try f.agentpen(["--", "/bin/echo", "RAN"], env: ["AGENTPEN_BWRAP": bwrap])
        #expect(failed.status == 125, "\(failed.status) \(failed.stderr)")
        #expect(!failed.stdout.contains("RAN"))

        // An internal entry point given arguments agentpen never writes.
        let helper = try f.agentpen(["__exec", "--bogus", "x", "--", "/bin/true"])
        #expect(helper.status == 125, "\(helper.status) \(helper.stderr)")
        #expect(!helper.stderr.contains("usage:"))
        #expect(try f.agentpen(["--", "/bin/sh", "-c", "exit 7"]).status == 7)
    }

    @Test func reservedWordAnswersNotAvailableYet() throws {
        let f = try Fixture()
        let path = try Self.fakeWatch(f)
        for word in Self.reserved {
            let r = try f.agentpen([word, "-n1", "true"], path: path)
            #expect(r.status == 2, "\(word): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains("\(word): not available yet"), "\(word): \(r.stderr)")
        }
        // watch, suggest and allow are agentpen's own now: a usage error, never the program.
        for word in ["watch", "suggest", "allow"] {
            let r = try f.agentpen([word, "-n1", "true"], path: path)
            #expect(r.status == 2 && r.stderr.contains("\(word): "), "\(word): \(r.status) \(r.stderr)")
        }
        #expect(f.read(f.project + "/watch-ran") == nil, "agentpen watch ran the program")
    }

    @Test func doubleDashRunsTheProgramNamedLikeASubcommand() throws {
        let f = try Fixture()
        let path = try Self.fakeWatch(f)
        let r = try f.agentpen(["--", "watch", "-n1", "true"], path: path)
        #expect(r.status == 0, "\(r.status) \(r.stderr)")
        #expect(r.stdout.contains("fake-watch -n1 true"), "\(r.stdout)")
        #expect(f.read(f.project + "/watch-ran") == "-n1 true\n")
        // After an option the word is a program too: reserved only as the first argument.
        let after = try f.agentpen(["-C", f.project, "watch", "--help"], path: path)
        #expect(after.status == 0, "\(after.status) \(after.stderr)")
        #expect(after.stdout.contains("fake-watch --help"), "\(after.stdout)")
    }

    @Test func theRealWatchRunsAfterDoubleDash() throws {
        let f = try Fixture()
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/watch"), "procps' watch is not installed")
        let r = try f.agentpen(["--", "watch", "--version"])
        #expect(r.status == 0, "\(r.status) \(r.stderr)")
        #expect(r.stdout.contains("procps"), "\(r.stdout)")
    }

    @Test func bashCompletionScriptSources() throws {
        let f = try Fixture()
        let r = try f.agentpen(["completions", "bash"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("--allow-private") && r.stdout.contains("completions"))
        #expect(!r.stdout.contains("__exec"))
        let script = f.root + "/agentpen.bash"
        try f.write(script, r.stdout)
        let syntax = try runProgram("/bin/bash", ["-n", script], env: [:], cwd: f.root)
        #expect(syntax.status == 0, "\(syntax.stderr)")
        // Sourced for real, it registers a completion for agentpen.
        let loaded = try runProgram("/bin/bash", ["-c", "source \(script) && complete -p agentpen"], env: [:], cwd: f.root)
        #expect(loaded.status == 0, "\(loaded.stderr)")
        #expect(loaded.stdout.contains("agentpen"), "\(loaded.stdout)")
        for shell in ["zsh", "fish"] {
            let s = try f.agentpen(["completions", shell])
            #expect(s.status == 0 && s.stdout.contains("memory-max"), "\(shell): \(s.stderr)")
        }
        let unknown = try f.agentpen(["completions", "tcsh"])
        #expect(unknown.status == 2, "\(unknown.status) \(unknown.stderr)")
        #expect(try f.agentpen(["completions"]).status == 2)
    }

    @Test func helpListsTheSubcommandsAndTheRule() throws {
        let f = try Fixture()
        let h = try f.agentpen(["--help"])
        #expect(h.status == 0)
        #expect(h.stdout.contains("--allow HOST"))
        for word in Self.reserved + ["completions", "selftest", "allow HOST", "--ask", "--audit"] { #expect(h.stdout.contains(word), "\(word)") }
        #expect(h.stdout.contains("only as the first argument"))
        #expect(h.stdout.contains("agentpen -- watch df runs watch"))
        #expect(!h.stdout.contains("__"))
        // --help after COMMAND is COMMAND's.
        let theirs = try f.agentpen(["/usr/bin/printf", "%s\\n", "--help"])
        #expect(theirs.status == 0 && theirs.stdout == "--help\n", "\(theirs.stdout)")
        // So are the library's own built-in flags.
        let builtin = try f.agentpen(["/usr/bin/printf", "%s\\n", "--generate-completion-script"])
        #expect(builtin.status == 0 && builtin.stdout == "--generate-completion-script\n", "\(builtin.stdout)")
        let v = try f.agentpen(["--version"])
        #expect(v.status == 0 && v.stdout.hasPrefix("agentpen "))
    }
}
