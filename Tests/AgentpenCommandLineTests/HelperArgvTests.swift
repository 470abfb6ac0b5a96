import AgentpenCommandLine
import AgentpenPolicy
import Testing

/// The internal entry points' hand parser (issue 11, exitpath): agentpen writes
/// `__exec` and `__netns` argv itself, so anything else is refused (exit 125,
/// never the command): an unknown option, a missing or malformed value, a
/// single option given twice, words before `--`, no `--`. After `--` every word
/// is the command's, whatever it looks like.
@Suite struct HelperArgvTests {
    static func failure(_ args: [String]) -> Invocation.Failure? {
        do { _ = try Invocation.parse(args); return nil } catch { return error }
    }

    static func refused(_ args: [String], mentioning: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let e = failure(args) else {
            Issue.record("accepted: \(args)", sourceLocation: sourceLocation); return
        }
        #expect(e.kind == .helper && e.exitStatus == 125 && e.usage == nil, "\(args): \(e)", sourceLocation: sourceLocation)
        #expect(e.message.hasPrefix("internal: ") && e.message.contains(mentioning), "\(args): \(e.message)", sourceLocation: sourceLocation)
    }

    // MARK: __exec

    @Test func execTakesWhatAgentpenWrites() throws {
        // The plan's own form (SandboxPlan.ExecHelper.argv, then the gate).
        let argv = ["__exec", "--gate", "4", "--cgroup", "19", "--syscall-notify", "20", "--rw", "/home/u/src/p", "--rw", "/tmp",
                    "--watch", "/home/u/src/p", "--watch", "/home/u/src/p/.git", "--", "/bin/sh", "-c", "true"]
        #expect(try Invocation.parse(argv) == .exec(ExecArguments(
            writable: ["/home/u/src/p", "/tmp"], cgroupFD: 19, notifyFD: 20, watch: ["/home/u/src/p", "/home/u/src/p/.git"],
            gateFD: 4, command: ["/bin/sh", "-c", "true"])))
        // Nothing but the command: every option is optional at parse time.
        #expect(try Invocation.parse(["__exec", "--", "/bin/true"]) == .exec(ExecArguments(command: ["/bin/true"])))
    }

    @Test func execCommandWordsAreTheCommandsWhateverTheyLookLike() throws {
        let command = ["/bin/tool", "--rw", "/etc", "--cgroup", "x", "--", "--bogus", "--help", "-h", "--gate=1", ""]
        #expect(try Invocation.parse(["__exec", "--syscall-notify", "3", "--"] + command)
                == .exec(ExecArguments(notifyFD: 3, command: command)))
        // A path value that starts like an option is still the value.
        #expect(try Invocation.parse(["__exec", "--rw", "-dir", "--watch", "--x", "--", "sh"])
                == .exec(ExecArguments(writable: ["-dir"], watch: ["--x"], command: ["sh"])))
    }

    @Test func execRefusesAnUnknownOption() {
        Self.refused(["__exec", "--bogus", "x", "--", "sh"], mentioning: "--bogus")
        Self.refused(["__exec", "-r", "/p", "--", "sh"], mentioning: "-r")
        Self.refused(["__exec", "--rw=/p", "--", "sh"], mentioning: "--rw=/p")
        Self.refused(["__exec", "--help", "--", "sh"], mentioning: "--help")
        // __netns' options are not __exec's.
        Self.refused(["__exec", "--nft", "/nft", "--", "sh"], mentioning: "--nft")
    }

    @Test func execRefusesAMissingValue() {
        for option in ["--rw", "--watch", "--cgroup", "--syscall-notify", "--gate"] {
            Self.refused(["__exec", option], mentioning: option)
        }
    }

    @Test func execRefusesAMalformedDescriptor() {
        for option in ["--cgroup", "--syscall-notify", "--gate"] {
            for bad in ["x", "", "-1", "+3", " 3", "3 ", "0x10", "3.0", "2147483648", "99999999999999999999", "--"] {
                Self.refused(["__exec", option, bad, "--", "sh"], mentioning: option)
            }
        }
    }

    @Test func execRefusesASingleOptionTwice() {
        for option in ["--cgroup", "--syscall-notify", "--gate"] {
            Self.refused(["__exec", option, "3", option, "4", "--", "sh"], mentioning: option)
            Self.refused(["__exec", option, "3", option, "3", "--", "sh"], mentioning: option)
        }
    }

    @Test func execRefusesWordsBeforeTheSeparatorAndNoSeparator() {
        Self.refused(["__exec", "/bin/sh"], mentioning: "/bin/sh")
        Self.refused(["__exec", "--rw", "/p", "/bin/sh", "--", "x"], mentioning: "/bin/sh")
        Self.refused(["__exec", "--rw", "/p"], mentioning: "--")
        Self.refused(["__exec"], mentioning: "--")
        // An empty command is refused at parse time too (the helper never runs nothing).
        Self.refused(["__exec", "--rw", "/p", "--"], mentioning: "command")
    }

    // MARK: __netns

    static let netBase = ["__netns", "--hop", "direct", "--nft", "/usr/sbin/nft"]

    @Test func netnsTakesWhatAgentpenWrites() throws {
        let argv = ["__netns", "--proxy-port", "8443", "--hop", "gateway", "--nft", "/usr/sbin/nft",
                    "--host", "a.example", "--host", "*.b.example", "--host", "c.example:22", "--fd", "10", "--fd", "11",
                    "--host-port", "11434", "--host-port", "5432", "--serve-sockets", "--", "/usr/bin/bwrap", "--x", "--", "--help"]
        guard case .netns(let n) = try Invocation.parse(argv) else { Issue.record("netns"); return }
        var list = Allowlist()
        for h in ["a.example", "*.b.example", "c.example:22"] { list.add(try HostPattern(h)) }
        var expected = NetArguments(proxyPort: 8443, hop: .gateway, nft: "/usr/sbin/nft", hosts: list.patterns,
                                    passFDs: [10, 11], bwrap: ["/usr/bin/bwrap", "--x", "--", "--help"])
        expected.hostPorts = [11434, 5432]
        expected.serveSockets = true
        #expect(n == expected)
        // The defaults: splice, port 0, nothing else.
        guard case .netns(let d) = try Invocation.parse(["__netns", "--nft", "/nft", "--", "bwrap"]) else { Issue.record("netns"); return }
        #expect(d == NetArguments(proxyPort: 0, hop: .splice, nft: "/nft", bwrap: ["bwrap"]))
    }

    @Test func netnsRefusesAnUnknownOptionOrAMissingValue() {
        Self.refused(Self.netBase + ["--bogus", "--", "bwrap"], mentioning: "--bogus")
        Self.refused(Self.netBase + ["--serve-sockets=1", "--", "bwrap"], mentioning: "--serve-sockets=1")
        Self.refused(Self.netBase + ["--rw", "/p", "--", "bwrap"], mentioning: "--rw")
        for option in ["--proxy-port", "--hop", "--nft", "--host", "--fd", "--host-port"] {
            Self.refused(Self.netBase + [option], mentioning: option)
        }
    }

    @Test func netnsRefusesMalformedNumbers() {
        for bad in ["x", "", "-1", "+1", "65536", "1e3", "--"] {
            Self.refused(Self.netBase + ["--proxy-port", bad, "--", "bwrap"], mentioning: "--proxy-port")
            Self.refused(Self.netBase + ["--host-port", bad, "--", "bwrap"], mentioning: "--host-port")
            if bad != "65536" { Self.refused(Self.netBase + ["--fd", bad, "--", "bwrap"], mentioning: "--fd") }
        }
        Self.refused(Self.netBase + ["--fd", "2147483648", "--", "bwrap"], mentioning: "--fd")
    }

    @Test func netnsRefusesASingleOptionTwice() {
        Self.refused(["__netns", "--hop", "direct", "--hop", "splice", "--nft", "/nft", "--", "bwrap"], mentioning: "--hop")
        Self.refused(["__netns", "--nft", "/nft", "--nft", "/other", "--", "bwrap"], mentioning: "--nft")
        Self.refused(Self.netBase + ["--proxy-port", "1", "--proxy-port", "2", "--", "bwrap"], mentioning: "--proxy-port")
        Self.refused(Self.netBase + ["--serve-sockets", "--serve-sockets", "--", "bwrap"], mentioning: "--serve-sockets")
    }

    @Test func netnsRefusesBadValuesAsBefore() {
        Self.refused(["__netns", "--nft", "relative", "--", "bwrap"], mentioning: "--nft")
        Self.refused(["__netns", "--", "bwrap"], mentioning: "--nft")
        Self.refused(["__netns", "--hop", "nope", "--nft", "/nft", "--", "bwrap"], mentioning: "--hop")
        Self.refused(Self.netBase + ["--host", "not a host", "--", "bwrap"], mentioning: "--host")
        Self.refused(Self.netBase + ["--", ], mentioning: "command")
        Self.refused(Self.netBase, mentioning: "--")
        Self.refused(Self.netBase + ["bwrap"], mentioning: "bwrap")
    }
}
