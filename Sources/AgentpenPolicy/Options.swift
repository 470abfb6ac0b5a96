/// What the user asked for on the command line. Parsing is pure so every flag
/// can be tested without starting anything.
public struct Options: Sendable, Equatable {
    public enum Mode: Sendable, Equatable { case run, check, dryRun, help, version }

    public var mode: Mode = .run
    public var agent: String?
    public var project: String?
    public var env: [String] = []
    public var mounts: [String] = []
    public var mountsRW: [String] = []
    public var allow: [HostPattern] = []
    public var allowParentGit = false
    /// The preset's config paths read-only: hooks and MCP commands cannot be planted.
    public var readOnlyConfig = false
    public var logPath: String?
    /// `--tmpfs-size`: the total for the sandbox's tmpfs mounts (nil: the default).
    public var tmpfsSize: TmpfsBudget.Request?
    /// `--memory-max`, `--cpus`, `--tasks-max`, `--no-cgroup`: limits in a delegated cgroup.
    public var cgroupLimits = CgroupPlan.Limits()
    /// The command and its arguments; empty means the user's shell.
    public var command: [String] = []

    public init() {}

    public struct UsageError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public static func parse(_ args: [String]) throws(UsageError) -> Options {
        var o = Options()
        var i = 0
        func value(_ flag: String, _ inline: String?) throws(UsageError) -> String {
            if let inline { return inline }
            i += 1
            guard i < args.count else { throw UsageError(message: "\(flag) needs a value") }
            return args[i]
        }
        func host(_ text: String, privateOK: Bool) throws(UsageError) -> HostPattern {
            do { return try HostPattern(text, allowsPrivateUpstream: privateOK) }
            catch { throw UsageError(message: "refused host \(error.description)") }
        }
        var modes: [Mode] = []
        while i < args.count {
            let arg = args[i]
            if arg == "--" { o.command = Array(args[(i + 1)...]); break }
            guard arg.hasPrefix("-"), arg != "-" else { o.command = Array(args[i...]); break }
            var flag = arg
            var inline: String?
            if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") {
                flag = String(arg[..<eq])
                inline = String(arg[arg.index(after: eq)...])
            }
            switch flag {
            case "--agent": o.agent = try value(flag, inline)
            case "-C", "--project": o.project = try value(flag, inline)
            case "--env":
                let name = try value(flag, inline)
                guard EnvPolicy.isValidName(name) else { throw UsageError(message: "--env: bad variable name \(name.debugDescription)") }
                o.env.append(name)
            case "--mount": o.mounts.append(try value(flag, inline))
            case "--mount-rw": o.mountsRW.append(try value(flag, inline))
            case "--allow": o.allow.append(try host(try value(flag, inline), privateOK: false))
            case "--allow-private": o.allow.append(try host(try value(flag, inline), privateOK: true))
            case "--allow-parent-git": o.allowParentGit = true
            case "--ro-config": o.readOnlyConfig = true
            case "--log": o.logPath = try value(flag, inline)
            case "--tmpfs-size":
                let v = try value(flag, inline)
                do { o.tmpfsSize = try TmpfsBudget.parse(v) } catch { throw UsageError(message: error.message) }
            case "--memory-max":
                let v = try value(flag, inline)
                if v == "none" { o.cgroupLimits.memory = .none } else {
                    do { o.cgroupLimits.memory = .set(try TmpfsBudget.parse(v, flag: flag)) } catch { throw UsageError(message: error.message) }
                }
            case "--cpus":
                let v = try value(flag, inline)
                if v == "none" { o.cgroupLimits.milliCPUs = .none }
                else if let m = CgroupPlan.parseCPUs(v) { o.cgroupLimits.milliCPUs = .set(m) }
                else { throw UsageError(message: "--cpus \(v.debugDescription): a number of CPUs such as 2 or 1.5, or none") }
            case "--tasks-max":
                let v = try value(flag, inline)
                if v == "none" { o.cgroupLimits.tasks = .none }
                else if let n = UInt64(v), n > 0, n < 1 << 22 { o.cgroupLimits.tasks = .set(n) }
                else { throw UsageError(message: "--tasks-max \(v.debugDescription): a number of processes and threads, or none") }
            case "--no-cgroup":
                o.cgroupLimits.memory = .none; o.cgroupLimits.milliCPUs = .none; o.cgroupLimits.tasks = .none
            case "--check": modes.append(.check)
            case "--dry-run": modes.append(.dryRun)
            case "--version": modes.append(.version)
            case "-h", "--help": modes.append(.help)
            default: throw UsageError(message: "unknown option \(arg)")
            }
            if inline != nil && ["--check", "--dry-run", "--version", "--help", "--allow-parent-git", "--ro-config", "--no-cgroup"].contains(flag) {
                throw UsageError(message: "\(flag) takes no value")
            }
            i += 1
        }
        if modes.contains(.help) { o.mode = .help }
        else if modes.contains(.version) { o.mode = .version }
        else if Set(modes).count > 1 { throw UsageError(message: "--check and --dry-run cannot be combined") }
        else if let m = modes.first { o.mode = m }
        return o
    }

    public static let usage = """
    usage: agentpen [OPTIONS] [--] [COMMAND [ARGS...]]

    Runs COMMAND (default: your $SHELL) confined: the project directory is
    writable, your home is an empty tmpfs, the network reaches only the hosts
    the agent needs, and every blocked connection is reported.

    options:
      --agent NAME           preset to apply (default: basename of COMMAND);
                             presets: \(Preset.builtinNames.joined(separator: ", "))
      -C, --project DIR      project directory (default: current directory)
      --env VAR              pass VAR from your environment (repeatable)
      --mount PATH           extra read-only path (repeatable)
      --mount-rw PATH        extra read-write path (repeatable)
      --allow HOST           also allow HOST over TLS; *.example.com allows every
                             subdomain of example.com (repeatable)
      --allow-private HOST   like --allow, and HOST may resolve to a private address
      --allow-parent-git     a git worktree's parent git dir becomes writable
      --ro-config            the preset's config paths (e.g. ~/.claude) read-only:
                             nothing the agent runs later can be planted there
      --log FILE             append every allow/block decision to FILE (JSON lines);
                             a regular file outside what the sandbox can write
      --tmpfs-size SIZE      memory for all the sandbox's tmpfs mounts together
                             (512M, 4G, or 25% of RAM, the default), split
                             $HOME 40%, /tmp 30%, /dev/shm 15%, /var/tmp 10%, /run 5%
      --memory-max SIZE      memory limit of the run (default 75% of RAM)
      --cpus N               CPU limit, e.g. 1.5 (default: none, a lower CPU weight)
      --tasks-max N          processes and threads (default 4096)
      --no-cgroup            none of the three; each also takes none. They apply
                             in a delegated cgroup (a systemd user session);
                             --check says whether they do here
      --check                report what this host can enforce, exit 0 if a run would work
      --dry-run              print the full plan and exit
      --version              print the version
      -h, --help             this help

    Options end at COMMAND: flags after it belong to COMMAND.
    environment: AGENTPEN_PROXY_PORT fixes the proxy's host port (default: a free
    one); AGENTPEN_HOP=gateway routes connections through pasta's tap instead of
    its loopback splice (for measurements). bwrap, pasta and nft come from
    /usr/bin, /usr/sbin, /bin, /sbin or /run/current-system/sw/bin, never PATH;
    AGENTPEN_BWRAP, AGENTPEN_PASTA, AGENTPEN_NFT name other absolute paths
    (outside the home, the project and anything the sandbox can write).
    exit status: COMMAND's own; 128+N if it died by signal N; 125 agentpen failed;
    126 COMMAND not executable; 127 COMMAND not found; 2 bad usage.
    """
}
