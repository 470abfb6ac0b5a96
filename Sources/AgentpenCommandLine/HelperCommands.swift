import AgentpenPolicy

// agentpen's internal entry points: run by agentpen itself (never by a user),
// named with a leading "__" so no program name or subcommand can collide, and
// left out of --help and the completions. Each parses to a plain value:
// `__exec` and `__netns` by hand (HelperArgv: no built-in flags, the agent's
// argv follows their `--`); `__probe` checks its own words.

/// `agentpen __exec [--cgroup FD] --syscall-notify FD [--rw PATH]... [--watch PATH]... -- COMMAND...`:
/// the last step inside the sandbox before the agent.
public struct ExecArguments: Sendable, Equatable {
    public var writable: [String] = []
    public var cgroupFD: Int32?
    /// The unix socket the refused-syscall listener goes back to agentpen on
    /// (required: the helper never starts the agent without that filter).
    public var notifyFD: Int32?
    /// Directories whose mounts (the sandbox's own) agentpen watches for the
    /// files the run writes (the persistence audit's attribution): opened
    /// here and sent with the listener.
    public var watch: [String] = []
    /// The direct hop's start gate: the agent starts only once one byte arrives
    /// here (the namespace helper writes it when the firewall is loaded and read
    /// back); end of file means it never starts.
    public var gateFD: Int32?
    public var command: [String] = []
    public init(writable: [String] = [], cgroupFD: Int32? = nil, notifyFD: Int32? = nil, watch: [String] = [],
                gateFD: Int32? = nil, command: [String] = []) {
        self.writable = writable; self.cgroupFD = cgroupFD; self.notifyFD = notifyFD; self.watch = watch
        self.gateFD = gateFD; self.command = command
    }
}

/// `agentpen __netns --proxy-port P --hop H --nft PATH [--host H]... [--fd N]... -- BWRAP...`:
/// the namespace helper.
public struct NetArguments: Sendable, Equatable {
    public var proxyPort: UInt16 = 0
    public var hop: NetworkPlan.Hop = .splice
    public var nft = ""
    public var hosts: [HostPattern] = []
    public var passFDs: [Int32] = []
    public var bwrap: [String] = []
    /// Direct hop: `--allow-host-port` ports (listeners on 127.0.0.1 inside).
    public var hostPorts: [UInt16] = []
    /// Direct hop: make sockets inside on agentpen's request (`--publish`).
    public var serveSockets = false
    public init(proxyPort: UInt16 = 0, hop: NetworkPlan.Hop = .splice, nft: String = "", hosts: [HostPattern] = [],
                passFDs: [Int32] = [], bwrap: [String] = [], hostPorts: [UInt16] = [], serveSockets: Bool = false) {
        self.proxyPort = proxyPort; self.hop = hop; self.nft = nft; self.hosts = hosts; self.passFDs = passFDs
        self.bwrap = bwrap; self.hostPorts = hostPorts; self.serveSockets = serveSockets
    }
}

