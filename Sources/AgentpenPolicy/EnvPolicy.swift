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
                             extra: [String], set: [(name: String, value: String)]) throws(Refused) -> [(String, String)] {
        var out: [String: String] = [:]
        for name in passed { if let v = caller[name] { out[name] = v } }
        for (k, v) in caller where k.hasPrefix("LC_") && isValidName(k) { out[k] = v }
        for name in extra {
            if forbidden.contains(name) { throw Refused(name: name) }
            if let v = caller[name] { out[name] = v }
        }
        for (k, v) in set {
            if forbidden.contains(k) { throw Refused(name: k) }
            out[k] = expandTilde(v, home: home)
        }
        out["PATH"] = path
        out["HOME"] = home
        if out["SHELL"] == nil { out["SHELL"] = "/bin/sh" }
        return out.sorted { $0.key < $1.key }
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
