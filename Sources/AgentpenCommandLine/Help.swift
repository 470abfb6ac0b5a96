import AgentpenPolicy

/// The help text, written once: each option's entry is both a line of
/// `agentpen --help` (laid out as below, unchanged from the hand-parsed days)
/// and the description the generated shell completions show.
enum Help {
    struct Entry {
        /// How the flag is written in --help, e.g. "--agent NAME".
        var syntax: String
        /// Its description, one string per help line.
        var lines: [String]
        /// The one-line form for ArgumentParser (completions).
        var argumentHelp: String { lines.joined(separator: " ") }
    }

    static let agent = Entry(syntax: "--agent NAME", lines: [
        "preset to apply (default: basename of COMMAND);",
        "presets: \(Preset.builtinNames.joined(separator: ", "))"])
    static let project = Entry(syntax: "-C, --project DIR", lines: ["project directory (default: current directory)"])
    static let env = Entry(syntax: "--env VAR", lines: ["pass VAR from your environment (repeatable)"])
    static let mount = Entry(syntax: "--mount PATH", lines: ["extra read-only path (repeatable)"])
    static let mountRW = Entry(syntax: "--mount-rw PATH", lines: ["extra read-write path (repeatable)"])
    static let allow = Entry(syntax: "--allow HOST", lines: [
        "also allow HOST over TLS on 443; *.example.com allows",
        "every subdomain of example.com (repeatable);",
        "HOST:PORT allows any TCP protocol to HOST on PORT",
        "(git over ssh: --allow github.com:22)"])
    static let allowPrivate = Entry(syntax: "--allow-private HOST", lines: ["like --allow, and HOST may resolve to a private address"])
    static let allowHostPort = Entry(syntax: "--allow-host-port PORT", lines: [
        "the sandbox's 127.0.0.1:PORT reaches this machine's",
        "127.0.0.1:PORT (e.g. a local model server); a risk:",
        "whatever listens there is reachable from inside"])
    static let publish = Entry(syntax: "--publish PORT", lines: [
        "this machine's 127.0.0.1:PORT reaches a server listening",
        "on PORT inside the sandbox (e.g. a dev server)"])
    static let hop = Entry(syntax: "--hop HOP", lines: [
        "how connections leave: direct (the default: agentpen",
        "serves sockets made inside the sandbox, no pasta) or",
        "pasta (pasta's tap and a forwarder inside)"])
    static let ask = Entry(syntax: "--ask", lines: [
        "a TLS connection to a host not allowed waits while you",
        "decide in agentpen watch or with agentpen allow HOST",
        "(once, this session, saved, or deny); none in time: refused"])
    static let audit = Entry(syntax: "--audit", lines: [
        "the host allowlist is not enforced: every host goes",
        "through and is recorded as would-block (private and",
        "loopback upstreams stay refused); then agentpen suggest"])
    static let allowParentGit = Entry(syntax: "--allow-parent-git", lines: ["a git worktree's parent git dir becomes writable"])
    static let roConfig = Entry(syntax: "--ro-config", lines: [
        "the preset's config paths (e.g. ~/.claude) read-only:",
        "nothing the agent runs later can be planted there"])
    static let profile = Entry(syntax: "--profile NAME", lines: [
        "untrusted (today's behaviour, the default), paranoid",
        "(the project and the agent's config as throwaway",
        "copies, only its API hosts), or one of your config file"])
    static let quiet = Entry(syntax: "--quiet", lines: ["no start line, exit summary or live block lines"])
    static let log = Entry(syntax: "--log FILE", lines: [
        "append every allow/block decision to FILE (JSON lines);",
        "a regular file outside what the sandbox can write"])
    static let tmpfsSize = Entry(syntax: "--tmpfs-size SIZE", lines: [
        "memory for all the sandbox's tmpfs mounts together",
        "(512M, 4G, or 25% of RAM, the default), split",
        "$HOME 40%, /tmp 30%, /dev/shm 15%, /var/tmp 10%, /run 5%"])
    static let memoryMax = Entry(syntax: "--memory-max SIZE", lines: ["memory limit of the run (default 75% of RAM)"])
    static let cpus = Entry(syntax: "--cpus N", lines: ["CPU limit, e.g. 1.5 (default: none, a lower CPU weight)"])
    static let tasksMax = Entry(syntax: "--tasks-max N", lines: ["processes and threads (default 4096)"])
    static let noCgroup = Entry(syntax: "--no-cgroup", lines: [
        "none of the three; each also takes none. They apply",
        "in a delegated cgroup (a systemd user session);",
        "--check says whether they do here"])
    static let check = Entry(syntax: "--check", lines: ["report what this host can enforce, exit 0 if a run would work"])
    static let dryRun = Entry(syntax: "--dry-run", lines: ["print the full plan and exit"])
    static let version = Entry(syntax: "--version", lines: ["print the version"])
    static let help = Entry(syntax: "-h, --help", lines: ["this help"])

    static let options: [Entry] = [agent, project, env, mount, mountRW, allow, allowPrivate, allowHostPort,
                                   publish, hop, ask, audit, allowParentGit,
                                   roConfig, profile, quiet, log, tmpfsSize, memoryMax, cpus, tasksMax, noCgroup, check,
                                   dryRun, version, help]

    static let command = "the command to run confined and its arguments (default: your $SHELL)"
    static let completionsAbstract = "print a completion script for bash, zsh or fish"
    static let selftestAbstract = "run the escape cases against this host's sandbox in a throwaway world; exit 0 only if all held"
    static let configAbstract = "print the effective configuration of a run and where each value came from"
    static let trustAbstract = "honour the project's .agentpen.toml as it is now (an edit undoes it)"
    static let initAbstract = "write a commented .agentpen.toml in the project"
    static let reviewAbstract = "show what paranoid runs changed in their copy of the project"
    static let applyAbstract = "write a paranoid run's changes into the project (never .git)"
    static let configUsage = """
    usage: agentpen config [OPTIONS] [COMMAND [ARGS...]]

    Prints the configuration a run with these options would have: the files read
    (global $XDG_CONFIG_HOME/agentpen/config.toml, the project's .agentpen.toml
    and whether it is trusted), the project, and every value with the flag, file
    and key it came from. Precedence: flags > trusted project > profile > global
    > presets. OPTIONS are those of a run (agentpen --help).
    """
    static let reservedAbstract = "reserved for a subcommand of agentpen (not available yet)"
    static let watchAbstract = "follow sessions live (default: the newest; or IDs, --all); --json"
    static let allowAbstract = "decide about a connection a --ask run holds for HOST (once, session, save, deny)"
    static let suggestAbstract = "the --allow flags and config lines a session's refusals call for"

    static func table(_ entries: [Entry]) -> String {
        entries.map { e in
            let first = e.syntax.count >= 23 ? e.syntax + " " : e.syntax + String(repeating: " ", count: 23 - e.syntax.count)
            let rest = e.lines.dropFirst().map { String(repeating: " ", count: 25) + $0 }
            return (["  " + first + e.lines[0]] + rest).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    static var usage: String {
        let names = Subcommand.reserved.filter { !$0.isAvailable }.map(\.rawValue).joined(separator: ", ")
        let reserved = names.isEmpty ? "" : "  \(names)\n                         reserved; not available yet (exit 2)\n"
        return """
        usage: agentpen [OPTIONS] [--] [COMMAND [ARGS...]]
               agentpen SUBCOMMAND [ARGS...]

        Runs COMMAND (default: your $SHELL) confined: the project directory is
        writable, your home is an empty tmpfs, the network reaches only the hosts
        the agent needs, and every blocked connection is reported.

        options:
        \(table(options))

        Options end at COMMAND: flags after it belong to COMMAND.
        subcommands are agentpen's own and count only as the first argument; after
        an option or --, NAME is a program (agentpen -- watch df runs watch):
          completions SHELL      \(completionsAbstract)
          config [OPTIONS] [COMMAND]
                                 \(configAbstract)
          trust [-C DIR]         \(trustAbstract)
          init [-C DIR]          \(initAbstract)
          review [-C DIR]        \(reviewAbstract)
          apply [-C DIR]         \(applyAbstract)
          watch [--json] [--all | SESSION...]
                                 \(watchAbstract)
          suggest [SESSION]      \(suggestAbstract)
          allow HOST [--once | --session | --save agent|project | --deny] [--session-id ID]
                                 decide about the connections a --ask run holds for
                                 HOST (default --once); from any terminal of yours
          selftest               run the escape cases against this host's sandbox, as
                                 you, in a throwaway world; one PASS/FAIL line each;
                                 exit 0 only if all held
        \(reserved)        config files: $XDG_CONFIG_HOME/agentpen/config.toml (default ~/.config/...),
        yours; .agentpen.toml at the project root, untrusted: only what tightens
        counts (hide, remove_hosts, remove_env, ro_config, ...) until agentpen trust.
        Flags win over both. A corporate proxy: [proxy] url = "http://HOST:PORT"
        (credentials, no_proxy) in the global file only, never HTTPS_PROXY or a
        project file; through it the proxy, not agentpen, vets the final address.
        environment: AGENTPEN_PROXY_PORT fixes the proxy's host port (default: a free
        one); AGENTPEN_HOP=gateway routes connections through pasta's tap instead of
        its loopback splice (for measurements). bwrap, pasta and nft come from
        /usr/bin, /usr/sbin, /bin, /sbin or /run/current-system/sw/bin, never PATH;
        AGENTPEN_BWRAP, AGENTPEN_PASTA, AGENTPEN_NFT name other absolute paths
        (outside the home, the project and anything the sandbox can write).
        sessions: each run records its events in $XDG_STATE_HOME/agentpen/sessions/ID
        (default ~/.local/state); the sandbox reads its refusals in $AGENTPEN_REFUSALS.
        exit status: COMMAND's own; 128+N if it died by signal N; 125 agentpen failed;
        126 COMMAND not executable; 127 COMMAND not found; 2 bad usage.
        """
    }
}

extension Options {
    /// `agentpen --help`.
    public static var usage: String { Help.usage }
}
