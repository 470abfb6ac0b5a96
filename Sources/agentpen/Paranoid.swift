import AgentpenConfig
import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import Glibc

/// The paranoid profile's throwaway copies, under
/// `$XDG_STATE_HOME/agentpen/review/<hash of the project's real path>/`:
/// `tree/` the project's copy (kept across runs until `agentpen apply`),
/// `config/` the agent's config directories (new each run, removed after it
/// but for the preset's credential files, copied back).
enum Paranoid {
    static func base(_ c: Configured) -> String { c.locations.stateDir + "/review/" + Trust.recordName(project: c.project) }

    static func mkdirs(_ path: String) -> Bool {
        var built = ""
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o700) != 0 && errno != EEXIST { return false }
        }
        return true
    }

    /// The copies for this run; made on the host unless `create` is false (--dry-run).
    static func prepare(_ c: Configured, preset: Preset?, home: String, create: Bool) throws(Failure) -> Throwaway {
        let base = base(c)
        if Paths.isWithin(base, c.project) {
            throw .usage("the paranoid profile keeps its copies in \(base), inside the project; unset XDG_STATE_HOME")
        }
        let tree = base + "/tree"
        var config: [String: String] = [:]
        for p in preset?.readWrite ?? [] {
            let abs = Paths.normalize(expandTilde(p, home: home))
            config[Host.realPath(abs) ?? abs] = base + "/config/" + Trust.recordName(project: abs)
        }
        guard create else { return Throwaway(project: tree, config: config, base: base) }
        guard mkdirs(base) else { throw .internalError("cannot create \(base): \(String(cString: strerror(errno)))") }
        if Host.realPath(tree) == nil {
            // Copied aside first, so an interrupted copy is never taken for the project's.
            let partial = base + "/tree.partial"
            TreeCopy.remove(partial)
            do { _ = try TreeCopy.copy(c.project, to: partial) } catch {
                TreeCopy.remove(partial)
                throw .internalError("cannot copy the project for the paranoid profile: \(error)")
            }
            guard rename(partial, tree) == 0 else { throw .internalError("cannot place the copy at \(tree)") }
        }
        TreeCopy.remove(base + "/config")
        guard mkdirs(base + "/config") else { throw .internalError("cannot create \(base)/config") }
        for (real, copy) in config {
            do {
                if Host.realPath(real) != nil { _ = try TreeCopy.copy(real, to: copy) }
                else if mkdir(copy, 0o700) != 0 { throw TreeCopy.Failure(description: "cannot create \(copy)") }
            } catch { throw .internalError("cannot copy \(real) for the paranoid profile: \(error)") }
        }
        return Throwaway(project: tree, config: config, base: base)
    }

    /// After the run: the preset's credential files copied back from the
    /// throwaway config copies (regular files only, no symlink followed, at most
    /// 1 MiB), then the copies removed. What happened, for the user.
    static func finish(_ p: Prepared) -> [String] {
        guard let t = p.options.throwaway else { return [] }
        var said: [String] = []
        for cred in p.preset?.credentials ?? [] {
            let abs = Paths.normalize(expandTilde(cred, home: p.facts.home))
            guard let (real, copy) = t.config.first(where: { Paths.isWithin(abs, $0.key) || Paths.isWithin(Host.realPath(Paths.parent(abs)) ?? abs, $0.key) }) else { continue }
            let realCred = Paths.join(Host.realPath(Paths.parent(abs)) ?? Paths.parent(abs), Paths.basename(abs))
            let inCopy = copy + String(realCred.dropFirst(real.count))
            guard case .bytes(let bytes) = ConfigFiles.read(inCopy, limit: 1 << 20) else { continue }
            if case .bytes(let old) = ConfigFiles.read(realCred, limit: 1 << 20), old == bytes { continue }
            if let e = ConfigFiles.replace(dir: Paths.parent(realCred), name: Paths.basename(realCred), bytes: bytes) {
                said.append("paranoid: could not copy back \(realCred): \(e)")
            } else {
                said.append("paranoid: copied back \(realCred) (the agent's login); every other change to its config was thrown away")
            }
        }
        TreeCopy.remove(t.base + "/config")
        said.append("paranoid: the agent's changes are in a copy; agentpen review shows them, agentpen apply applies them")
        return said
    }

    /// `agentpen review [-C DIR]`: what the paranoid runs changed, as a list and a diff.
    static func review(_ options: Options) -> Int32 {
        do {
            let c = try Configure.load(options, facts: Runner.gatherFacts())
            let tree = base(c) + "/tree"
            guard Host.realPath(tree) != nil else {
                let out: TerminalText = "nothing to review for \(c.project): no paranoid run has a copy of it\n"
                out.write(to: 1)
                return 0
            }
            let changes = try changes(c.project, tree)
            var out: TerminalText = "# \(changes.count) change(s) in the copy \(tree) (.git is never applied)\n"
            let later = runsLater(changes, c.project, tree)
            for ch in changes { out += "  \(ch.description)" + (later[ch.path].map { "  (runs later: \($0))" } ?? "") + "\n" }
            if isExecutable("/usr/bin/diff") {
                let d = Spawn.run(["/usr/bin/diff", "-ruN", "--no-dereference", "-x", ".git", c.project, tree],
                                  env: HostPrograms.environment)
                for line in d.output.split(separator: "\n", omittingEmptySubsequences: false) { out += "\(line)\n" }
            }
            out.write(to: 1)
            return 0
        } catch {
            printError("\(error.message)")
            return error.status
        }
    }

    /// `agentpen apply [-C DIR]`: the copy's changes written into the project, then the copy removed.
    static func apply(_ options: Options) -> Int32 {
        do {
            let c = try Configure.load(options, facts: Runner.gatherFacts())
            let tree = base(c) + "/tree"
            guard Host.realPath(tree) != nil else {
                printError("nothing to apply to \(c.project): no paranoid run has a copy of it")
                return 2
            }
            let changes = try changes(c.project, tree)
            let later = runsLater(changes, c.project, tree)
            let failed = TreeCopy.apply(changes, project: c.project, copy: tree)
            var out: TerminalText = ""
            for ch in changes { out += "applied \(ch.description)\n" }
            out.write(to: 1)
            for f in failed { printError("not applied: \(f)") }
            // Now in the real project, where they run unconfined: named, like the
            // persistence audit's findings after a run.
            for ch in changes {
                guard let why = later[ch.path], !failed.contains(where: { $0.hasPrefix(ch.description) }) else { continue }
                printError("applied \(ch.path): \(why); read it before that happens")
            }
            guard failed.isEmpty else { return 1 }
            TreeCopy.remove(tree)
            return 0
        } catch {
            printError("\(error.message)")
            return error.status
        }
    }

    /// The written or linked files among `changes` that a shell or an editor runs
    /// later (PersistenceAudit's project-file rules), by path, with why.
    static func runsLater(_ changes: [TreeCopy.Change], _ project: String, _ tree: String) -> [String: String] {
        var out: [String: String] = [:]
        for ch in changes {
            let regular: Bool
            switch ch { case .write: regular = true; case .link: regular = false; default: continue }
            let content: [UInt8]
            if regular, case .bytes(let b) = ConfigFiles.read(tree + "/" + ch.path, limit: 64 << 10) { content = b } else { content = [] }
            if let why = PersistenceAudit.appliedFileReason(ch.path, projectName: Paths.basename(project), isRegular: regular,
                                                            content: content) {
                out[ch.path] = why
            }
        }
        return out
    }

    static func changes(_ project: String, _ tree: String) throws(Failure) -> [TreeCopy.Change] {
        do { return try TreeCopy.changes(project: project, copy: tree) }
        catch { throw .internalError("cannot compare \(project) with its copy: \(error)") }
    }

    static func isExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }
}
