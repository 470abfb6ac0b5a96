/// The persistence audit's decisions: which files in the project a later git
/// command, shell or editor would run, which of them the run created or changed,
/// and what to do about each. Pure: the walker in AgentpenKernel feeds it names,
/// stat results and file contents, and carries out what it decides.
public enum PersistenceAudit {
    /// A file's identity and change time; a finding one run handled is skipped by
    /// another run that sees the same fingerprint.
    public struct Fingerprint: Hashable, Sendable {
        public var dev: UInt64
        public var ino: UInt64
        public var ctime: Timestamp
        public init(dev: UInt64, ino: UInt64, ctime: Timestamp) { self.dev = dev; self.ino = ino; self.ctime = ctime }

        /// One registry line: `dev ino sec nsec`.
        public var line: String { "\(dev) \(ino) \(ctime.sec) \(ctime.nsec)" }
        public init?(line: Substring) {
            let f = line.split(separator: " ")
            guard f.count == 4, let d = UInt64(f[0]), let i = UInt64(f[1]), let s = Int64(f[2]), let n = Int64(f[3])
            else { return nil }
            self.init(dev: d, ino: i, ctime: Timestamp(sec: s, nsec: n))
        }
    }

    public struct Timestamp: Hashable, Comparable, Sendable {
        public var sec: Int64
        public var nsec: Int64
        public init(sec: Int64, nsec: Int64) { self.sec = sec; self.nsec = nsec }
        public static func < (a: Timestamp, b: Timestamp) -> Bool { (a.sec, a.nsec) < (b.sec, b.nsec) }
    }

    /// What agentpen does about a finding.
    public enum Action: String, Sendable, Equatable {
        /// Deleted: a redirect in the project's own `.git` (`commondir`, `config.worktree`).
        case remove
        /// Renamed within its directory to a name git never reads.
        case quarantine
        /// Left as it is and reported: shell and editor files the user may have wanted.
        case report
    }

    /// What a file found by the walk is, by its name and place.
    public enum Role: Sendable, Equatable {
        case gitConfig            // config or config.worktree of a git dir
        case hook(String)         // a file in a git dir's hooks/
        case hooksLink            // hooks/ itself is a symlink or not a directory
        case commondir
        case gitLink              // a `.git` file or symlink pointing at a git dir
        case envrc                // direnv
        case miseConfig           // mise/rtx: `[hooks]` and `[env]` run on cd
        case activation           // virtualenv/conda activation scripts
        case vscodeTasks
        case vscodeSettings
    }

    public struct Finding: Sendable, Equatable {
        public var path: String
        public var action: Action
        /// What would run it, in words ("git status (core.fsmonitor)").
        public var reason: String
        /// Where it went (quarantine) or nil.
        public var movedTo: String?
        /// Set when the change could not be carried out.
        public var error: String?
        /// About the audit itself (a bound hit, a directory it had to open up),
        /// not a file the run planted.
        public var isNotice = false

        public init(path: String, action: Action, reason: String, movedTo: String? = nil, error: String? = nil,
                    isNotice: Bool = false) {
            self.path = path; self.action = action; self.reason = reason; self.movedTo = movedTo; self.error = error
            self.isNotice = isNotice
        }

        /// One line for the user at exit.
        public var message: String {
            if isNotice { return "persistence: \(path): \(reason)" }
            if let error {
                return "persistence: \(path): \(reason); could not \(action == .remove ? "remove" : "move") it (\(error)): delete it before running git here"
            }
            switch action {
            case .remove: return "persistence: removed \(path): \(reason)"
            case .quarantine: return "persistence: moved \(path) to \(movedTo ?? "?"): \(reason)"
            case .report: return "persistence: \(path) was created or changed in the sandbox: \(reason); review it before use"
            }
        }
    }

    /// The name a quarantined file gets in its own directory: git reads none of these.
    public static let quarantineMarker = ".agentpen-quarantine-"
    public static func quarantineName(_ name: String, runID: String) -> String { name + quarantineMarker + runID }
    public static func isQuarantined(_ name: String) -> Bool { name.contains(quarantineMarker) }

    // MARK: names

    /// A directory git would use as a repository (a bare one, or the target of
    /// a `.git` file): `HEAD` plus objects and refs of its own or via `commondir`.
    public static func looksLikeGitDir(_ names: Set<String>) -> Bool {
        names.contains("HEAD") && (names.contains("objects") || names.contains("refs") || names.contains("commondir"))
    }

    /// Whether a directory is audited as a git dir: every `.git` directory
    /// (valid or not: `git init` there would keep what it holds), and any
    /// directory git would take for a repository.
    public static func isGitDir(name: String, hasHEAD: Bool, hasObjects: Bool, hasRefs: Bool, hasCommondir: Bool) -> Bool {
        name == ".git" || (hasHEAD && (hasObjects || hasRefs || hasCommondir))
    }

    /// Where a git dir is. `isProjectGit`: it is the project's `.git` directory
    /// that was there before the run (same path, same device and inode).
    public static func place(isProjectGit: Bool, parentName: String) -> GitDirPlace {
        isProjectGit ? .projectGit : parentName == "worktrees" ? .worktree : .other
    }

    /// Whether everything in a git dir that runs programs counts as the run's:
    /// the directory itself was created, moved into place or had entries added,
    /// removed or renamed during the run. Never for the project's `.git` or a
    /// git dir the plan guarded (running git inside legitimately rewrites their
    /// index and HEAD): there each file answers for itself.
    public static func gitDirIsTheRuns(ctime: Timestamp, start: Timestamp, place: GitDirPlace, guarded: Bool) -> Bool {
        place != .projectGit && !guarded && ctime >= start
    }

    /// What the runs' ledgers say about who wrote a file (see `RunLedger`):
    /// each run on a project records, from a fanotify mark on its sandbox's
    /// own project mount, the identity (device, inode) of every file its
    /// processes closed after writing.
    public struct Evidence: Sendable, Equatable {
        /// This run's processes wrote it.
        public var wroteIt = false
        /// A run still active wrote it, and this one did not. That run audits
        /// after this one (audits take turns, and it has not had its turn) and
        /// reports every file of its own ledger: the finding is left to it.
        public var otherActiveWroteIt = false
        /// A run that ended meanwhile reported it as its own (proved by its
        /// ledger) in exactly this state: same identity and ctime.
        public var otherReportedAsItsOwn = false
        public init(wroteIt: Bool = false, otherActiveWroteIt: Bool = false, otherReportedAsItsOwn: Bool = false) {
            self.wroteIt = wroteIt; self.otherActiveWroteIt = otherActiveWroteIt
            self.otherReportedAsItsOwn = otherReportedAsItsOwn
        }
    }

    /// A file is the run's when its processes wrote it (whatever its ctime), or
    /// when its ctime is at or after the start (creation, write, rename, link
    /// and chmod all set it) or its git dir is the run's, unless it is proved
    /// another run's. Fails towards reporting: what no ledger explains (made
    /// by rename, link, symlink, mkdir or chmod alone, which give a mount mark
    /// no event; or a run without a ledger) is reported by every run that
    /// overlapped the change.
    public static func isTheRuns(ctime: Timestamp, start: Timestamp, inRunsGitDir: Bool, evidence: Evidence) -> Bool {
        if evidence.wroteIt { return true }
        guard inRunsGitDir || ctime >= start else { return false }
        return !evidence.otherActiveWroteIt && !evidence.otherReportedAsItsOwn
    }

    /// Whether the walk enters a subdirectory.
    public static func enters(_ child: String, of dirName: String, inGitTree: Bool, isGitDir: Bool) -> Bool {
        if isGitDir && child == "hooks" { return false }          // audited with its git dir
        if (inGitTree || dirName == ".git") && gitStores.contains(child) { return false }
        return true
    }

    /// Inside a `.git` directory: the stores git never executes anything from and
    /// that can hold most of a repository's files; the walk does not enter them.
    public static let gitStores: Set<String> = ["objects", "refs", "logs", "lfs", "rr-cache", "packed-refs"]

    /// Files in an ordinary directory that a shell or tool runs later.
    public static func projectFileRole(_ name: String, dirName: String, parentName: String) -> Role? {
        switch name {
        case ".envrc": return .envrc
        case "mise.toml", ".mise.toml", "mise.local.toml", ".mise.local.toml", ".rtx.toml": return .miseConfig
        default: break
        }
        if dirName == ".vscode" {
            if name == "tasks.json" { return .vscodeTasks }
            if name == "settings.json" { return .vscodeSettings }
        }
        if dirName == "bin" || dirName == "Scripts" {
            let lower = name.lowercased()
            if lower.hasPrefix("activate") || lower == "postactivate" || lower == "preactivate" { return .activation }
        }
        if dirName == "activate.d" && parentName == "conda" { return .activation }
        return nil
    }

    /// Whether a name in a directory needs a look at its contents or type
    /// (the walk stats only these, and directories).
    public static func isCandidateName(_ name: String) -> Bool {
        switch name {
        case ".git", ".envrc", ".vscode", "tasks.json", "settings.json", "mise.toml", ".mise.toml",
             "mise.local.toml", ".mise.local.toml", ".rtx.toml", "HEAD", "config", "config.worktree",
             "commondir", "hooks":
            return true
        default:
            return false
        }
    }

    // MARK: git config

    /// Values git reads as false: a key set to one of these runs nothing.
    static func isFalse(_ v: String?) -> Bool {
        guard let v else { return false }
        return ["false", "no", "off", "0", ""].contains(v.lowercased())
    }
    static func isBool(_ v: String?) -> Bool {
        guard let v else { return true }
        return isFalse(v) || ["true", "yes", "on", "1"].contains(v.lowercased())
    }

    /// Why git would run a program because of this entry, or nil. Keys from
    /// git-config(1) that name a command, a program, a hook directory or another
    /// config file, plus any `*.command`/`*.cmd`/`*.program`/`*.helper` a later
    /// git may add.
    public static func risk(of e: GitConfig.Entry) -> String? {
        let sub = e.subsection != nil
        let v = e.value
        switch (e.section, sub, e.name) {
        case ("core", false, "fsmonitor"):
            return isFalse(v) || v == nil || v?.lowercased() == "true" ? nil
                : "core.fsmonitor runs on git status, diff, add and checkout"
        case ("core", false, "hookspath"): return "core.hooksPath makes git run hooks from another directory"
        case ("core", false, "sshcommand"): return "core.sshCommand runs on git fetch, pull and push"
        case ("core", false, "pager"): return "core.pager runs on git log, diff, branch and show"
        case ("core", false, "editor"): return "core.editor runs on git commit, rebase -i and tag"
        case ("core", false, "askpass"): return "core.askPass runs when git asks for a password"
        case ("core", false, "gitproxy"): return "core.gitProxy runs on git fetch"
        case ("core", false, "alternaterefscommand"): return "core.alternateRefsCommand runs on fetch and push"
        case ("sequence", false, "editor"): return "sequence.editor runs on git rebase -i"
        case ("gpg", _, "program"): return "\(e.key) runs when git signs or verifies"
        case ("gpg", true, "defaultkeycommand"): return "\(e.key) runs when git signs"
        case ("pager", true, _), ("pager", false, _):
            return isBool(v) ? nil : "\(e.key) runs as the pager of git \(e.name)"
        case ("diff", false, "external"): return "diff.external runs on git diff"
        case ("diff", true, "textconv"), ("diff", true, "command"): return "\(e.key) runs on git diff and log -p"
        case ("interactive", false, "difffilter"): return "interactive.diffFilter runs on git add -p"
        case ("filter", true, "clean"), ("filter", true, "smudge"), ("filter", true, "process"):
            return "\(e.key) runs on git status, add and checkout"
        case ("merge", true, "driver"): return "\(e.key) runs on git merge"
        case ("credential", _, "helper"): return "\(e.key) runs when git needs credentials"
        case ("alias", _, _):
            guard let v, v.drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("!") else { return nil }
            return "alias \(e.name) runs a shell command on git \(e.name)"
        case ("include", false, "path"), ("includeif", true, "path"):
            return "\(e.key) makes git read another config file (\(v ?? ""))"
        case ("submodule", true, "update"):
            guard let v, v.hasPrefix("!") else { return nil }
            return "\(e.key) runs on git submodule update"
        case ("remote", true, "uploadpack"), ("remote", true, "receivepack"):
            return "\(e.key) runs on git fetch or push"
        case ("uploadpack", false, "packobjectshook"): return "uploadpack.packObjectsHook runs on fetch from here"
        case ("sendemail", _, "smtpserver"), ("sendemail", _, "tocmd"), ("sendemail", _, "cccmd"):
            return "\(e.key) runs on git send-email"
        case ("protocol", _, "allow"):
            return v?.lowercased() == "always" ? "\(e.key) = always lets remotes run commands (ext::)" : nil
        case ("hook", true, "command"): return "\(e.key) runs as a hook"
        default: break
        }
        switch e.name {
        case "command", "cmd", "program", "helper", "driver", "textconv", "clean", "smudge", "process",
             "editor", "askpass", "sshcommand", "hookspath", "fsmonitor":
            return "\(e.key) names a program git runs"
        case "path" where ["difftool", "mergetool", "man", "browser"].contains(e.section):
            return "\(e.key) names a program git runs"
        default: return nil
        }
    }

    /// Why this config file is dangerous, or nil: each risky key once, or the
    /// parse error (git would refuse such a file, and we cannot vouch for it).
    public static func configRisks(_ bytes: [UInt8]) -> String? {
        let config: GitConfig
        do { config = try GitConfig.parse(bytes) } catch {
            return "a git config agentpen cannot parse (\(error)); it may hide keys that run programs"
        }
        var reasons: [String] = []
        for e in config.entries {
            if let r = risk(of: e), !reasons.contains(r) { reasons.append(r) }
        }
        return reasons.isEmpty ? nil : reasons.prefix(4).joined(separator: "; ")
            + (reasons.count > 4 ? "; and \(reasons.count - 4) more" : "")
    }

    /// The project directory `core.hooksPath` names, if it lies inside the
    /// project: the last value across `configs` (given in git's order) wins; `~/`
    /// is the home, a relative path is relative to the project (the worktree
    /// root, where git runs hooks). Unparseable files are skipped: git would
    /// refuse to run with them.
    public static func hooksDirsInProject(configs: [[UInt8]], project: String, home: String) -> [String] {
        var value: String?
        for c in configs {
            guard let parsed = try? GitConfig.parse(c) else { continue }
            for e in parsed.entries where e.section == "core" && e.subsection == nil && e.name == "hookspath" {
                value = e.value
            }
        }
        guard var v = value, !v.isEmpty else { return [] }
        if v.hasPrefix("~/") { v = home + v.dropFirst(1) }
        let abs = Paths.join(project, v)
        guard Paths.isWithin(abs, project), abs != Paths.normalize(project) else { return [] }
        return [abs]
    }

    // MARK: decisions

    /// Where a git dir is, which decides how its `commondir` is read.
    public enum GitDirPlace: Sendable, Equatable {
        /// The project's own `.git`, the same directory as before the run.
        case projectGit
        /// `.git/worktrees/NAME` or the worktree's own git dir outside the project.
        case worktree
        /// Any other: nested, `.git/modules/*`, bare, or a new project `.git`.
        case other
    }

    /// What to do with a file the run created or changed (the caller has
    /// decided attribution). `content` is the file's first bytes where the role
    /// reads content (configs, commondir, VS Code files); `isRegular` false for
    /// a symlink or special file.
    public static func decide(role: Role, place: GitDirPlace, isRegular: Bool, content: [UInt8]) -> (Action, String)? {
        switch role {
        case .gitConfig:
            if place == .projectGit && !isRegular { return (.quarantine, "a git config that is not a regular file") }
            if !isRegular { return (.quarantine, "a git config that is a symlink or special file; git would follow it") }
            guard let r = configRisks(content) else { return nil }
            return (.quarantine, r)
        case .hook(let name):
            return (.quarantine, "a git hook: git runs it on \(hookEvent(name))")
        case .hooksLink:
            return (.quarantine, "hooks is not a plain directory; git would run hooks from where it points")
        case .commondir:
            if place == .worktree, isRegular,
               String(decoding: content, as: UTF8.self).trimmingWhitespace() == "../.." { return nil }
            return (.quarantine, "commondir points git at another repository's config and hooks")
        case .gitLink:
            return (.quarantine, "a .git link pointing git at a repository outside the project")
        case .envrc:
            return (.report, "direnv runs it on cd into its directory")
        case .miseConfig:
            return (.report, "mise runs its hooks and env commands on cd into its directory")
        case .activation:
            return (.report, "runs in your shell when you activate the environment")
        case .vscodeTasks:
            let text = String(decoding: content, as: UTF8.self).lowercased()
            if text.contains("folderopen") || text.contains("\\u") {
                return (.report, "VS Code runs its tasks with runOn: folderOpen when the folder is opened")
            }
            return (.report, "VS Code tasks: commands the editor runs")
        case .vscodeSettings:
            return (.report, "VS Code settings can name programs the editor and its extensions run")
        }
    }

    /// For a finding in the project's own `.git`: the redirects are removed (as
    /// before the audit existed), never moved.
    public static func projectGitRedirect(_ name: String) -> Bool { name == "commondir" || name == "config.worktree" }

    static func hookEvent(_ name: String) -> String {
        switch name {
        case "pre-commit", "prepare-commit-msg", "commit-msg", "post-commit": return "git commit"
        case "post-checkout": return "git checkout, switch and clone"
        case "post-merge": return "git merge and pull"
        case "pre-push": return "git push"
        case "pre-rebase", "post-rewrite": return "git rebase and commit --amend"
        case "reference-transaction": return "every ref update (commit, branch, checkout -b, fetch)"
        case "fsmonitor-watchman": return "git status (with core.fsmonitor)"
        case "post-index-change": return "git status, add and checkout"
        case "pre-auto-gc": return "git gc --auto (after commits and fetches)"
        default: return "git events named \(name)"
        }
    }

    /// Hook names git may run: any file in hooks/ but the shipped samples.
    public static func isHookName(_ name: String) -> Bool {
        !name.hasSuffix(".sample") && !isQuarantined(name) && name != "." && name != ".."
    }

    /// The target of a `.git` file ("gitdir: PATH"), or nil if it has none.
    public static func gitFileTarget(_ content: [UInt8]) -> String? {
        let text = String(decoding: content, as: UTF8.self)
        guard let line = text.split(separator: "\n", omittingEmptySubsequences: false).first,
              line.hasPrefix("gitdir:") else { return nil }
        let t = String(line.dropFirst("gitdir:".count)).trimmingWhitespace()
        return t.isEmpty ? nil : t
    }

    /// A link target resolved against the directory holding the link, as
    /// components below the project root; nil when it leaves the project.
    public static func componentsInside(project: String, linkDir: String, target: String) -> [String]? {
        let abs = Paths.join(linkDir, target)
        guard Paths.isWithin(abs, project) else { return nil }
        let rest = abs.dropFirst(project.count)
        return rest.split(separator: "/").map(String.init)
    }

    /// Another run on this project: when it started, and when it ended (nil
    /// while it is still active).
    public struct RunWindow: Sendable, Equatable {
        public var start: Timestamp
        public var end: Timestamp?
        public init(start: Timestamp, end: Timestamp? = nil) { self.start = start; self.end = end }
    }

    public static let overlapCaveat = "another agentpen run on this project was active at the same time; the change may be that run's"

    /// The caveat a finding gets when another run was active at its ctime and
    /// this run's ledger does not show it wrote the file.
    public static func overlapNote(findingCtime: Timestamp, others: [RunWindow], wroteIt: Bool = false) -> String? {
        guard !wroteIt, others.contains(where: { findingCtime >= $0.start && $0.end.map { findingCtime <= $0 } ?? true })
        else { return nil }
        return overlapCaveat
    }

    /// A name another run's audit gave a file it moved aside: the name it had,
    /// or nil when the name is no quarantine name or this run's own.
    public static func quarantinedByOther(_ name: String, runID: String) -> String? {
        let n = Array(name.utf8), m = Array(quarantineMarker.utf8)
        guard n.count > m.count,
              let at = (1...(n.count - m.count)).first(where: { n[$0..<($0 + m.count)].elementsEqual(m) }) else { return nil }
        let rest = String(decoding: n[(at + m.count)...], as: UTF8.self)
        if rest == runID || rest.hasPrefix(runID + "-") { return nil }
        return String(decoding: n[..<at], as: UTF8.self)
    }

    /// Why a file another run moved aside during this run is listed here: that
    /// run could not prove it its own, so this run may have planted it.
    public static func movedByOtherReason(original: String) -> String {
        "moved aside from \(original) by another agentpen run's audit, which could not prove it planted it; \(overlapCaveat), or this run's"
    }

    // MARK: the plan

    /// The plan's git dirs (`SandboxPlan.gitDirs`) split for the audit: those
    /// inside the project (with the project's `.git`) are the guarded ones, whose
    /// own entries the run may legitimately change; those outside (a worktree's
    /// own git dir, its parent's) are audited in place.
    public static func splitGitDirs(_ planned: [String], project: String) -> (guarded: [String], outside: [String]) {
        var guarded = [project + "/.git"], outside: [String] = []
        for d in planned {
            if Paths.isWithin(d, project) { if !guarded.contains(d) { guarded.append(d) } }
            else if !outside.contains(d) { outside.append(d) }
        }
        return (guarded, outside)
    }

}

extension PersistenceAudit {
    /// Why a file that `agentpen apply` brings into the project runs later
    /// (a shell on cd, an editor on open), by the project-file rules of the
    /// persistence audit; nil for an ordinary file. `rel` is the path relative
    /// to the project, `projectName` the project directory's own name (the
    /// directory a top-level file is in), `content` the file's first bytes.
    public static func appliedFileReason(_ rel: String, projectName: String, isRegular: Bool, content: [UInt8]) -> String? {
        let parts = rel.split(separator: "/").map(String.init)
        guard let name = parts.last else { return nil }
        let dirs = [projectName] + parts.dropLast()
        let dirName = dirs[dirs.count - 1]
        let parentName = dirs.count >= 2 ? dirs[dirs.count - 2] : ""
        guard let role = projectFileRole(name, dirName: dirName, parentName: parentName) else { return nil }
        return decide(role: role, place: .other, isRegular: isRegular, content: content)?.1
    }
}
