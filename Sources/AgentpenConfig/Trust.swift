import AgentpenPolicy

/// Trust in a project file: a record under `$XDG_STATE_HOME/agentpen/trust/`,
/// named by the hash of the project's real path, holding that path and the
/// hash of the file's exact bytes. Any edit (the agent's, a `git pull`'s)
/// changes the hash and the file is untrusted again until re-trusted.
public enum Trust {
    public static func recordName(project: String) -> String { SHA256.hex(Array(project.utf8)) }

    public static func record(project: String, sha256: String) -> String {
        "agentpen trust record 1\nproject \(project)\nsha256 \(sha256)\n"
    }

    /// Whether `stored` (the record's bytes, nil when there is none) trusts this file.
    public static func isTrusted(stored: [UInt8]?, project: String, sha256: String) -> Bool {
        guard let stored else { return false }
        return stored == Array(record(project: project, sha256: sha256).utf8)
    }
}
