import AgentpenPolicy
import TOMLKit

extension ConfigFile {
    /// The largest file read: the project file is hostile input, and no honest
    /// config needs more. The kernel edge reads at most this many bytes + 1.
    public static let projectSizeLimit = 64 << 10
    public static let globalSizeLimit = 1 << 20

    /// The keys of a settings table (the top level and each `[profiles.NAME]`).
    static let settingsKeys = [
        "preset", "profile", "env", "mounts", "mounts_rw", "allow", "allow_private", "allow_host_ports", "publish", "hop",
        "allow_parent_git",
        "ro_config", "log", "tmpfs_size", "memory_max", "cpus", "tasks_max", "no_cgroup",
        "remove_hosts", "remove_env", "hide", "agent",
    ]
    /// Keys only the top level of the global file may hold.
    static let globalOnlyKeys = ["context_roots", "profiles", "proxy", "ask", "ask_timeout"]
    static let agentKeys = ["hosts", "env", "mounts", "mounts_rw", "args"]
    static let proxyKeys = ["url", "no_proxy"]

    /// Parses a config file's exact bytes. In the global file every problem
    /// throws (the run stops, exit 2, naming the file and key); in a project
    /// file a problem leaves that key out (`ignored`) and never throws: a
    /// repository must not be able to stop agentpen from starting.
    public static func parse(_ bytes: [UInt8], path: String, kind: ConfigKind) throws(ConfigError) -> ConfigFile {
        var file = ConfigFile(path: path, kind: kind)
        file.sha256 = SHA256.hex(bytes)
        var reader = Reader(file: file)
        do {
            try reader.read(bytes)
        } catch {
            if kind == .global { throw error }
            reader.file.ignored.append(Ignored(file: path, key: "(the whole file)", reason: .invalid(error.lineAndMessage)))
            reader.file.settings = Settings()
            reader.file.profiles = [:]
            reader.file.contextRoots = []
        }
        return reader.file
    }
}

extension ConfigError {
    var lineAndMessage: String {
        var s = ""
        if let line { s += "line \(line): " }
        if let key { s += "\(key): " }
        return s + message
    }
}

/// Walks the TOML tree into `Settings`, one key at a time.
struct Reader {
    var file: ConfigFile
    var path: String { file.path }

    /// A problem with one key: fatal in the global file, that key left out in a project file.
    mutating func problem(_ key: String, _ message: String) throws(ConfigError) {
        if file.kind == .global { throw ConfigError(file: path, key: key, message: message) }
        file.ignored.append(Ignored(file: path, key: key, reason: .invalid(message)))
    }

    mutating func read(_ bytes: [UInt8]) throws(ConfigError) {
        if bytes.contains(0) { throw ConfigError(file: path, message: "contains a NUL byte; a config file is UTF-8 text") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(file: path, message: "is not valid UTF-8")
        }
        let table: TOMLTable
        do { table = try TOMLTable(string: text) }
        catch let e as TOMLParseError {
            throw ConfigError(file: path, line: e.source.begin.line, message: e.description)
        } catch {
            throw ConfigError(file: path, message: "cannot be parsed as TOML")
        }
        for (key, value) in table {
            switch key {
            case "context_roots":
                if file.kind == .project { file.ignored.append(Ignored(file: path, key: key, reason: .globalOnly)); continue }
                for s in try strings(value, key) {
                    guard s.hasPrefix("/") || s.hasPrefix("~/") else { try problem(key, "\(s.debugDescription): an absolute path or ~/…"); continue }
                    file.contextRoots.append(Sourced(s, .file(path: path, key: key)))
                }
            case "profiles":
                if file.kind == .project { file.ignored.append(Ignored(file: path, key: key, reason: .globalOnly)); continue }
                guard let profiles = value.table else { try problem(key, "expected tables [profiles.NAME], got \(value.type)"); continue }
                for (name, body) in profiles {
                    let k = "profiles.\(name)"
                    guard Profiles.isValidName(name) else { try problem(k, "a profile name is letters, digits, - and _"); continue }
                    guard !Profiles.builtinNames.contains(name) else { try problem(k, "\(name) is a built-in profile; choose another name"); continue }
                    guard let t = body.table else { try problem(k, "expected a table, got \(body.type)"); continue }
                    var s = Settings()
                    for (sub, v) in t {
                        guard sub != "profile" else { try problem("\(k).profile", "a profile cannot select another profile"); continue }
                        try setting(sub, v, prefix: k + ".", into: &s)
                    }
                    file.profiles[name] = s
                }
            case "ask":
                if file.kind == .project { file.ignored.append(Ignored(file: path, key: key, reason: .globalOnly)); continue }
                guard let v = value.bool else { try problem(key, "expected true or false, got \(value.type)"); continue }
                file.ask = Sourced(v, .file(path: path, key: key))
            case "ask_timeout":
                if file.kind == .project { file.ignored.append(Ignored(file: path, key: key, reason: .globalOnly)); continue }
                guard let v = value.int, (1...3600).contains(v) else {
                    try problem(key, "expected a number of seconds from 1 to 3600"); continue
                }
                file.askTimeout = Sourced(v, .file(path: path, key: key))
            case "proxy":
                if file.kind == .project { file.ignored.append(Ignored(file: path, key: key, reason: .globalOnly)); continue }
                try proxy(value)
            default:
                var settings = file.settings
                try setting(key, value, prefix: "", into: &settings)
                file.settings = settings
            }
        }
    }

    /// `[proxy]`: `url` (required) and `no_proxy`. A message never quotes the
    /// URL: it may hold a password.
    mutating func proxy(_ value: TOMLValueConvertible) throws(ConfigError) {
        guard let t = value.table else { return try problem("proxy", "expected a table [proxy] with url = \"http://HOST:PORT\", got \(value.type)") }
        var url: String?
        var noProxy: [String] = []
        for (sub, v) in t {
            switch sub {
            case "url":
                guard let s = v.string else { return try problem("proxy.url", "expected a string (http://[USER:PASSWORD@]HOST:PORT), got \(v.type)") }
                url = s
            case "no_proxy":
                noProxy = try strings(v, "proxy.no_proxy")
            default:
                return try problem("proxy.\(sub)", "unknown key (known: \(ConfigFile.proxyKeys.joined(separator: ", ")))")
            }
        }
        guard let url else { return try problem("proxy.url", "missing: [proxy] needs url = \"http://HOST:PORT\"") }
        do { file.proxy = Sourced(try UpstreamProxy(url: url, noProxy: noProxy), .file(path: path, key: "proxy.url")) }
        catch {
            if case .badNoProxy = error { return try problem("proxy.no_proxy", error.description) }
            try problem("proxy.url", error.description)
        }
    }

    mutating func setting(_ key: String, _ value: TOMLValueConvertible, prefix: String, into s: inout Settings) throws(ConfigError) {
        let full = prefix + key
        let src = Provenance.file(path: path, key: full)
        switch key {
        case "preset":
            guard let v = value.string else { return try problem(full, "expected a string (a preset name), got \(value.type)") }
            s.preset = Sourced(v, src)
        case "profile":
            guard let v = value.string else { return try problem(full, "expected a string (a profile name), got \(value.type)") }
            s.profile = Sourced(v, src)
        case "env", "remove_env":
            for v in try strings(value, full) {
                guard EnvPolicy.isValidName(v) else { try problem(full, "bad variable name \(v.debugDescription)"); continue }
                if key == "env" { s.env.append(Sourced(v, src)) } else { s.removeEnv.append(Sourced(v, src)) }
            }
        case "mounts", "mounts_rw":
            for v in try strings(value, full) {
                guard let p = try hostPath(v, full) else { continue }
                if key == "mounts" { s.mounts.append(Sourced(p, src)) } else { s.mountsRW.append(Sourced(p, src)) }
            }
        case "allow", "allow_private", "remove_hosts":
            for v in try strings(value, full) {
                let h: HostPattern
                do { h = try HostPattern(v, allowsPrivateUpstream: key == "allow_private") }
                catch { try problem(full, "refused host \(error.description)"); continue }
                if key == "remove_hosts" { s.removeHosts.append(Sourced(h, src)) } else { s.allow.append(Sourced(h, src)) }
            }
        case "allow_host_ports", "publish":
            guard let array = value.array else { return try problem(full, "expected a list of port numbers, got \(value.type)") }
            for item in array {
                guard let n = item.int, n > 0, n <= 65535 else { try problem(full, "a port number from 1 to 65535"); continue }
                if key == "publish" { s.publish.append(Sourced(UInt16(n), src)) } else { s.hostPorts.append(Sourced(UInt16(n), src)) }
            }
        case "hop":
            guard let v = value.string, let h = NetworkPlan.Hop(option: v) else { return try problem(full, "expected \"direct\" or \"pasta\"") }
            s.hop = Sourced(h, src)
        case "allow_parent_git", "ro_config", "no_cgroup":
            guard let v = value.bool else { return try problem(full, "expected true or false, got \(value.type)") }
            switch key {
            case "allow_parent_git": s.allowParentGit = Sourced(v, src)
            case "ro_config": s.readOnlyConfig = Sourced(v, src)
            default: s.noCgroup = Sourced(v, src)
            }
        case "log":
            guard let v = value.string else { return try problem(full, "expected a string (a file), got \(value.type)") }
            guard let p = try hostPath(v, full) else { return }
            s.log = Sourced(p, src)
        case "tmpfs_size":
            guard let v = value.string else { return try problem(full, "expected a string such as \"4G\" or \"25%\", got \(value.type)") }
            do { s.tmpfsSize = Sourced(try TmpfsBudget.parse(v, flag: full), src) } catch { try problem(full, error.message) }
        case "memory_max":
            guard let v = value.string else { return try problem(full, "expected a string such as \"8G\", \"50%\" or \"none\", got \(value.type)") }
            if v == "none" { s.memoryMax = Sourced(.none, src); return }
            do { s.memoryMax = Sourced(.set(try TmpfsBudget.parse(v, flag: full)), src) } catch { try problem(full, error.message) }
        case "cpus":
            let text: String
            if let v = value.string { text = v }
            else if let v = value.int { text = String(v) }
            else if let v = value.double { text = String(v) }
            else { return try problem(full, "expected a number of CPUs such as 2 or 1.5, or \"none\", got \(value.type)") }
            if text == "none" { s.cpus = Sourced(.none, src) }
            else if let m = CgroupPlan.parseCPUs(text) { s.cpus = Sourced(.set(m), src) }
            else { try problem(full, "\(text.debugDescription): a number of CPUs such as 2 or 1.5, or \"none\"") }
        case "tasks_max":
            if value.string == "none" { s.tasksMax = Sourced(.none, src); return }
            guard let n = value.int, n > 0, n < 1 << 22 else {
                return try problem(full, "expected a number of processes and threads (1 to 4194303), or \"none\"")
            }
            s.tasksMax = Sourced(.set(UInt64(n)), src)
        case "hide":
            let list = try strings(value, full)
            guard list.count <= 64 else { return try problem(full, "at most 64 patterns") }
            for v in list {
                do { s.hide.append(Sourced(try HideGlob.validate(v), src)) } catch { try problem(full, error.message) }
            }
        case "agent":
            guard let agents = value.table else { return try problem(full, "expected tables [agent.NAME], got \(value.type)") }
            for (name, body) in agents {
                let k = "\(full).\(name)"
                guard Profiles.isValidName(name) else { try problem(k, "an agent name is letters, digits, - and _"); continue }
                guard let t = body.table else { try problem(k, "expected a table, got \(body.type)"); continue }
                var a = s.agents[name] ?? AgentSettings()
                for (sub, v) in t { try agentSetting(sub, v, key: "\(k).\(sub)", into: &a) }
                s.agents[name] = a
            }
        default:
            if file.kind == .project { return try problem(full, "unknown key (agentpen init writes a file naming every key)") }
            let known = (prefix.isEmpty ? ConfigFile.settingsKeys + ConfigFile.globalOnlyKeys : ConfigFile.settingsKeys)
            try problem(full, "unknown key (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    mutating func agentSetting(_ sub: String, _ value: TOMLValueConvertible, key: String, into a: inout AgentSettings) throws(ConfigError) {
        let src = Provenance.file(path: path, key: key)
        switch sub {
        case "hosts":
            for v in try strings(value, key) {
                do { a.hosts.append(Sourced(try HostPattern(v), src)) } catch { try problem(key, "refused host \(error.description)") }
            }
        case "env":
            for v in try strings(value, key) {
                guard EnvPolicy.isValidName(v) else { try problem(key, "bad variable name \(v.debugDescription)"); continue }
                a.env.append(Sourced(v, src))
            }
        case "mounts", "mounts_rw":
            for v in try strings(value, key) {
                guard let p = try hostPath(v, key) else { continue }
                if sub == "mounts" { a.mounts.append(Sourced(p, src)) } else { a.mountsRW.append(Sourced(p, src)) }
            }
        case "args":
            for v in try strings(value, key) { a.args.append(Sourced(v, src)) }
        default:
            try problem(key, "unknown key (known: \(ConfigFile.agentKeys.joined(separator: ", ")))")
        }
    }

    /// A list of strings, or the problem (then an empty list).
    mutating func strings(_ value: TOMLValueConvertible, _ key: String) throws(ConfigError) -> [String] {
        guard let array = value.array else {
            try problem(key, "expected a list of strings, got \(value.type)")
            return []
        }
        var out: [String] = []
        for item in array {
            guard let s = item.string else {
                try problem(key, "expected a list of strings, got a \(item.type) in it")
                return []
            }
            out.append(s)
        }
        return out
    }

    /// A host path in a config file: absolute or `~/…` (never relative: to what?), no `..`.
    mutating func hostPath(_ v: String, _ key: String) throws(ConfigError) -> String? {
        guard v.hasPrefix("/") || v.hasPrefix("~/") || v == "~" else {
            try problem(key, "\(v.debugDescription): an absolute path or ~/…")
            return nil
        }
        guard !v.split(separator: "/").contains("..") else {
            try problem(key, "\(v.debugDescription): '..' is not allowed")
            return nil
        }
        return v
    }
}
