import AgentpenPolicy

/// Profiles are data: a table of settings. `untrusted` (the default) adds
/// nothing to today's behaviour; the user defines others in the global file
/// (`[profiles.NAME]`).
public enum Profiles {
    public static let defaultName = "untrusted"
    /// Built-in names, which the global file cannot redefine.
    public static let builtinNames = ["untrusted", "paranoid"]
    /// Built-in profiles not built yet: selecting one is refused (flag, global)
    /// or warned about (project), never silently weaker.
    public static let unavailable: [String] = []
    /// The project and the agent's config directories as throwaway copies, only
    /// the agent's own API hosts, no read-write mounts. Not a table of settings:
    /// the resolver and the plan know it by name (`Options.paranoid`).
    public static let paranoid = "paranoid"

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" || $0 == "_" }
    }

    /// A profile's settings, by name (nil: no such profile).
    public static func settings(_ name: String, defined: [String: Settings]) -> Settings? {
        if name == defaultName || name == paranoid { return Settings() }
        return defined[name]
    }

    /// Whether an untrusted project file may select this profile: only when
    /// everything it says tightens.
    public static func isTightening(_ s: Settings) -> Bool {
        s.tighteningOnly(file: "").ignored.isEmpty
    }
}

extension Settings {
    /// What an untrusted project file may say: remove hosts and variables, hide
    /// paths, make the agent's config read-only, keep a parent git dir
    /// read-only, select a profile that only tightens. Everything else is left
    /// out, one `Ignored` per key.
    public func tighteningOnly(file: String, profiles: [String: Settings] = [:]) -> (settings: Settings, ignored: [Ignored]) {
        var kept = Settings()
        var ignored: [Ignored] = []
        func widen(_ source: Provenance?) {
            guard case .file(_, let key)? = source else { return }
            let i = Ignored(file: file, key: key, reason: .widening)
            if !ignored.contains(i) { ignored.append(i) }
        }
        kept.removeHosts = removeHosts
        kept.removeEnv = removeEnv
        kept.hide = hide
        if let v = readOnlyConfig { if v.value { kept.readOnlyConfig = v } else { widen(v.source) } }
        if let v = allowParentGit { if !v.value { kept.allowParentGit = v } else { widen(v.source) } }
        if let v = noCgroup { if !v.value { kept.noCgroup = v } else { widen(v.source) } }
        if let p = profile {
            if let s = Profiles.settings(p.value, defined: profiles), Profiles.isTightening(s) { kept.profile = p }
            else if Profiles.unavailable.contains(p.value) || Profiles.settings(p.value, defined: profiles) == nil { kept.profile = p }   // the resolver warns
            else { widen(p.source) }
        }
        widen(preset?.source)
        for v in env { widen(v.source) }
        for v in mounts { widen(v.source) }
        for v in mountsRW { widen(v.source) }
        for v in allow { widen(v.source) }
        for v in hostPorts { widen(v.source) }
        for v in publish { widen(v.source) }
        widen(hop?.source)
        widen(log?.source)
        widen(tmpfsSize?.source)
        widen(memoryMax?.source)
        widen(cpus?.source)
        widen(tasksMax?.source)
        for name in agents.keys.sorted() {
            let a = agents[name]!
            for v in a.hosts { widen(v.source) }
            for v in a.env { widen(v.source) }
            for v in a.mounts { widen(v.source) }
            for v in a.mountsRW { widen(v.source) }
            for v in a.args { widen(v.source) }
        }
        return (kept, ignored)
    }
}

/// `context_roots`: a directory tree that becomes the project when agentpen
/// starts beneath it (without -C). The deepest root containing the working
/// directory wins; a root matches whole path components only (`/src/a` does
/// not contain `/src/ab`).
public enum ContextRoots {
    /// `roots` as real paths (the kernel edge resolves them); `cwd` real too.
    public static func project(cwd: String, roots: [Sourced<String>]) -> Sourced<String>? {
        let containing = roots.filter { Paths.isWithin(cwd, $0.value) && Paths.normalize($0.value) != "/" }
        return containing.max { Paths.normalize($0.value).count < Paths.normalize($1.value).count }
    }
}
