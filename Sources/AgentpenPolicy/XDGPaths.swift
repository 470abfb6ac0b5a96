/// Where agentpen keeps its files on the host, by the XDG base directory rules.
/// One place for the rule, so sessions (`…/agentpen/sessions`), the run registry
/// and trust files (`…/agentpen/trust`) agree on it. A relative value is
/// ignored, as the specification says.
public enum XDGPaths {
    /// `$XDG_STATE_HOME`, else `~/.local/state`.
    public static func stateHome(env: [String: String], home: String) -> String {
        if let s = env["XDG_STATE_HOME"], s.hasPrefix("/") { return Paths.normalize(s) }
        return Paths.join(Paths.normalize(home), ".local/state")
    }

    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    public static func configHome(env: [String: String], home: String) -> String {
        if let s = env["XDG_CONFIG_HOME"], s.hasPrefix("/") { return Paths.normalize(s) }
        return Paths.join(Paths.normalize(home), ".config")
    }

    /// agentpen's own state directory: `STATE/agentpen`.
    public static func agentpenState(env: [String: String], home: String) -> String {
        stateHome(env: env, home: home) + "/agentpen"
    }

    /// The sessions directory: `STATE/agentpen/sessions`.
    public static func sessions(env: [String: String], home: String) -> String {
        agentpenState(env: env, home: home) + "/sessions"
    }
}
