import AgentpenCommandLine
import AgentpenPolicy
import Testing

private func run(_ args: [String]) throws -> Options {
    let i = try Invocation.parse(args)
    guard case .agentpen(let o) = i else { Issue.record("\(args) parsed as \(i)"); return Options() }
    return o
}

private func usageError(_ args: [String]) -> Invocation.Failure? {
    do { _ = try Invocation.parse(args); return nil } catch { return error }
}

@Suite struct CommandLineGrammarTests {
    @Test func everyFlagReachesOptions() throws {
        let o = try run(["--agent", "codex", "-C", "/p", "--env", "FOO", "--env=BAR", "--mount", "/ro",
                         "--mount-rw", "/rw", "--allow", "a.example", "--allow-private", "b.example",
                         "--allow-parent-git", "--ro-config", "--log", "/l.json", "--tmpfs-size", "1G",
                         "--memory-max", "2G", "--cpus", "1.5", "--tasks-max", "64", "sh", "-c", "x"])
        #expect(o.mode == .run)
        #expect(o.agent == "codex")
        #expect(o.project == "/p")
        #expect(o.env == ["FOO", "BAR"])
        #expect(o.mounts == ["/ro"])
        #expect(o.mountsRW == ["/rw"])
        #expect(o.allow.map(\.description) == ["a.example", "b.example"])
        #expect(o.allow.map(\.allowsPrivateUpstream) == [false, true])
        #expect(o.allowParentGit)
        #expect(o.readOnlyConfig)
        #expect(o.logPath == "/l.json")
        #expect(o.tmpfsSize == .bytes(1 << 30))
        #expect(o.cgroupLimits.memory == .set(.bytes(2 << 30)))
        #expect(o.cgroupLimits.milliCPUs == .set(1500))
        #expect(o.cgroupLimits.tasks == .set(64))
        #expect(o.command == ["sh", "-c", "x"])
        #expect(try run(["--project=/q"]).project == "/q")
        #expect(try run([]) == Options())
    }

    @Test func modes() throws {
        #expect(try run(["--check"]).mode == .check)
        #expect(try run(["--dry-run", "--", "x"]).mode == .dryRun)
        #expect(try run(["--version"]).mode == .version)
        #expect(try run(["-h"]).mode == .help)
        #expect(try run(["--help", "--check", "--dry-run"]).mode == .help)
        #expect(try run(["--version", "--check"]).mode == .version)
        #expect(usageError(["--check", "--dry-run"])?.message == "--check and --dry-run cannot be combined")
    }

    @Test func noCgroupLeavesExplicitLimits() throws {
        let off = try run(["--no-cgroup"]).cgroupLimits
        #expect(off.memory == .none && off.milliCPUs == .none && off.tasks == .none)
        let some = try run(["--tasks-max", "10", "--no-cgroup"]).cgroupLimits
        #expect(some.tasks == .set(10) && some.memory == .none && some.milliCPUs == .none)
        #expect(try run(["--memory-max", "none"]).cgroupLimits.memory == .none)
    }

    @Test func optionsEndAtCommand() throws {
        let o = try run(["--allow", "x.example", "codex", "--foo", "--allow", "y", "-C", "z", "--help", "--", "w"])
        #expect(o.command == ["codex", "--foo", "--allow", "y", "-C", "z", "--help", "--", "w"])
        #expect(o.allow.map(\.description) == ["x.example"])
        #expect(o.project == nil)
        #expect(o.mode == .run)
        #expect(try run(["-"]).command == ["-"])
        // The library's built-in flags are COMMAND's too.
        for flag in ["--generate-completion-script", "--experimental-dump-help", "-h", "--help", "--version"] {
            #expect(try run(["tool", flag, "bash"]).command == ["tool", flag, "bash"], "\(flag)")
            #expect(try run(["--", "tool", flag]).command == ["tool", flag], "\(flag)")
            #expect(try Invocation.parse(["__exec", "--rw", "/p", "--", "/bin/tool", flag, "bash"])
                    == .exec(ExecArguments(writable: ["/p"], command: ["/bin/tool", flag, "bash"])), "\(flag)")
        }
        #expect(usageError(["--generate-completion-script", "bash"])?.message == "unknown option --generate-completion-script")
    }

    @Test func doubleDashAlwaysStartsCommand() throws {
        #expect(try run(["--", "-weird", "--help"]).command == ["-weird", "--help"])
        #expect(try run(["--", "--"]).command == ["--"])
        #expect(try run(["--check", "--", "x"]).mode == .check)
        #expect(try run(["--", "watch", "-n1", "true"]).command == ["watch", "-n1", "true"])
        #expect(try run(["--"]).command == [])
        // A value is taken as given, whatever it looks like (as before).
        #expect(try run(["--log", "--", "x"]).logPath == "--")
        #expect(try run(["--log", "--", "x"]).command == ["x"])
    }

    @Test func reservedWordsOnlyFirst() throws {
        for s in Subcommand.reserved where !s.isAvailable {
            #expect(try Invocation.parse([s.rawValue]) == .notAvailable(s))
            #expect(try Invocation.parse([s.rawValue, "--allow", "x"]) == .notAvailable(s))
            #expect(try run(["--", s.rawValue, "df"]).command == [s.rawValue, "df"])
            #expect(try run(["--allow", "x.example", s.rawValue]).command == [s.rawValue])
            #expect(try run(["sh", s.rawValue]).command == ["sh", s.rawValue])
        }
        #expect(Subcommand.reserved.map(\.rawValue) == ["allow", "apply", "completions", "config", "init",
                                                         "review", "selftest", "suggest", "trust", "watch"])
        #expect(try Invocation.parse(["selftest"]) == .selftest)
        #expect(try run(["--", "selftest"]).command == ["selftest"])
        #expect(usageError(["selftest", "extra"])?.kind == .usage)
        if case .subcommandHelp(let text)? = try? Invocation.parse(["selftest", "--help"]) {
            #expect(text.contains("escape cases"))
        } else { Issue.record("selftest --help is not its help") }
        #expect(try Invocation.parse(["completions", "bash"]) == .completions(.bash))
        #expect(try Invocation.parse(["completions", "fish"]) == .completions(.fish))
        #expect(try Invocation.parse(["watch"]) == .watch(sessions: [], all: false, json: false))
        #expect(try Invocation.parse(["watch", "--json", "20261201-120000-7"]) == .watch(sessions: ["20261201-120000-7"], all: false, json: true))
        #expect(try Invocation.parse(["watch", "20261201-120000-7", "20261201-120001-8"])
                == .watch(sessions: ["20261201-120000-7", "20261201-120001-8"], all: false, json: false))
        #expect(try Invocation.parse(["watch", "--all", "--json"]) == .watch(sessions: [], all: true, json: true))
        #expect(throws: Invocation.Failure.self) { try Invocation.parse(["watch", "--all", "20261201-120000-7"]) }
        #expect(try Invocation.parse(["suggest"]) == .suggest(session: nil))
        #expect(try run(["--", "watch", "x"]).command == ["watch", "x"])
        #expect(try run(["--quiet", "true"]).quiet)
        #expect(try run(["--", "completions", "bash"]).command == ["completions", "bash"])
        #expect(usageError(["completions"])?.kind == .usage)
        #expect(usageError(["completions", "tcsh"])?.exitStatus == 2)
        guard case .subcommandHelp(let h)? = try? Invocation.parse(["completions", "--help"]) else {
            Issue.record("completions --help"); return
        }
        #expect(h.contains("bash"))
    }

    @Test func usageErrorsExitTwoWithTheirMessage() {
        let cases: [([String], String)] = [
            (["--nope"], "unknown option --nope"),
            (["--allow", "x.example", "--nope", "sh"], "unknown option --nope"),
            (["--env", "1BAD"], "--env: bad variable name \"1BAD\""),
            (["--cpus", "lots"], "--cpus \"lots\": a number of CPUs such as 2 or 1.5, or none"),
            (["--tasks-max", "0"], "--tasks-max \"0\": a number of processes and threads, or none"),
        ]
        for (args, message) in cases {
            let e = usageError(args)
            #expect(e?.kind == .usage, "\(args)")
            #expect(e?.exitStatus == 2, "\(args)")
            #expect(e?.message == message, "\(args)")
        }
        for args in [["--allow"], ["--allow", "127.0.0.1"], ["--check=yes"], ["--tmpfs-size", "lots"],
                     ["--memory-max", "x"], ["--agent"]] {
            #expect(usageError(args)?.exitStatus == 2, "\(args)")
            #expect(usageError(args)?.message.isEmpty == false, "\(args)")
        }
        #expect(usageError(["--allow"])?.message.contains("--allow") == true)
    }

    @Test func helpersParseToPlainValues() throws {
        #expect(try Invocation.parse(["__exec", "--cgroup", "9", "--rw", "/p", "--rw", "/tmp", "--", "/bin/sh", "--rw"])
                == .exec(ExecArguments(writable: ["/p", "/tmp"], cgroupFD: 9, command: ["/bin/sh", "--rw"])))
        guard case .netns(let n) = try Invocation.parse(
            ["__netns", "--proxy-port", "8443", "--hop", "gateway", "--nft", "/usr/sbin/nft",
             "--host", "a.example", "--fd", "10", "--fd", "11", "--", "/usr/bin/bwrap", "--x"]) else {
            Issue.record("netns"); return
        }
        #expect(n.proxyPort == 8443 && n.hop == .gateway && n.nft == "/usr/sbin/nft")
        #expect(n.hosts.map(\.description) == ["a.example"] && n.passFDs == [10, 11])
        #expect(n.bwrap == ["/usr/bin/bwrap", "--x"])
        #expect(try Invocation.parse(["__probe", "inside", "network"]) == .probe(["inside", "network"]))
        for bad in [["__exec", "--bogus", "x", "--", "sh"], ["__exec", "--cgroup", "x", "--", "sh"],
                    ["__netns", "--nft", "relative", "--", "bwrap"], ["__netns", "--nft", "/nft"],
                    ["__netns", "--hop", "nope", "--nft", "/nft", "--", "bwrap"]] {
            #expect(usageError(bad)?.kind == .helper, "\(bad)")
            #expect(usageError(bad)?.exitStatus == 125, "\(bad)")
        }
    }

    @Test func helpNamesFlagsSubcommandsAndTheRule() {
        let h = Options.usage
        for name in Preset.builtinNames { #expect(h.contains(name)) }
        for s in Subcommand.reserved { #expect(h.contains(s.rawValue)) }
        #expect(h.contains("--allow HOST"))
        #expect(h.contains("only as the first argument"))
        #expect(!h.contains("__"))
    }

    @Test func completionScriptsComeFromTheGrammar() {
        let bash = Shell.bash.completionScript
        for word in ["--allow-private", "--tmpfs-size", "completions", "watch"] { #expect(bash.contains(word), "\(word)") }
        #expect(!bash.contains("__exec") && !bash.contains("__netns") && !bash.contains("__probe"))
        #expect(Shell.zsh.completionScript.contains("--memory-max"))
        #expect(Shell.fish.completionScript.contains("ro-config"))
        // No `help` subcommand is offered: agentpen has none.
        #expect(bash.contains("compgen -W 'completions allow apply config init review selftest suggest trust watch' --"))
        for shell in Shell.allCases {
            #expect(!shell.completionScript.contains("Show subcommand help information"), "\(shell)")
        }
    }
}
