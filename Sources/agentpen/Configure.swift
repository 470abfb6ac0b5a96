import AgentpenConfig
import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import AgentpenProxy
import Glibc

/// The config files read for a run (or `agentpen config`/`trust`), and the
/// effective configuration they give with the flags.
struct Configured {
    var locations: Locations
    var global: ConfigFile?
    var projectFile: ConfigFile?
    var projectFilePath: String
    var trusted: Bool
    /// The project directory (real path) and why it is the project.
    var project: String
    var projectSource: Provenance
    var resolution: Resolution
    /// Warnings printed at start: ignored keys, files not believed.
    var warnings: [String]

    /// `agentpen config` and the top of --dry-run's plan.
    var report: [String] {
        var out: [String] = []
        out.append("files:")
        out.append("  global \(global?.path ?? locations.globalFile)" + (global == nil ? " (none)" : ""))
        let state = projectFile == nil ? " (none)" : trusted ? " (trusted)"
            : " (untrusted: only what tightens is honoured; review it, then agentpen trust)"
        out.append("  project \(projectFilePath)" + state)
        out.append("project: \(project)  (\(projectSource))")
        out += resolution.lines.map(\.description)
        for w in warnings { out.append("warning: \(w)") }
        return out
    }
}

enum Configure {
    /// Reads the global file, finds the project (-C, else the deepest
    /// context root, else the working directory), reads its file and trust
    /// record, and merges. A problem in the global file stops the run (exit 2);
    /// anything about the project file is a warning.
    static func load(_ options: Options, facts: HostFacts) throws(Failure) -> Configured {
        let locations = Locations.make(env: facts.callerEnv, home: facts.home)
        var warnings: [String] = []
        let cwd = Host.realPath(".") ?? "/"

        // The global file: trusted, unless a variable moved it into the working directory.
        var global: ConfigFile?
        let globalPath = locations.globalFile
        let globalReal = Host.realPath(Paths.parent(globalPath)).map { Paths.join($0, Paths.basename(globalPath)) } ?? globalPath
        // (Checked against the working directory before the project is known, so
        // that such a file cannot stop the run either; a working directory that
        // holds the home, `/` say, is no project and proves nothing. The final
        // project is checked again below.)
        let home = Paths.normalize(facts.home)
        if options.project == nil, !Paths.isWithin(home, cwd), Paths.isWithin(globalReal, cwd) {
            warnings.append("\(globalPath): not read: it lies in the project (is XDG_CONFIG_HOME set by the project?)")
        } else {
            switch ConfigFiles.read(globalPath, limit: ConfigFile.globalSizeLimit) {
            case .missing: break
            case .refused(let why): throw .usage("refusing the global config \(globalPath): \(why)")
            case .bytes(let b):
                do { global = try ConfigFile.parse(b, path: globalPath, kind: .global) }
                catch { throw .usage("\(error.description); fix the global config") }
            }
        }

        // The project.
        func find(_ global: ConfigFile?) throws(Failure) -> (String, Provenance) {
            if let p = options.project {
                let arg = Paths.join(cwd, expandTilde(p, home: facts.home))
                guard let real = Host.realPath(arg) else { throw .usage("project directory \(arg) does not exist") }
                return (real, .flag("-C"))
            }
            let roots = (global?.contextRoots ?? []).compactMap { r -> Sourced<String>? in
                Host.realPath(Paths.normalize(expandTilde(r.value, home: facts.home))).map { Sourced($0, r.source) }
            }
            if let root = ContextRoots.project(cwd: cwd, roots: roots) { return (root.value, root.source) }
            return (cwd, .builtin("the working directory"))
        }
        var (project, projectSource) = try find(global)
        if global != nil, Paths.isWithin(globalReal, project) {
            warnings.append("\(globalPath): not read: it lies in the project (is XDG_CONFIG_HOME set by the project?)")
            global = nil
            (project, projectSource) = try find(nil)
        }

        // The project's file: hostile input; never stops the run.
        let projectFilePath = project + "/.agentpen.toml"
        var projectFile: ConfigFile?
        switch ConfigFiles.read(projectFilePath, limit: ConfigFile.projectSizeLimit) {
        case .missing: break
        case .refused(let why): warnings.append("\(projectFilePath): ignored: \(why)")
        case .bytes(let b): projectFile = try? ConfigFile.parse(b, path: projectFilePath, kind: .project)
        }

        // allowed.toml (agentpen allow --save): trusted like the global file, under the same condition.
        var saved: SavedHosts?
        let savedPath = locations.allowedFile
        do {
            let savedReal = Host.realPath(Paths.parent(savedPath)).map { Paths.join($0, Paths.basename(savedPath)) } ?? savedPath
            if Paths.isWithin(savedReal, project) || Paths.isWithin(savedReal, cwd) && !Paths.isWithin(home, cwd) {
                warnings.append("\(savedPath): not read: it lies in the project (is XDG_CONFIG_HOME set by the project?)")
            } else {
                switch ConfigFiles.read(savedPath, limit: ConfigFile.globalSizeLimit) {
                case .missing: break
                case .refused(let why): throw .usage("refusing \(savedPath): \(why)")
                case .bytes(let b):
                    do { saved = try SavedHosts.parse(b, path: savedPath) }
                    catch { throw .usage("\(error.description); fix or remove it (agentpen allow --save writes it)") }
                }
            }
        }

        // Its trust record: only from a store the project does not hold.
        var trusted = false
        if let file = projectFile {
            let trustReal = Host.realPath(locations.trustDir) ?? locations.trustDir
            if Paths.isWithin(trustReal, project) || Paths.isWithin(locations.trustDir, project) {
                warnings.append("\(locations.trustDir): trust records not believed: the store lies in the project (is XDG_STATE_HOME set by the project?)")
            } else if case .bytes(let stored) = ConfigFiles.read(locations.trustDir + "/" + Trust.recordName(project: project), limit: 4096) {
                trusted = Trust.isTrusted(stored: stored, project: project, sha256: file.sha256)
            }
        }

        let resolution: Resolution
        do {
            resolution = try Resolution.resolve(.init(flags: options, global: global, project: projectFile, projectTrusted: trusted,
                                                      saved: saved, projectPath: project))
        } catch {
            switch error {
            case .usage(let m): throw .usage(m)
            case .config(let e): throw .usage("\(e.description); fix the global config")
            }
        }
        warnings += resolution.ignored.map(\.description)
        return Configured(locations: locations, global: global, projectFile: projectFile, projectFilePath: projectFilePath,
                          trusted: trusted, project: project, projectSource: projectSource, resolution: resolution,
                          warnings: warnings)
    }

    /// `--check`'s row: whether the config files let a run start here (a broken
    /// global file stops every run), and what the project file is.
    /// With an upstream proxy configured, a second row says it is used and what
    /// agentpen cannot check through it.
    static func checkRows() -> [Check.Row] {
        do {
            let c = try load(Options(), facts: Runner.gatherFacts())
            var detail = "global \(c.global?.path ?? c.locations.globalFile)" + (c.global == nil ? " (none)" : " read")
            if c.projectFile != nil {
                detail += "; \(c.projectFilePath) " + (c.trusted ? "trusted" : "untrusted")
                let n = c.resolution.ignored.count
                if n > 0 { detail += ", \(n) key\(n == 1 ? "" : "s") ignored (agentpen config lists them)" }
            }
            var rows = [Check.Row(layer: "config", state: .ok, detail: detail)]
            if let up = c.global?.proxy?.value {
                // Tried for real: a TCP connection to it (no request, so no credentials sent).
                let failure = tryUpstreamProxy(up)
                rows.append(Check.Row(layer: "upstream proxy", state: failure == nil ? .ok : .degraded,
                                      detail: "\(up.redactedURL) (proxy.url): "
                                        + (failure.map { "cannot connect: \($0)" } ?? "reachable")
                                        + (up.noProxy.isEmpty ? "" : "; direct for no_proxy: \(up.noProxy.joined(separator: ", "))")
                                        + "; " + UpstreamProxy.vettingNote,
                                      fix: failure == nil ? nil : "check proxy.url in \(c.global?.path ?? "the global config"); runs with allowed hosts fail until it answers"))
            }
            return rows
        } catch {
            return [Check.Row(layer: "config", state: .missing, detail: error.message, fix: "fix the file named; agentpen config shows it")]
        }
    }

    /// `agentpen config [OPTIONS] [COMMAND]`: the effective configuration of that run.
    static func show(_ options: Options) -> Int32 {
        do {
            let c = try load(options, facts: Runner.gatherFacts())
            var out: TerminalText = "# agentpen config: flags > trusted project > profile > global > presets\n"
            for line in c.report { out += "\(line)\n" }
            out.write(to: 1)
            return 0
        } catch {
            printError("\(error.message)")
            return error.status
        }
    }

    /// `agentpen trust [-C DIR]`: records the project file's exact bytes as trusted.
    static func trust(_ options: Options) -> Int32 {
        do {
            let c = try load(options, facts: Runner.gatherFacts())
            guard let file = c.projectFile else {
                printError("no readable \(c.projectFilePath) to trust (agentpen init writes one)")
                for w in c.warnings { printError("\(w)") }
                return 2
            }
            let dir = c.locations.trustDir
            let dirReal = Host.realPath(dir) ?? dir
            if Paths.isWithin(dir, c.project) || Paths.isWithin(dirReal, c.project) {
                printError("refusing to keep trust in \(dir): it lies in the project \(c.project); unset XDG_STATE_HOME")
                return 2
            }
            if let e = ConfigFiles.replace(dir: dir, name: Trust.recordName(project: c.project),
                                           Trust.record(project: c.project, sha256: file.sha256)) {
                printError("cannot record trust in \(dir): \(e)")
                return 125
            }
            let widening = file.settings.tighteningOnly(file: file.path, profiles: c.global?.profiles ?? [:]).ignored.map(\.key)
            var out: TerminalText = "trusted \(file.path) (sha256 \(file.sha256)); an edit makes it untrusted again\n"
            out += widening.isEmpty ? "it only tightens: nothing more is honoured than before\n"
                : "now honoured as well: \(widening.joined(separator: ", "))\n"
            for i in file.ignored { out += "still ignored: \(i.description)\n" }
            out.write(to: 1)
            return 0
        } catch {
            printError("\(error.message)")
            return error.status
        }
    }

    /// `agentpen init [-C DIR]`: a commented `.agentpen.toml`, never over an existing one.
    static func initialize(_ options: Options) -> Int32 {
        let facts = Runner.gatherFacts()
        let cwd = Host.realPath(".") ?? "/"
        let dir = options.project.map { Paths.join(cwd, expandTilde($0, home: facts.home)) } ?? cwd
        guard let project = Host.realPath(dir) else {
            printError("project directory \(dir) does not exist")
            return 2
        }
        let path = project + "/.agentpen.toml"
        if let e = ConfigFiles.createNew(path, InitTemplate.text) {
            printError("\(path): \(e)\(e == "already exists" ? "; edit it instead" : "")")
            return 2
        }
        let out: TerminalText = "wrote \(path): every key commented out; the tightening ones count without agentpen trust\n"
        out.write(to: 1)
        return 0
    }
}
