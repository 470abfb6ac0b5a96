import AgentpenPolicy

/// Where a value of the effective configuration came from.
public enum Provenance: Sendable, Equatable, CustomStringConvertible {
    /// A command-line flag, e.g. `--allow`.
    case flag(String)
    /// A key of a config file (`agent.claude.hosts`).
    case file(path: String, key: String)
    /// A shipped preset.
    case preset(String)
    /// agentpen's own default (the basename of COMMAND choosing the preset, …).
    case builtin(String)

    public var description: String {
        switch self {
        case .flag(let f): "flag \(f)"
        case .file(let p, let k): "\(p): \(k)"
        case .preset(let n): "preset \(n)"
        case .builtin(let why): why
        }
    }
}

/// A value and where it came from.
public struct Sourced<Value: Sendable & Equatable>: Sendable, Equatable {
    public var value: Value
    public var source: Provenance
    public init(_ value: Value, _ source: Provenance) { self.value = value; self.source = source }
}

/// The settings one layer (a file, a profile) gives. Every key of a file maps
/// to one field; nil or empty means the layer does not say.
public struct Settings: Sendable, Equatable {
    /// `preset = "claude"` (the flag --agent).
    public var preset: Sourced<String>?
    /// `profile = "NAME"`: a profile defined in the global file, or a built-in one.
    public var profile: Sourced<String>?
    public var env: [Sourced<String>] = []
    public var mounts: [Sourced<String>] = []
    public var mountsRW: [Sourced<String>] = []
    /// `allow` and `allow_private` (the pattern says which).
    public var allow: [Sourced<HostPattern>] = []
    /// `allow_host_ports` (--allow-host-port), `publish` (--publish).
    public var hostPorts: [Sourced<UInt16>] = []
    public var publish: [Sourced<UInt16>] = []
    /// `hop` (--hop).
    public var hop: Sourced<NetworkPlan.Hop>?
    public var allowParentGit: Sourced<Bool>?
    public var readOnlyConfig: Sourced<Bool>?
    public var log: Sourced<String>?
    public var tmpfsSize: Sourced<TmpfsBudget.Request>?
    public var memoryMax: Sourced<CgroupPlan.Limit<TmpfsBudget.Request>>?
    public var cpus: Sourced<CgroupPlan.Limit<UInt64>>?
    public var tasksMax: Sourced<CgroupPlan.Limit<UInt64>>?
    public var noCgroup: Sourced<Bool>?
    /// Hosts taken out of the allowlist (presets, files, profiles; never a flag's).
    public var removeHosts: [Sourced<HostPattern>] = []
    /// Variables not passed in, whoever asked (presets, files, profiles; never a flag's).
    public var removeEnv: [Sourced<String>] = []
    /// Globs of project paths masked inside the sandbox.
    public var hide: [Sourced<String>] = []
    /// `[agent.NAME]` tables.
    public var agents: [String: AgentSettings] = [:]

    public init() {}
}

/// `[agent.NAME]`: what a run of that agent gets beyond its preset.
public struct AgentSettings: Sendable, Equatable {
    public var hosts: [Sourced<HostPattern>] = []
    public var env: [Sourced<String>] = []
    public var mounts: [Sourced<String>] = []
    public var mountsRW: [Sourced<String>] = []
    /// Given to the agent after its preset's own arguments, before the caller's.
    public var args: [Sourced<String>] = []
    public init() {}
    var isEmpty: Bool { hosts.isEmpty && env.isEmpty && mounts.isEmpty && mountsRW.isEmpty && args.isEmpty }
}

/// Which file a config came from: decides which keys it may hold.
public enum ConfigKind: Sendable, Equatable {
    /// `$XDG_CONFIG_HOME/agentpen/config.toml`: the user's own, trusted; every problem stops the run.
    case global
    /// `.agentpen.toml` at the project root: hostile input; problems are warnings.
    case project
}

/// One parsed config file.
public struct ConfigFile: Sendable, Equatable {
    public var path: String
    public var kind: ConfigKind
    public var settings = Settings()
    /// `context_roots` (global only).
    public var contextRoots: [Sourced<String>] = []
    /// `[profiles.NAME]` (global only).
    public var profiles: [String: Settings] = [:]
    /// `ask` (global only): true asks in every run (as --ask); false turns asking
    /// off entirely (--ask is refused). A project file may say neither: turning it
    /// on would let a repository make the user field prompts for hosts it chose,
    /// turning it off would take away a choice the user made.
    public var ask: Sourced<Bool>?
    /// `ask_timeout` (global only): seconds a held connection waits for a decision.
    public var askTimeout: Sourced<Int>?
    /// `[proxy]` (global only): the HTTP CONNECT proxy to dial upstream through.
    public var proxy: Sourced<UpstreamProxy>?
    /// Keys of a project file that were left out, and why (a warning each).
    public var ignored: [Ignored] = []
    /// The exact bytes' SHA-256 (what a trust record names).
    public var sha256: String = ""

    public init(path: String, kind: ConfigKind) { self.path = path; self.kind = kind }
}

/// A key of a project file that is not honoured.
public struct Ignored: Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// Not a key agentpen knows, or a value of the wrong type.
        case invalid(String)
        /// It would widen the sandbox and the file is not trusted.
        case widening
        /// Only the global config may say this (even a trusted project may not).
        case globalOnly
    }
    public var file: String
    public var key: String
    public var reason: Reason

    public init(file: String, key: String, reason: Reason) { self.file = file; self.key = key; self.reason = reason }

    public var description: String {
        switch reason {
        case .invalid(let why): "\(file): \(key) ignored: \(why)"
        case .widening: "\(file): \(key) ignored: it would widen the sandbox and this project file is not trusted; review it, then run agentpen trust"
        case .globalOnly: "\(file): \(key) ignored: only the global config (~/.config/agentpen/config.toml) may set it"
        }
    }
}

/// A problem in the global config: the run stops (exit 2) naming the file and key.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var file: String
    /// The key (`agent.claude.hosts`), or nil for a syntax error.
    public var key: String?
    /// The line, where TOMLKit gives one (syntax errors only).
    public var line: Int?
    public var message: String

    public init(file: String, key: String? = nil, line: Int? = nil, message: String) {
        self.file = file; self.key = key; self.line = line; self.message = message
    }

    public var description: String {
        var where_ = file
        if let line { where_ += ", line \(line)" }
        if let key { where_ += ": \(key)" }
        return "\(where_): \(message)"
    }
}
