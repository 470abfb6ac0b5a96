/// Mounts laid over the project after everything else: the project's own
/// `.agentpen.toml` read-only (nothing the agent runs can plant keys for the
/// next run, or replace a trusted file), and the `hide` masks (an empty
/// read-only file or directory over each path a pattern names today).
struct ProjectMasks: Equatable {
    var arguments: [BwrapArgument] = []
    var notes: [String] = []
    /// Masks are mounts; each file mask also holds a descriptor.
    static let limit = 1024

    static func plan(hide: [String], project: String, fs: any FileSystemView) throws(PlanError) -> ProjectMasks {
        var m = ProjectMasks()
        let file = project + "/" + Locations.projectFileName
        if fs.kind(file) == .file {
            // Bound from a descriptor opened without following symlinks: the file checked is the file bound.
            m.arguments.append(.bindOpened(file, readOnly: true))
            m.notes.append("project file \(file) read-only")
        }
        var masked: [String] = []
        let paths: [String]
        do { paths = try HideGlob.expand(hide, project: project, fs: fs, limit: limit + 1) }
        catch {
            throw PlanError(.usage, "hide \(error.pattern.debugDescription): lists more than \(HideGlob.listingLimit) directories of \(project); name the directories instead of */*")
        }
        for path in paths {
            var target = path
            if fs.kind(path) == .symlink {
                // Hidden is what it names, when that lies in the project; never followed out of it.
                guard let real = Paths.resolve(path, in: fs), Paths.isWithin(real, project), real != project else {
                    m.notes.append("hide \(path): a symbolic link out of the project; nothing to hide inside")
                    continue
                }
                target = real
            }
            guard !masked.contains(target), target != project else { continue }
            masked.append(target)
            if masked.count > limit {
                throw PlanError(.usage, "hide names more than \(limit) paths in \(project); hide their directories instead")
            }
            if fs.kind(target) == .directory {
                m.arguments += [.tmpfs(target, size: 4096, mode: 0o555), .remountReadOnly(target)]
                m.notes.append("hide \(target): an empty read-only directory")
            } else {
                m.arguments.append(.data(path: target, content: ""))
                m.notes.append("hide \(target): an empty read-only file")
            }
        }
        return m
    }
}

extension SandboxPlan {
    /// No bind may show agentpen's own directories (config, trust records, run
    /// registry) inside, whoever asked for it (flag, config file, preset); nor
    /// may the project lie in one or hold the home's. What the sandbox could
    /// write there would change the next run's configuration or trust.
    static func checkOwnDirectories(_ arguments: [BwrapArgument], project: String, facts: HostFacts,
                                    fs: any FileSystemView, copies: String? = nil) throws(PlanError) {
        let own = Locations.make(env: facts.callerEnv, home: facts.home).resolved(fs: fs)
        let home = Locations.make(env: [:], home: facts.home).resolved(fs: fs)
        if let d = own.first(where: { Paths.isWithin(project, $0) }) ?? home.first(where: { Paths.isWithin($0, project) }) {
            throw PlanError(.usage, "refusing project directory \(project): it would show agentpen's own directory \(d) inside the sandbox; run agentpen from the project itself or pass -C DIR")
        }
        for a in arguments {
            let source: String
            switch a {
            case .bind(let s, _, _): source = s
            case .bindOpened(let s, _): source = s
            default: continue
            }
            // The project and what lies in it were checked above; a directory an
            // XDG variable puts in the project is not believed (Configure).
            if Paths.isWithin(source, project) { continue }
            // The paranoid profile's own copies (their directory holds nothing else).
            if let copies, Paths.isWithin(source, copies), source != copies { continue }
            if let d = own.first(where: { Paths.isWithin(source, $0) || Paths.isWithin($0, source) }) {
                throw PlanError(.usage, "refusing to mount \(source): it would show agentpen's own directory \(d) (its config, trust records or run registry) inside the sandbox; mount something narrower")
            }
        }
    }
}

extension Locations {
    /// `protected`, each also as a real path (the deepest existing ancestor
    /// resolved through `fs`, the rest appended), so a symlink on the way
    /// cannot hide a match.
    func resolved(fs: any FileSystemView) -> [String] {
        var out: [String] = []
        for p in protected {
            out.append(p)
            var head = p, tail: [String] = []
            while head != "/", fs.kind(head) == .missing { tail.insert(Paths.basename(head), at: 0); head = Paths.parent(head) }
            if let real = Paths.resolve(head, in: fs) {
                let full = tail.reduce(real) { Paths.join($0, $1) }
                if !out.contains(full) { out.append(full) }
            }
        }
        return out
    }
}
