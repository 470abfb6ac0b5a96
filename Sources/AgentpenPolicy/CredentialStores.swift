/// Where credentials live in a home directory. A heuristic bind (an install
/// tree, anything agentpen derives rather than the user names) must never
/// contain one of these, nor lie inside one.
public enum CredentialStores {
    /// Paths relative to the home: keys, tokens, password stores, cloud and
    /// registry logins, browser profiles (cookies and saved passwords).
    public static let relativePaths: [String] = [
        ".ssh", ".gnupg", ".aws", ".azure", ".config/gcloud", ".oci", ".config/doctl", ".config/hcloud",
        ".kube", ".docker", ".config/containers/auth.json", ".terraform.d/credentials.tfrc.json",
        ".config/gh", ".config/hub", ".config/glab-cli", ".git-credentials", ".config/git/credentials",
        ".netrc", ".npmrc", ".yarnrc", ".yarnrc.yml", ".pypirc", ".gem/credentials", ".cargo/credentials",
        ".cargo/credentials.toml", ".m2/settings.xml", ".gradle/gradle.properties", ".vault-token",
        ".s3cfg", ".boto", ".config/rclone", ".config/op", ".password-store", ".local/share/gopass",
        ".local/share/keyrings", ".local/share/kwalletd", ".pki", ".mozilla", ".config/google-chrome",
        ".config/chromium", ".config/BraveSoftware", ".thunderbird",
    ]

    /// The stores of `home` as absolute paths.
    public static func paths(home: String) -> [String] {
        relativePaths.map { Paths.join(home, $0) }
    }

    /// The stores that `dir` would expose if bound: those lying within it, by
    /// their path or, when `fs` is given, by where their symlinks lead (a
    /// dotfiles checkout that `~/.ssh` links into). Sorted, absolute, as the
    /// store is named in the home.
    public static func contained(in dir: String, home: String, fs: (any FileSystemView)? = nil) -> [String] {
        Resolved(home: home, fs: fs).contained(in: dir)
    }

    /// The store that `path` lies inside (by path or real path), if any.
    public static func enclosing(_ path: String, home: String, fs: (any FileSystemView)? = nil) -> String? {
        Resolved(home: home, fs: fs).enclosing(path)
    }

    /// The stores of one home with where each leads, resolved once for every
    /// question a plan asks of them (a plan asks for each CA bundle and each
    /// install tree; resolving the 45 stores for each was a millisecond).
    public struct Resolved {
        let stores: [(path: String, real: String?)]
        let fs: (any FileSystemView)?

        public init(home: String, fs: (any FileSystemView)?) {
            self.fs = fs
            stores = CredentialStores.paths(home: home).map { store in (store, fs.flatMap { Paths.resolve(store, in: $0) }) }
        }

        /// `CredentialStores.contained(in:home:fs:)`.
        public func contained(in dir: String) -> [String] {
            let d = Paths.normalize(dir)
            let realDir = fs.flatMap { Paths.resolve(d, in: $0) } ?? d
            return stores.filter { store in
                if Paths.isWithin(store.path, d) || Paths.isWithin(store.path, realDir) { return true }
                guard let real = store.real else { return false }
                return Paths.isWithin(real, d) || Paths.isWithin(real, realDir)
            }.map(\.path)
        }

        /// `CredentialStores.enclosing(_:home:fs:)`.
        public func enclosing(_ path: String) -> String? {
            let p = Paths.normalize(path)
            let real = fs.flatMap { Paths.resolve(p, in: $0) } ?? p
            return stores.first { store in
                if Paths.isWithin(p, store.path) || Paths.isWithin(real, store.path) { return true }
                guard let realStore = store.real else { return false }
                return Paths.isWithin(p, realStore) || Paths.isWithin(real, realStore)
            }?.path
        }
    }
}
