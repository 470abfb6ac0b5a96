/// Where agentpen keeps its own files, from the XDG variables (absolute
/// values only, as the XDG spec says) or their defaults under the home.
public struct Locations: Sendable, Equatable {
    /// `$XDG_CONFIG_HOME/agentpen`: config.toml.
    public var configDir: String
    /// `$XDG_STATE_HOME/agentpen`: trust records (`trust/`) and, without a
    /// private XDG_RUNTIME_DIR, the run registry (`runs/`).
    public var stateDir: String
    /// Every directory of agentpen's own that no mount may expose: the above,
    /// their defaults under the home (a variable set by the project's direnv
    /// must not move them out of the check), and `$XDG_RUNTIME_DIR/agentpen`.
    public var protected: [String]

    public var globalFile: String { configDir + "/config.toml" }
    /// Hosts saved by `agentpen allow --save`: agentpen's, beside the user's file.
    public var allowedFile: String { configDir + "/allowed.toml" }
    /// The project's own file, at its root.
    public static let projectFileName = ".agentpen.toml"
    public var trustDir: String { stateDir + "/trust" }

    public static func make(env: [String: String], home: String) -> Locations {
        func xdg(_ name: String, _ fallback: String) -> String {
            if let v = env[name], v.hasPrefix("/") { return Paths.normalize(v) }
            return Paths.normalize(home + "/" + fallback)
        }
        let config = xdg("XDG_CONFIG_HOME", ".config") + "/agentpen"
        let state = xdg("XDG_STATE_HOME", ".local/state") + "/agentpen"
        var protected = [config, state, Paths.normalize(home + "/.config/agentpen"), Paths.normalize(home + "/.local/state/agentpen")]
        if let r = env["XDG_RUNTIME_DIR"], r.hasPrefix("/") { protected.append(Paths.normalize(r) + "/agentpen") }
        var seen = Set<String>()
        return Locations(configDir: config, stateDir: state, protected: protected.filter { seen.insert($0).inserted })
    }

    /// The first of agentpen's own directories that a mount of `path` would
    /// show inside the sandbox (it lies in one, or one lies in it).
    public func exposed(by path: String) -> String? {
        protected.first { Paths.isWithin(path, $0) || Paths.isWithin($0, path) }
    }
}

