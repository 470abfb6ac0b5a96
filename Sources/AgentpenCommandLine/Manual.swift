/// agentpen(1), written from the same table as `--help` and the completions
/// (Help), so the three cannot disagree. `make install` writes it with the
/// internal entry point `agentpen __manual`.
public enum Manual {
    /// roff text: `-` as `\-`, backslashes as `\e`, a leading `.` or `'` guarded.
    static func roff(_ s: String) -> String {
        var out = s.replacingOccurrences("\\", "\\e").replacingOccurrences("-", "\\-")
        if out.hasPrefix(".") || out.hasPrefix("'") { out = "\\&" + out }
        return out
    }

    public static var page: String {
        var l: [String] = [
            ".TH AGENTPEN 1 \"\" \"agentpen\" \"User Commands\"",
            ".SH NAME", "agentpen \\- run a coding agent on code you do not trust",
            ".SH SYNOPSIS",
            ".B agentpen", "[\\fIOPTIONS\\fR] [\\fB\\-\\-\\fR] [\\fICOMMAND\\fR [\\fIARGS\\fR...]]", ".br",
            ".B agentpen", "\\fISUBCOMMAND\\fR [\\fIARGS\\fR...]",
            ".SH DESCRIPTION",
            roff("Runs COMMAND (default: your $SHELL) confined: the project directory is writable, your home is an empty tmpfs, the network reaches only the hosts the agent needs, and every blocked connection is reported. Options end at COMMAND: flags after it belong to COMMAND."),
            ".SH OPTIONS",
        ]
        for e in Help.options {
            l += [".TP", ".B " + roff(e.syntax), roff(e.argumentHelp)]
        }
        l += [".SH SUBCOMMANDS",
              roff("A first argument naming a subcommand is agentpen's own; after an option or -- the word is a program (agentpen -- watch df runs watch)."),
              ".TP", ".B completions \\fISHELL\\fR", roff(Help.completionsAbstract + " (bash, zsh, fish)"),
              ".TP", ".B config \\fR[\\fIOPTIONS\\fR] [\\fICOMMAND\\fR]", roff(Help.configAbstract),
              ".TP", ".B trust \\fR[\\fB\\-C \\fIDIR\\fR]", roff(Help.trustAbstract),
              ".TP", ".B init \\fR[\\fB\\-C \\fIDIR\\fR]", roff(Help.initAbstract),
              ".TP", ".B review \\fR[\\fB\\-C \\fIDIR\\fR]", roff(Help.reviewAbstract),
              ".TP", ".B apply \\fR[\\fB\\-C \\fIDIR\\fR]", roff(Help.applyAbstract),
              ".TP", ".B watch \\fR[\\fB\\-\\-json\\fR] [\\fB\\-\\-all\\fR | \\fISESSION\\fR...]",
              roff(Help.watchAbstract + ". Several sessions are shown together, every line naming its session; --all follows every running session and each one that starts meanwhile, until none runs; with --json each event carries its session."),
              ".TP", ".B selftest", roff(Help.selftestAbstract + "; one PASS/FAIL line per case, as you, without root or the network"),
              ".TP", ".B allow \\fIHOST\\fR [\\fB\\-\\-once\\fR | \\fB\\-\\-session\\fR | \\fB\\-\\-save\\fR agent|project | \\fB\\-\\-deny\\fR] [\\fB\\-\\-session\\-id \\fIID\\fR]",
              roff(Help.allowAbstract + "; talks to the session's control socket, which nothing inside the sandbox can reach. --save writes $XDG_CONFIG_HOME/agentpen/allowed.toml, never config.toml"),
              ".SH FILES",
              ".TP", ".I $XDG_CONFIG_HOME/agentpen/config.toml",
              roff("The global config (default ~/.config/agentpen/config.toml), yours and trusted: invalid TOML, a wrong type or an unknown key stops agentpen (exit 2) naming the file and key. Only here: [proxy] url = \"http://[USER:PASSWORD@]HOST:PORT\" and no_proxy = [NAME, .SUFFIX], a corporate HTTP CONNECT proxy the connections to allowed names go through (never HTTPS_PROXY or the like from the environment, never a project file); through it the proxy resolves each name and vets the final address, not agentpen, so --allow-private and the refusal of private addresses cannot be checked there."),
              ".TP", ".I .agentpen.toml",
              roff("At the project root, untrusted: only what tightens counts (hide, remove_hosts, remove_env, ro_config = true, allow_parent_git = false, a profile that only tightens) until agentpen trust; every other key is ignored with a warning. Read-only inside the sandbox."),
              ".TP", ".I $XDG_CONFIG_HOME/agentpen/allowed.toml",
              roff("Hosts saved by agentpen allow --save (per agent, per project): written only by agentpen, read as trusted like config.toml, which agentpen never rewrites."),
              ".TP", ".I $XDG_STATE_HOME/agentpen/trust/",
              roff("One record per trusted project file: the project's real path and the SHA-256 of the file; an edit makes it untrusted again."),
              ".TP", ".I $XDG_RUNTIME_DIR/agentpen/runs/",
              roff("The registry of live runs (else under $XDG_STATE_HOME/agentpen). No mount may show any of these directories inside the sandbox."),
              ".TP", ".I $XDG_STATE_HOME/agentpen/sessions/ID/",
              roff("A run's session: events.jsonl, the control socket while it runs, and decoys/, empty files bound read-only at /run/agentpen/decoys, to which the well-known secret paths of the empty home (~/.ssh/id_rsa, ~/.aws/credentials, ~/.netrc, ...) are links, never over a path you mounted; each open is a secret-read event."),
              ".SH ENVIRONMENT",
              roff("AGENTPEN_PROXY_PORT fixes the proxy's host port; AGENTPEN_HOP=gateway routes through pasta's tap. bwrap, pasta and nft come from system directories, never PATH; AGENTPEN_BWRAP, AGENTPEN_PASTA, AGENTPEN_NFT name other absolute paths."),
              ".SH EXIT STATUS",
              roff("COMMAND's own; 128+N if it died by signal N; 125 agentpen failed; 126 COMMAND not executable; 127 COMMAND not found; 2 bad usage or a refusal."),
              ".SH SEE ALSO", "bwrap(1), pasta(1)"]
        return l.joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate func replacingOccurrences(_ a: String, _ b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}
