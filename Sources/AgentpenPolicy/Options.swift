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
        public init(message: String) { self.message = message }
        public var description: String { message }
    }
}
