import AgentpenPolicy

/// The effective configuration of a run: the command line merged with the
/// config files and the preset, every value with where it came from.
/// Precedence: flags > trusted project > profile > global > presets. Lists
/// (hosts, variables, mounts, hide) add up across layers; `remove_hosts` and
/// `remove_env` take out what presets, files and profiles added, never what a
/// flag asked for.
public struct Resolution: Sendable {
    /// What the planner consumes: the flags with the files' values merged in.
    public var options: Options
    /// The agent's preset with its `[agent.NAME]` additions and the removals applied.
    public var preset: Preset?
    /// Globs of project paths to mask (`hide`).
    public var hide: [Sourced<String>] = []
    /// One line per effective value, for `agentpen config` and `--dry-run`.
    public var lines: [Line] = []
    /// Project keys left out, each a warning at start.
    public var ignored: [Ignored] = []
    /// The profile in force.
    public var profile: Sourced<String>

    public struct Line: Sendable, Equatable, CustomStringConvertible {
        public var key: String
        public var value: String
        public var source: Provenance
        public init(_ key: String, _ value: String, _ source: Provenance) { self.key = key; self.value = value; self.source = source }
        public var description: String { "\(key) = \(value)  (\(source))" }
    }

    /// What the resolver reads: the parsed files, and whether the project's is trusted.
    public struct Inputs: Sendable {
        public var flags: Options
        public var global: ConfigFile?
        public var project: ConfigFile?
        public var projectTrusted: Bool
        /// allowed.toml (trusted) and the project's real path its tables are keyed by.
        public var saved: SavedHosts?
        public var projectPath: String?
        public init(flags: Options, global: ConfigFile? = nil, project: ConfigFile? = nil, projectTrusted: Bool = false,
                    saved: SavedHosts? = nil, projectPath: String? = nil) {
            self.flags = flags; self.global = global; self.project = project; self.projectTrusted = projectTrusted
            self.saved = saved; self.projectPath = projectPath
        }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// A flag asked for something that does not exist: exit 2.
        case usage(String)
        /// The global file did: exit 2, naming the file and key.
        case config(ConfigError)
        public var description: String {
            switch self {
            case .usage(let m): m
            case .config(let e): e.description
            }
        }
    }

    /// Merges. `builtin` gives the shipped presets (Preset.builtin).
    public static func resolve(_ input: Inputs, builtin: (String) -> Preset? = Preset.builtin) throws(Failure) -> Resolution {
        let flags = input.flags
        let profiles = input.global?.profiles ?? [:]
        var ignored: [Ignored] = []

        // The project's layer: everything when trusted, else only what tightens.
        var project = Settings()
        if let p = input.project {
            ignored += p.ignored
            if input.projectTrusted { project = p.settings }
            else {
                let t = p.settings.tighteningOnly(file: p.path, profiles: profiles)
                project = t.settings
                ignored += t.ignored
            }
        }
        let global = input.global?.settings ?? Settings()

        // The profile: the project's (if honoured), else the global default, else untrusted.
        var profile = Sourced(Profiles.defaultName, .builtin("default"))
        if let g = global.profile {
            guard !Profiles.unavailable.contains(g.value) else {
                throw .config(configError(g.source, "profile \(g.value) is not available yet"))
            }
            guard Profiles.settings(g.value, defined: profiles) != nil else {
                throw .config(configError(g.source, "no profile \(g.value.debugDescription) (define it as [profiles.\(g.value)], or use untrusted)"))
            }
            profile = g
        }
        if let p = project.profile, case .file(let path, let key) = p.source {
            if Profiles.unavailable.contains(p.value) {
                ignored.append(Ignored(file: path, key: key, reason: .invalid("profile \(p.value) is not available yet; running with \(profile.value)")))
            } else if Profiles.settings(p.value, defined: profiles) == nil {
                ignored.append(Ignored(file: path, key: key, reason: .invalid("no profile \(p.value.debugDescription) in the global config")))
            } else {
                profile = p
            }
        }
        if let f = flags.profile {
            guard !Profiles.unavailable.contains(f) else { throw .usage("--profile \(f): not available yet") }
            guard Profiles.settings(f, defined: profiles) != nil else {
                let known = ([Profiles.defaultName] + profiles.keys.sorted()).joined(separator: ", ")
                throw .usage("--profile \(f.debugDescription): no such profile (profiles: \(known); define others as [profiles.NAME] in the global config)")
            }
            profile = Sourced(f, .flag("--profile"))
        }
        let profileSettings = Profiles.settings(profile.value, defined: profiles) ?? Settings()
        let paranoid = profile.value == Profiles.paranoid
        if paranoid {
            if let m = flags.mountsRW.first { throw .usage("--mount-rw \(m): refused by the paranoid profile (\(profile.source))") }
            if let p = flags.hostPorts.first { throw .usage("--allow-host-port \(p): refused by the paranoid profile (\(profile.source))") }
            if let p = flags.publish.first { throw .usage("--publish \(p): refused by the paranoid profile (\(profile.source))") }
            if let h = flags.allow.first {
                throw .usage("--allow \(h): the paranoid profile (\(profile.source)) allows only the agent's own API hosts")
            }
        }
        // Lowest to highest precedence, flags apart.
        let layers = [global, profileSettings, project]

        var out = Resolution(options: flags, preset: nil, profile: profile)
        out.ignored = ignored
        var o = flags
        func last<T>(_ pick: (Settings) -> Sourced<T>?) -> Sourced<T>? { layers.reversed().lazy.compactMap(pick).first }

        // The agent: --agent, else the files' `preset`, else COMMAND's basename
        // when a preset or an [agent.NAME] table has that name.
        let tables = Set(layers.flatMap { $0.agents.keys })
        var agent: Sourced<String>?
        if let a = flags.agent {
            guard builtin(a) != nil || tables.contains(a) else {
                throw .usage("unknown agent preset \(a.debugDescription); presets: \(Preset.builtinNames.joined(separator: ", "))")
            }
            agent = Sourced(a, .flag("--agent"))
        } else if let a = last(\.preset) {
            guard builtin(a.value) != nil || tables.contains(a.value) else {
                throw .config(configError(a.source, "unknown agent preset \(a.value.debugDescription); presets: \(Preset.builtinNames.joined(separator: ", "))"))
            }
            agent = a
        } else if let cmd = flags.command.first {
            let name = Paths.basename(cmd)
            if builtin(name) != nil || tables.contains(name) { agent = Sourced(name, .builtin("the basename of COMMAND")) }
        }
        o.agent = agent?.value

        let removedHosts = layers.flatMap(\.removeHosts)
        let removedEnv = layers.flatMap(\.removeEnv)
        func isRemoved(_ h: HostPattern) -> Sourced<HostPattern>? {
            removedHosts.first { r in r.value.name == h.name && r.value.isWildcard == h.isWildcard || (r.value.isWildcard && r.value.matches(h.name)) }
        }
        func envRemoved(_ v: String) -> Sourced<String>? { removedEnv.first { $0.value == v } }

        var lines: [Line] = []
        if let agent { lines.append(Line("preset", agent.value, agent.source)) }
        lines.append(Line("profile", profile.value, profile.source))

        // The preset and its [agent.NAME] tables.
        var agentMounts: [Sourced<String>] = [], agentRW: [Sourced<String>] = []
        if let name = agent?.value {
            var preset = builtin(name) ?? Preset(name: name)
            let presetSource = builtin(name) != nil ? Provenance.preset(name) : .builtin("no shipped preset")
            var hosts: [Sourced<HostPattern>] = preset.hosts.map { Sourced($0, presetSource) }
            var env: [Sourced<String>] = preset.env.map { Sourced($0, presetSource) }
            var args: [Sourced<String>] = preset.args.map { Sourced($0, presetSource) }
            for layer in layers {
                guard let t = layer.agents[name] else { continue }
                env += t.env; args += t.args; agentMounts += t.mounts
                if paranoid {
                    for h in t.hosts { lines.append(Line("dropped host (paranoid)", h.value.description, h.source)) }
                    for m in t.mountsRW { lines.append(Line("dropped mounts_rw (paranoid)", m.value, m.source)) }
                } else { hosts += t.hosts; agentRW += t.mountsRW }
            }
            var keptHosts: [HostPattern] = []
            for h in hosts {
                if let r = isRemoved(h.value) { lines.append(Line("removed host", h.value.description, r.source)); continue }
                if !keptHosts.contains(h.value) { keptHosts.append(h.value); lines.append(Line("allow", h.value.description, h.source)) }
            }
            var keptEnv: [String] = []
            for v in env {
                if let r = envRemoved(v.value) { lines.append(Line("removed env", v.value, r.source)); continue }
                if !keptEnv.contains(v.value) { keptEnv.append(v.value); lines.append(Line("env", v.value, v.source)) }
            }
            preset.hosts = keptHosts
            preset.env = keptEnv
            preset.endpoints.removeAll { envRemoved($0) != nil }
            preset.args = args.map(\.value)
            for a in args { lines.append(Line("args", a.value, a.source)) }
            out.preset = preset
        }

        // Lists: each layer's, less what was removed; the flags' always.
        var allow: [HostPattern] = []
        for layer in layers {
            for h in layer.allow {
                if paranoid { lines.append(Line("dropped host (paranoid)", h.value.description, h.source)); continue }
                if let r = isRemoved(h.value) { lines.append(Line("removed host", h.value.description, r.source)); continue }
                allow.append(h.value)
                lines.append(Line(h.value.allowsPrivateUpstream ? "allow_private" : "allow", h.value.description, h.source))
            }
        }
        for h in flags.allow {
            lines.append(Line(h.allowsPrivateUpstream ? "allow_private" : "allow", h.description,
                              .flag(h.allowsPrivateUpstream ? "--allow-private" : "--allow")))
        }
        // Hosts saved by `agentpen allow --save`, for this agent and this project.
        if let saved = input.saved {
            var savedHosts: [(HostPattern, Provenance)] = []
            if let name = agent?.value {
                for h in saved.agents[name] ?? [] { savedHosts.append((h, .file(path: saved.path, key: "agent.\(name).hosts"))) }
            }
            if let p = input.projectPath {
                for h in saved.projects[p] ?? [] { savedHosts.append((h, .file(path: saved.path, key: "project.\(p).hosts"))) }
            }
            for (h, source) in savedHosts {
                if paranoid { lines.append(Line("dropped host (paranoid)", h.description, source)); continue }
                if let r = isRemoved(h) { lines.append(Line("removed host", h.description, r.source)); continue }
                allow.append(h)
                lines.append(Line("allow", h.description, source))
            }
        }
        o.allow = allow + flags.allow

        // Asking: the global file's `ask` and `ask_timeout` (a project's are ignored).
        if let a = input.global?.ask {
            if a.value {
                if !flags.audit { o.ask = true }
                lines.append(Line("ask", "true", a.source))
            } else {
                if flags.ask { throw .usage("--ask: asking is turned off by \(a.source) = false") }
                o.ask = false
                lines.append(Line("ask", "false (off)", a.source))
            }
        } else if flags.ask { lines.append(Line("ask", "true", .flag("--ask"))) }
        if let t = input.global?.askTimeout {
            o.askTimeout = t.value
            lines.append(Line("ask_timeout", String(t.value), t.source))
        }
        if flags.audit { lines.append(Line("audit", "true", .flag("--audit"))) }

        // Ports on the host's loopback, each way: lists, dropped by paranoid.
        var hostPorts: [UInt16] = [], publish: [UInt16] = []
        for layer in layers {
            for p in layer.hostPorts {
                if paranoid { lines.append(Line("dropped allow_host_ports (paranoid)", String(p.value), p.source)); continue }
                if !hostPorts.contains(p.value) { hostPorts.append(p.value) }; lines.append(Line("allow_host_ports", String(p.value), p.source))
            }
            for p in layer.publish {
                if paranoid { lines.append(Line("dropped publish (paranoid)", String(p.value), p.source)); continue }
                if !publish.contains(p.value) { publish.append(p.value) }; lines.append(Line("publish", String(p.value), p.source))
            }
        }
        for p in flags.hostPorts { lines.append(Line("allow_host_ports", String(p), .flag("--allow-host-port"))) }
        for p in flags.publish { lines.append(Line("publish", String(p), .flag("--publish"))) }
        o.hostPorts = hostPorts + flags.hostPorts.filter { !hostPorts.contains($0) }
        o.publish = publish + flags.publish.filter { !publish.contains($0) }
        if let h = flags.hop { lines.append(Line("hop", "\(h)", .flag("--hop"))) }
        else if let v = last(\.hop) { o.hop = v.value; lines.append(Line("hop", "\(v.value)", v.source)) }

        var env: [String] = []
        for layer in layers {
            for v in layer.env {
                if let r = envRemoved(v.value) { lines.append(Line("removed env", v.value, r.source)); continue }
                env.append(v.value); lines.append(Line("env", v.value, v.source))
            }
        }
        for v in flags.env { lines.append(Line("env", v, .flag("--env"))) }
        o.env = env + flags.env

        let layerMounts = layers.flatMap(\.mounts) + agentMounts
        let layerRW = paranoid ? [] : layers.flatMap(\.mountsRW) + agentRW
        if paranoid { for m in layers.flatMap(\.mountsRW) { lines.append(Line("dropped mounts_rw (paranoid)", m.value, m.source)) } }
        o.paranoid = paranoid
        o.mounts = layerMounts.map(\.value) + flags.mounts
        o.mountsRW = layerRW.map(\.value) + flags.mountsRW
        for m in layerMounts { lines.append(Line("mounts", m.value, m.source)) }
        for m in flags.mounts { lines.append(Line("mounts", m, .flag("--mount"))) }
        for m in layerRW { lines.append(Line("mounts_rw", m.value, m.source)) }
        for m in flags.mountsRW { lines.append(Line("mounts_rw", m, .flag("--mount-rw"))) }

        out.hide = layers.flatMap(\.hide)
        o.hide = flags.hide + out.hide.map(\.value)
        for h in out.hide { lines.append(Line("hide", h.value, h.source)) }

        // Scalars: the flag, else the highest layer that says.
        if flags.readOnlyConfig { lines.append(Line("ro_config", "true", .flag("--ro-config"))) }
        else if let v = last(\.readOnlyConfig) { o.readOnlyConfig = v.value; lines.append(Line("ro_config", String(v.value), v.source)) }
        if flags.allowParentGit { lines.append(Line("allow_parent_git", "true", .flag("--allow-parent-git"))) }
        else if let v = last(\.allowParentGit) { o.allowParentGit = v.value; lines.append(Line("allow_parent_git", String(v.value), v.source)) }
        if let l = flags.logPath { lines.append(Line("log", l, .flag("--log"))) }
        else if let v = last(\.log) { o.logPath = v.value; lines.append(Line("log", v.value, v.source)) }
        if let t = flags.tmpfsSize { lines.append(Line("tmpfs_size", describe(t), .flag("--tmpfs-size"))) }
        else if let v = last(\.tmpfsSize) { o.tmpfsSize = v.value; lines.append(Line("tmpfs_size", describe(v.value), v.source)) }

        // Limits: a layer's explicit limit beats its own no_cgroup, as on the command line.
        func limit<V>(_ flag: CgroupPlan.Limit<V>, _ name: String, _ flagName: String, _ pick: (Settings) -> Sourced<CgroupPlan.Limit<V>>?,
                      _ show: (V) -> String) -> CgroupPlan.Limit<V> {
            func text(_ l: CgroupPlan.Limit<V>) -> String {
                switch l { case .default: "default"; case .none: "none"; case .set(let v): show(v) }
            }
            if flag != .default { lines.append(Line(name, text(flag), .flag(flagName))); return flag }
            for layer in layers.reversed() {
                if let v = pick(layer) { lines.append(Line(name, text(v.value), v.source)); return v.value }
                if let n = layer.noCgroup, n.value { lines.append(Line(name, "none", n.source)); return .none }
            }
            return .default
        }
        o.cgroupLimits.memory = limit(flags.cgroupLimits.memory, "memory_max", "--memory-max", \.memoryMax, describe)
        o.cgroupLimits.milliCPUs = limit(flags.cgroupLimits.milliCPUs, "cpus", "--cpus", \.cpus) { m in
            m % 1000 == 0 ? String(m / 1000) : String(Double(m) / 1000)
        }
        o.cgroupLimits.tasks = limit(flags.cgroupLimits.tasks, "tasks_max", "--tasks-max", \.tasksMax) { String($0) }

        // The upstream proxy: the global file's alone (ConfigFile ignores a project's).
        if let p = input.global?.proxy {
            o.upstreamProxy = p.value
            lines.append(Line("proxy.url", p.value.redactedURL, p.source))
            if !p.value.noProxy.isEmpty {
                lines.append(Line("proxy.no_proxy", p.value.noProxy.joined(separator: ", "),
                                  .file(path: input.global?.path ?? "", key: "proxy.no_proxy")))
            }
            lines.append(Line("proxy.vetting", UpstreamProxy.vettingNote, p.source))
        }

        out.options = o
        out.lines = lines
        return out
    }

    static func describe(_ r: TmpfsBudget.Request) -> String {
        switch r {
        case .bytes(let b): TmpfsBudget.describe(b)
        case .percentOfMemory(let p): "\(p)%"
        }
    }

    static func configError(_ source: Provenance, _ message: String) -> ConfigError {
        if case .file(let path, let key) = source { return ConfigError(file: path, key: key, message: message) }
        return ConfigError(file: source.description, message: message)
    }
}
