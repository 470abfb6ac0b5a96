/// One variable of an environment; an environment is an ordered list of them.
public struct EnvironmentVariable: Sendable, Equatable, Hashable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }

    /// `NAME=VALUE`, as execve and the environment memfd take it.
    public var entry: String { name + "=" + value }

    /// From `NAME=VALUE`; nil without `=`.
    public init?(entry: Substring) {
        guard let eq = entry.firstIndex(of: "=") else { return nil }
        self.init(String(entry[..<eq]), String(entry[entry.index(after: eq)...]))
    }
}

/// The agent's environment starts empty; these rules say what may enter.
public enum EnvPolicy {
    /// Passed through from the caller when set.
    public static let passed = ["HOME", "USER", "LOGNAME", "SHELL", "TERM", "COLORTERM", "LANG", "TZ"]
    /// Never passed, even when a preset or `--env` names them: each is a way out.
    public static let forbidden: Set<String> = [
        "SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "DOCKER_HOST", "XDG_RUNTIME_DIR",
        "SSH_AGENT_PID", "GPG_AGENT_INFO", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY",
        "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV", "PROMPT_COMMAND",
    ]

    /// Name a CA bundle (corporate TLS inspection): passed through when set, and the
    /// file they name is made visible read-only (unless it lies in a credential store).
    public static let caBundles = ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"]

    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
        }
    }

    public struct Refused: Error, Equatable, CustomStringConvertible {
        public var name: String
        public var description: String {
            "\(name) is never passed into the sandbox: it leads to a service outside it"
        }
    }

    /// Builds the agent's environment.
    /// - Parameters:
    ///   - caller: the caller's environment.
    ///   - path: the PATH to use inside (already filtered to entries that exist inside).
    ///   - home: the home directory path inside (same as outside).
    ///   - extra: names from the preset and `--env`.
    ///   - set: values the preset sets (with `~` expanded).
    public static func build(caller: [String: String], path: String, home: String,
                             extra: [String], set: [EnvironmentVariable]) throws(Refused) -> [EnvironmentVariable] {
        var out: [String: String] = [:]
        for name in passed { if let v = caller[name] { out[name] = v } }
        for (k, v) in caller where k.hasPrefix("LC_") && isValidName(k) { out[k] = v }
        for name in extra {
            if forbidden.contains(name) { throw Refused(name: name) }
            if let v = caller[name] { out[name] = v }
        }
        for v in set {
            if forbidden.contains(v.name) { throw Refused(name: v.name) }
            out[v.name] = expandTilde(v.value, home: home)
        }
        out["PATH"] = path
        out["HOME"] = home
        if out["SHELL"] == nil { out["SHELL"] = "/bin/sh" }
        return out.sorted { $0.key < $1.key }.map { EnvironmentVariable($0.key, $0.value) }
    }

    /// The agent's environment in the sandbox: `build`'s, with a PATH of the
    /// caller's entries that exist inside (`visible`, or holding a link of the
    /// agent's install tree), USER and LOGNAME, and SHELL the login shell
    /// unless the caller set one.
    static func agent(facts: HostFacts, callerPath: String, home: String, shell: String, visible: Visibility,
                      installLinks: [InstallTree.Symlink], extra: [String], set: [EnvironmentVariable],
                      fs: any FileSystemView) throws(PlanError) -> [EnvironmentVariable] {
        let insidePath = callerPath.split(separator: ":").map(String.init).filter { entry in
            guard entry.hasPrefix("/"), let real = Paths.resolve(entry, in: fs), fs.kind(real) == .directory else { return false }
            return visible.contains(entry) || visible.contains(real) || installLinks.contains { Paths.parent($0.path) == entry }
        }
        var seen = Set<String>()
        let pathValue = insidePath.filter { seen.insert($0).inserted }.joined(separator: ":")
        var env: [EnvironmentVariable]
        do {
            env = try build(caller: facts.callerEnv, path: pathValue.isEmpty ? "/usr/local/bin:/usr/bin:/bin" : pathValue,
                            home: home, extra: extra, set: set)
        } catch { throw PlanError(.usage, error.description) }
        if !env.contains(where: { $0.name == "USER" }) { env.append(EnvironmentVariable("USER", facts.user)) }
        if !env.contains(where: { $0.name == "LOGNAME" }) { env.append(EnvironmentVariable("LOGNAME", facts.user)) }
        if !env.contains(where: { $0.name == "SHELL" }) || facts.callerEnv["SHELL"] == nil {
            env.removeAll { $0.name == "SHELL" }
            env.append(EnvironmentVariable("SHELL", shell))
        }
        return env
    }
}

extension EnvPolicy {
    /// Names that hold credentials by convention: their values are never printed.
    public static func isSecretLooking(_ name: String) -> Bool {
        let n = name.uppercased()
        return ["KEY", "TOKEN", "SECRET", "PASSWORD"].contains { n.contains($0) }
    }

    /// A variable's value as `--dry-run` shows it.
    public static func displayValue(name: String, value: String) -> String {
        isSecretLooking(name) ? "<redacted, \(value.utf8.count) bytes>" : value
    }
}
