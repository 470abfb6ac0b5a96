/// Empty decoys at the well-known secret paths of the sandbox's private home
/// (issue 13, "secrets"): the home is a tmpfs, so a read there cannot be seen
/// from outside; an empty file of the session's, reached through a link at the
/// path into the read-only bind of the session's decoy directory, can (agentpen
/// watches it with inotify for the whole run). Each open is one
/// `secret-read` event with the path as the agent saw it.
///
/// The decoys are a pure function of the plan: never at a path that a later
/// mount of the plan shows, lies in, or lies under (a `--mount`, a preset's
/// config dir, the config file's `mounts`, the project, a throwaway copy, an
/// install tree), so a decoy never hides what the user or agentpen mounted.
public enum SecretDecoys {
    /// Paths relative to the home: private keys and the files tools keep
    /// logins and tokens in. Files only (a decoy is a link to a file), and only
    /// files whose absence a tool does not need (an empty one reads as "no
    /// login"). Some tools read some of these on every run (npm ~/.npmrc,
    /// Python's requests ~/.netrc): an event is a signal to look at, not proof.
    /// The decoys share one read-only bind; each is one more link and one more
    /// inotify watch: the list stays short, the most used stores only.
    public static let relativePaths: [String] = [
        ".ssh/id_rsa", ".ssh/id_ed25519", ".ssh/id_ecdsa",
        ".aws/credentials", ".config/gcloud/application_default_credentials.json",
        ".netrc", ".git-credentials", ".config/gh/hosts.yml",
        ".docker/config.json", ".kube/config", ".npmrc", ".pypirc",
        ".cargo/credentials.toml", ".vault-token", ".gnupg/secring.gpg",
    ]

    public struct Decoy: Sendable, Equatable {
        /// Where the sandbox sees it (the home's path; the home is the same path inside).
        public var path: String
        /// The file's name in the session's decoy directory (one component).
        public var fileName: String
    }

    /// The decoys for a plan whose private home is `home`: one per well-known
    /// path that no mount after the home's tmpfs touches. None when the plan
    /// has no private home.
    public static func plan(_ bwrap: [BwrapArgument], home: String) -> [Decoy] {
        let home = Paths.normalize(home)
        guard let start = bwrap.firstIndex(where: {
            if case .tmpfs(let p, _, _) = $0 { return Paths.normalize(p) == home }
            return false
        }) else { return [] }
        // Mounts hide what lies under them; a created directory hides nothing,
        // but a decoy file cannot stand where it or anything under it is.
        var mounted: [String] = [], made: [String] = []
        for a in bwrap[(start + 1)...] {
            switch a {
            case .bind(_, let destination, _): mounted.append(destination)
            case .bindOpened(let p, _), .data(let p, _), .tmpfs(let p, _, _), .remountReadOnly(let p),
                 .proc(let p), .dev(let p), .symlink(_, let p): mounted.append(p)
            case .dir(let p, _): made.append(p)
            default: continue
            }
        }
        var out: [Decoy] = []
        for (i, rel) in relativePaths.enumerated() {
            let path = Paths.join(home, rel)
            if mounted.contains(where: { Paths.isWithin(path, $0) || Paths.isWithin($0, path) }) { continue }
            if made.contains(where: { Paths.isWithin($0, path) }) { continue }
            out.append(Decoy(path: path, fileName: "decoy-\(i)"))
        }
        return out
    }

    /// Where the session's decoy directory is bound inside (read-only): the
    /// decoy paths are links to its files.
    public static let insideDir = "/run/agentpen/decoys"

    /// What the exit summary, `watch` and the refusals file say of a read.
    public static let reason = "opened a well-known secret path: an empty decoy of agentpen's (the real file is not in the sandbox)"
}

extension SandboxPlan {
    /// Binds the decoy directory `hostDir` (it holds the decoy files alone)
    /// read-only once at `SecretDecoys.insideDir`, and links each decoy's path
    /// to its file there. One bind instead of one per decoy: bubblewrap pays a
    /// mount, a remount and a read of the whole mountinfo per bind (~0.25 ms each
    /// here, more the more mounts there are). The file is as before (empty,
    /// read-only, the host's inode agentpen watches: an open through the link or
    /// through its target is one event for the path); the link itself is in the
    /// sandbox's own home, like everything else there.
    public mutating func addSecretDecoys(_ decoys: [SecretDecoys.Decoy], hostDir: String) {
        guard !decoys.isEmpty else { return }
        bwrap.append(.bind(source: hostDir, destination: SecretDecoys.insideDir, readOnly: true))
        for d in decoys {
            bwrap.append(.symlink(target: SecretDecoys.insideDir + "/" + d.fileName, path: d.path))
        }
        notes.append("\(decoys.count) secret paths in the home are empty read-only decoys, each open reported (secret-read)")
    }
}
