/// What appears in the empty home and beyond the system because the caller or
/// the preset asked for it: `--mount`, `--mount-rw`, a preset's `rw`/`ro`
/// paths, and a CA bundle the caller's environment names. Every path is
/// resolved; none may be `/`, the home or an ancestor of it.
struct UserMounts: Equatable {
    /// Real paths bound read-only onto themselves, in order.
    var readOnly: [String] = []
    /// Real paths bound read-write onto themselves, in order.
    var readWrite: [String] = []
    /// `--mount-rw` as the caller wrote it (for the notes).
    var readWriteAsGiven: [String] = []
    /// CA bundle variables set inside to the real path of the bundle.
    var caBundles: [EnvironmentVariable] = []
    /// The binds in `readOnly` made for a CA bundle alone (not also named by --mount or a preset).
    var caBundleBinds: [String] = []
    var create: [HostPrep] = []
    /// Why the preset's paths and the CA bundles are visible.
    var notes: [String] = []

    static func plan(options: Options, preset: Preset?, callerEnv: [String: String], project: String,
                     home: String, fs: any FileSystemView) throws(PlanError) -> UserMounts {
        var m = UserMounts()
        let cwd = callerEnv["PWD"] ?? project
        // Extra mounts: absolute, existing, and never the home or an ancestor of it.
        func userPath(_ p: String, _ flag: String) throws(PlanError) -> String {
            let abs = Paths.join(cwd, expandTilde(p, home: home))
            guard let real = Paths.resolve(abs, in: fs) else { throw PlanError(.usage, "\(flag) \(p): no such file or directory") }
            if real == "/" || Paths.isWithin(home, real) {
                throw PlanError(.usage, "\(flag) \(p): refusing to expose / or your home directory")
            }
            let own = Locations.make(env: callerEnv, home: home)
            if let d = own.exposed(by: real) ?? own.exposed(by: abs) {
                throw PlanError(.usage, "\(flag) \(p): refusing to expose agentpen's own directory \(d) (its config, trust records or run registry); mount something narrower")
            }
            return real
        }
        for p in options.mounts { m.readOnly.append(try userPath(p, "--mount")) }
        for p in options.mountsRW { m.readWrite.append(try userPath(p, "--mount-rw")) }
        m.readWriteAsGiven = options.mountsRW
        if let preset { m.add(preset, readOnlyConfig: options.readOnlyConfig, home: home, fs: fs) }
        try m.addCABundles(callerEnv: callerEnv, cwd: cwd, project: project, home: home, fs: fs)
        return m
    }

    /// A preset's config paths: read-write (created when missing), or all
    /// read-only with --ro-config; its read-only paths when they exist.
    mutating func add(_ preset: Preset, readOnlyConfig: Bool, home: String, fs: any FileSystemView) {
        for p in preset.readWrite {
            let abs = Paths.normalize(expandTilde(p, home: home))
            if readOnlyConfig {
                // Stricter mode: the agent reads its login and settings, changes nothing.
                guard let real = Paths.resolve(abs, in: fs) else { continue }
                readOnly.append(real)
                notes.append("preset \(preset.name): \(abs) read-only (--ro-config)")
                continue
            }
            if fs.kind(abs) == .missing { create.append(.directory(abs)) }
            readWrite.append(Paths.resolve(abs, in: fs) ?? abs)
            notes.append("preset \(preset.name): \(abs) read-write")
        }
        for p in preset.readOnly {
            let abs = Paths.normalize(expandTilde(p, home: home))
            guard let real = Paths.resolve(abs, in: fs) else { continue }
            readOnly.append(real)
            notes.append("preset \(preset.name): \(abs) read-only")
        }
    }

    /// A custom CA bundle the caller names: visible read-only, the variable set to
    /// where it is, unless it lies in a credential store (as any other bind).
    mutating func addCABundles(callerEnv: [String: String], cwd: String, project: String, home: String,
                               fs: any FileSystemView) throws(PlanError) {
        var stores: CredentialStores.Resolved?
        for name in EnvPolicy.caBundles {
            guard let v = callerEnv[name], !v.isEmpty else { continue }
            let abs = Paths.join(cwd, expandTilde(v, home: home))
            if stores == nil { stores = CredentialStores.Resolved(home: home, fs: fs) }
            if let store = stores?.enclosing(abs) {
                throw PlanError(.usage, "\(name)=\(v): refusing to expose \(store), a credential store; keep the CA bundle elsewhere")
            }
            guard let real = Paths.resolve(abs, in: fs), fs.kind(real) == .file else {
                throw PlanError(.usage, "\(name)=\(v): no such file (it names a CA bundle)")
            }
            // Once per file: several variables often name the same bundle.
            if !Paths.isWithin(real, project) && !readOnly.contains(real) {
                readOnly.append(real)
                caBundleBinds.append(real)
            }
            caBundles.append(EnvironmentVariable(name, real))
            notes.append("\(name): CA bundle \(real) read-only")
        }
    }

    /// Drops the binds of CA bundles that lie beneath `shown`, directories the
    /// system view binds whole before the home (/usr, /etc/ssl …): the same
    /// file is visible at the same path already, and each bind is a mount.
    mutating func dropCABundleBinds(within shown: [String]) {
        let redundant = caBundleBinds.filter { b in shown.contains { Paths.isWithin(b, $0) } }
        readOnly.removeAll { redundant.contains($0) }
        caBundleBinds.removeAll { redundant.contains($0) }
    }

    /// The home, an empty bounded tmpfs, with these paths bound in it (or anywhere else).
    /// `copies`: a read-write path's throwaway copy (paranoid), bound in its place.
    func arguments(home: String, size: UInt64, copies: [String: String] = [:]) -> [BwrapArgument] {
        [.tmpfs(home, size: size, mode: 0o700)]
            + readOnly.map { .bind(source: $0, destination: $0, readOnly: true) }
            + readWrite.map { .bind(source: copies[$0] ?? $0, destination: $0, readOnly: false) }
    }

    /// What --dry-run says of the extra mounts.
    var mountNotes: [String] {
        readOnly.map { "--mount \($0) read-only" } + readWriteAsGiven.map { "--mount-rw \($0) read-write" }
    }
}
