/// What the user asked for on the command line: the plain value the planner
/// consumes. AgentpenCommandLine parses argv into it (`Options.parse`), and
/// writes `--help` (`Options.usage`).
public struct Options: Sendable, Equatable {
    public enum Mode: Sendable, Equatable { case run, check, dryRun, help, version }

    public var mode: Mode = .run
    public var agent: String?
    public var project: String?
    public var env: [String] = []
    public var mounts: [String] = []
    public var mountsRW: [String] = []
    public var allow: [HostPattern] = []
    /// `--allow-host-port PORT`: the sandbox's 127.0.0.1:PORT reaches the host's.
    public var hostPorts: [UInt16] = []
    /// `--publish PORT`: the host's 127.0.0.1:PORT reaches a server listening inside.
    public var publish: [UInt16] = []
    /// `--hop direct|pasta`: how the sandbox's connections reach the proxy (nil: the default).
    public var hop: NetworkPlan.Hop?
    /// `--audit`: the name allowlist is not enforced; every unlisted name goes
    /// through, recorded as would-block (loopback and private upstreams stay refused).
    public var audit = false
    /// `--ask` (or the global config's `ask = true`): a TLS connection to an
    /// unlisted name waits for the user's decision (`agentpen watch`, `agentpen allow`).
    public var ask = false
    /// How long a held connection waits for a decision (the global `ask_timeout`).
    public var askTimeout: Int = Options.defaultAskTimeout
    public static let defaultAskTimeout = 60

    /// What the run does with names the allowlist does not list.
    public var unlistedNames: UnlistedNames { audit ? .pass : ask ? .hold : .refuse }
    public var allowParentGit = false
    /// The preset's config paths read-only: hooks and MCP commands cannot be planted.
    public var readOnlyConfig = false
    public var logPath: String?
    /// `--quiet`: no start line, no exit summary, no live block lines.
    public var quiet = false
    /// `--tmpfs-size`: the total for the sandbox's tmpfs mounts (nil: the default).
    public var tmpfsSize: TmpfsBudget.Request?
    /// `--memory-max`, `--cpus`, `--tasks-max`, `--no-cgroup`: limits in a delegated cgroup.
    public var cgroupLimits = CgroupPlan.Limits()
    /// `--profile`: a profile of the global config (nil: the files decide).
    public var profile: String?
    /// The paranoid profile: no read-write mounts, only the agent's own hosts,
    /// the project and the agent's config directories as throwaway copies.
    public var paranoid = false
    /// Where the throwaway copies are (the runner makes them before planning).
    public var throwaway: Throwaway?
    /// Globs of project paths masked inside (`hide` in the config files; no flag).
    public var hide: [String] = []
    /// The HTTP CONNECT proxy upstream connections go through (`[proxy]` in the
    /// global config only; no flag, never the environment).
    public var upstreamProxy: UpstreamProxy?
    /// The command and its arguments; empty means the user's shell.
    public var command: [String] = []

    public init() {}

    public struct UsageError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }
}

/// The paranoid profile's copies: the project's (kept for `agentpen review`
/// and `agentpen apply`) and each config directory's (thrown away after the
/// run but for the preset's credential files).
public struct Throwaway: Sendable, Equatable {
    /// The copy of the project, bound at the project's path.
    public var project: String
    /// Real config directory → its copy, bound at the real path.
    public var config: [String: String]
    /// Sources under this directory may be bound (the copies live there).
    public var base: String
    public init(project: String, config: [String: String], base: String) {
        self.project = project; self.config = config; self.base = base
    }
}
