/// The persistence guards around the project's git metadata, planned from
/// project content that is as hostile as the agent: `.git` may be a directory,
/// a file naming any path, or a symlink; anything beneath it may be a symlink.
///
/// Invariants:
/// - Nothing outside the project is bound except the verified parent (common)
///   git dir of a worktree and that worktree's own git dir, or the verified git
///   dir of a submodule checkout. Never `/`, the home or an ancestor of it.
/// - No path is bound through a symlink: bubblewrap's `--ro-bind P P` follows a
///   link at P on the host *and* inside the new root, so `.git/config -> ../..`
///   would put the real home over the empty one. Every path handed to bubblewrap
///   is checked component by component (lstat through the view) or is the real
///   path that resolving produced.
/// - Each guarded git dir (and a worktree's `.git` file) is bound onto itself
///   before the read-only binds inside it: a mount point cannot be renamed
///   (EBUSY), so the guards cannot be carried aside.
/// - Every bind is made from a descriptor the runner opens without following
///   any symlink (`GitMount.bind` → `--bind-fd`), so a link swapped in between
///   planning and bubblewrap's mount cannot redirect it.
public struct GitGuardPlan: Sendable, Equatable {
    /// In order: a git dir's own bind comes before the binds inside it.
    public var mounts: [GitMount] = []
    public var notes: [String] = []
    public var create: [HostPrep] = []
    /// Every git dir guarded or bound, the one git uses for the project first.
    public var gitDirs: [String] = []
    /// Bound read-write outside the project (Landlock must allow writes there).
    public var writable: [String] = []
}

public enum GitMount: Sendable, Equatable {
    /// `path` bound onto itself.
    case bind(String, writable: Bool)
    /// No repository yet: an empty read-only directory, so `git init` cannot plant hooks.
    case emptyReadOnlyDir(String)

    /// Every bind from a descriptor the runner opens without following symlinks.
    var arguments: [BwrapArgument] {
        switch self {
        case .bind(let p, let writable): [.bindOpened(p, readOnly: !writable)]
        case .emptyReadOnlyDir(let p): [.tmpfs(p, size: nil, mode: 0o555), .remountReadOnly(p)]
        }
    }
}

extension GitGuardPlan {
    var arguments: [BwrapArgument] { mounts.flatMap(\.arguments) }
}

enum GitGuards {
    /// How deep `.git/modules` nests (submodule paths with slashes, submodules of submodules).
    static let maxModuleDepth = 6

    static func plan(project: String, home: String, allowParentGit: Bool,
                     fs: any FileSystemView) throws(PlanError) -> GitGuardPlan {
        var b = Builder(project: project, home: home, fs: fs)
        let dotGit = project + "/.git"
        switch fs.kind(dotGit) {
        case .missing:
            // No repository yet: an empty read-only .git, so `git init` cannot plant hooks.
            b.out.mounts.append(.emptyReadOnlyDir(dotGit))
            b.out.create.append(.transientMountPoint(dotGit))
            b.out.notes.append("persistence guard: no .git yet; \(dotGit) is an empty read-only directory")
        case .directory:
            try b.guardRepository(dotGit, depth: 0)
        case .file:
            try b.planGitFile(dotGit, allowParentGit: allowParentGit)
        case .symlink:
            // A symlink cannot be pinned: the agent could point it elsewhere for the user's next git.
            throw b.symlink(dotGit, "a .git directory or a .git file (gitdir: PATH)")
        case .other:
            throw refuse(dotGit, "it is neither a directory nor a file")
        }
        return b.out
    }

    static func refuse(_ path: String, _ why: String) -> PlanError {
        PlanError(.usage, "refusing \(path): \(why); remove or fix it")
    }

    struct Builder {
        let project: String
        let home: String
        let fs: any FileSystemView
        /// The home as given and as resolved (HOME may name it through a symlink).
        var homes: [String] = []
        var out = GitGuardPlan()

        init(project: String, home: String, fs: any FileSystemView) {
            self.project = project; self.home = home; self.fs = fs
            homes = [home] + [resolve(home)?.real].compactMap { $0 }.filter { $0 != home }
        }

        /// `dir` is the home or an ancestor of it.
        func holdsHome(_ dir: String) -> Bool { homes.contains { Paths.isWithin($0, dir) } }

        func symlink(_ path: String, _ expected: String) -> PlanError {
            let target = fs.readLink(path) ?? "?"
            return PlanError(.usage, "refusing \(path): it is a symlink (to \(target)) where agentpen binds \(expected), and a bind would follow it; replace it with the real one")
        }

        /// The first line of a small file, trimmed; nil when it is not a regular file.
        func firstLine(_ path: String) -> String? {
            guard fs.kind(path) == .file else { return nil }
            let text = String(decoding: fs.head(path, bytes: 4096), as: UTF8.self)
            return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "").trimmingWhitespace()
        }

        /// A directory git would accept as a repository: HEAD, objects/ and refs/,
        /// none of them a symlink.
        func isRealGitDir(_ dir: String) -> Bool {
            fs.kind(dir) == .directory && fs.kind(dir + "/HEAD") == .file
                && fs.kind(dir + "/objects") == .directory && fs.kind(dir + "/refs") == .directory
        }

        /// Resolves `path` the way the kernel does (a `..` after a symlink
        /// climbs from the link's target, not lexically), through the view.
        /// Returns the real path and the symlinks followed; nil when a
        /// component is missing or the chain is too long.
        func resolve(_ path: String) -> (real: String, links: [String])? {
            var pending = path.split(separator: "/").map(String.init)
            var done = "/"
            var links: [String] = []
            while !pending.isEmpty {
                let part = pending.removeFirst()
                if part == "." { continue }
                if part == ".." { done = Paths.parent(done); continue }
                let candidate = done == "/" ? "/" + part : done + "/" + part
                switch fs.kind(candidate) {
                case .missing: return nil
                case .symlink:
                    guard links.count < 40, let target = fs.readLink(candidate) else { return nil }
                    links.append(candidate)
                    if target.hasPrefix("/") { done = "/" }
                    pending = target.split(separator: "/").map(String.init) + pending
                default: done = candidate
                }
            }
            return (done, links)
        }

        /// `base` joined with a path read from a git file (absolute or relative to `base`).
        func named(_ value: String, from base: String) -> String {
            value.hasPrefix("/") ? value : base + "/" + value
        }

        /// `/`, the home or an ancestor of it, or a directory holding the project.
        func isForbidden(_ dir: String) -> Bool {
            dir == "/" || holdsHome(dir) || Paths.isWithin(project, dir)
        }

        /// Binds `path` read-only after checking it is no symlink; a missing
        /// guard is created first when `create` says how.
        mutating func readOnly(_ path: String, expected: String, create: HostPrep? = nil) throws(PlanError) {
            switch fs.kind(path) {
            case .symlink: throw symlink(path, expected)
            case .missing:
                guard let create else { return }
                out.create.append(create)
            default: break
            }
            out.mounts.append(.bind(path, writable: false))
            out.notes.append("persistence guard: \(path) read-only")
        }

        /// A git dir whose content the sandbox may change: pinned, hooks and
        /// config read-only, and the same for its submodules and worktrees.
        mutating func guardRepository(_ dir: String, depth: Int) throws(PlanError) {
            if fs.kind(dir + "/commondir") != .missing {
                let target = firstLine(dir + "/commondir") ?? "?"
                throw refuse(dir + "/commondir", "it points git's config and hooks at \(Paths.join(dir, target)) (commondir: \(target)), which only a worktree's git dir may do")
            }
            out.mounts.append(.bind(dir, writable: true))
            out.gitDirs.append(dir)
            out.notes.append("git dir \(dir) pinned (a mount point: it cannot be renamed aside)")
            try readOnly(dir + "/hooks", expected: "git's hooks directory", create: .directory(dir + "/hooks"))
            try readOnly(dir + "/config", expected: "git's config", create: .emptyFile(dir + "/config"))
            try readOnly(dir + "/config.worktree", expected: "git's worktree config")
            try guardModules(dir + "/modules", depth: depth)
            try guardWorktrees(of: dir, only: nil)
        }

        /// Submodule git dirs: `modules/NAME`, with slashes in NAME as directories.
        mutating func guardModules(_ dir: String, depth: Int) throws(PlanError) {
            switch fs.kind(dir) {
            case .symlink: throw symlink(dir, "git's modules directory")
            case .directory: break
            default: return
            }
            guard depth < GitGuards.maxModuleDepth else { return }
            // Pinned as well: renaming the directory would carry the guards inside away.
            out.mounts.append(.bind(dir, writable: true))
            for name in fs.list(dir).sorted() {
                let m = dir + "/" + name
                switch fs.kind(m) {
                case .symlink: throw symlink(m, "a submodule's git dir")
                case .directory:
                    if ["HEAD", "config", "objects", "refs"].contains(where: { fs.kind(m + "/" + $0) != .missing }) {
                        try guardRepository(m, depth: depth + 1)
                    } else {
                        try guardModules(m, depth: depth + 1)
                    }
                default: continue
                }
            }
        }

        /// A linked worktree's own git dir (`worktrees/NAME`): pinned and
        /// writable (its HEAD and index), but `commondir` and `config.worktree`,
        /// which redirect git's config, read-only, and its submodules' git dirs
        /// (`worktrees/NAME/modules`) guarded. `only` limits it to one.
        mutating func guardWorktrees(of common: String, only: String?) throws(PlanError) {
            let dir = common + "/worktrees"
            switch fs.kind(dir) {
            case .symlink: throw symlink(dir, "git's worktrees directory")
            case .directory: break
            default: return
            }
            // In a writable repository the directory itself is pinned too (in a
            // read-only parent nothing can be renamed).
            if only == nil { out.mounts.append(.bind(dir, writable: true)) }
            for name in fs.list(dir).sorted() where only == nil || only == name {
                let w = dir + "/" + name
                switch fs.kind(w) {
                case .symlink: throw symlink(w, "a worktree's git dir")
                case .directory: break
                default: continue
                }
                out.mounts.append(.bind(w, writable: true))
                out.gitDirs.append(w)
                out.notes.append("worktree git dir \(w) read-write, pinned")
                try readOnly(w + "/commondir", expected: "a worktree's commondir")
                // Created empty when missing: with extensions.worktreeConfig on, one
                // planted here would be read by the user's next git in that worktree.
                try readOnly(w + "/config.worktree", expected: "git's worktree config",
                             create: .emptyFile(w + "/config.worktree"))
                // A linked worktree's submodules keep their git dirs in its own.
                try guardModules(w + "/modules", depth: 0)
            }
        }

        /// `.git` is a file: `gitdir: PATH` names the git dir. Accepted when that
        /// lies inside the project, or is a verified worktree or submodule git dir.
        mutating func planGitFile(_ dotGit: String, allowParentGit: Bool) throws(PlanError) {
            guard let line = firstLine(dotGit), line.hasPrefix("gitdir:") else {
                throw refuse(dotGit, "a .git file must read `gitdir: PATH`")
            }
            let value = String(line.dropFirst("gitdir:".count)).trimmingWhitespace()
            let resolved = resolve(named(value, from: project))
            let shown = resolved?.real ?? Paths.join(project, value)
            func outside(_ why: String) -> PlanError {
                refuse(dotGit, "it points git at \(shown) (gitdir: \(value)), \(why)")
            }
            guard let (real, links) = resolved, fs.kind(real) == .directory else {
                throw outside("which is not a directory")
            }
            if let link = links.first(where: { Paths.isWithin($0, project) }) {
                throw outside("through the symlink \(link) in the project")
            }
            if real == "/" || holdsHome(real) {
                let what = homes.contains(real) ? "your home directory" : real == "/" ? "/" : "a directory holding your home"
                throw outside("which is \(what), outside the project and not a worktree of a repository")
            }
            // The .git file itself: read-only and pinned (the next git run reads it).
            out.mounts.append(.bind(dotGit, writable: false))
            out.notes.append("persistence guard: \(dotGit) read-only, pinned")
            if Paths.isWithin(real, project) {
                try guardRepository(real, depth: 0)
                return
            }
            if Paths.isWithin(project, real) {
                throw outside("which holds the project")
            }
            let worktree = verifyWorktree(real)
            if case .success(let common) = worktree {
                out.writable.append(real)
                if allowParentGit {
                    // Read-write, pinned, with its hooks, config, submodules and worktrees guarded.
                    try guardRepository(common, depth: 0)
                    out.writable.append(common)
                    out.notes.append("parent git dir \(common) read-write (--allow-parent-git)")
                } else {
                    out.mounts.append(.bind(common, writable: false))
                    out.gitDirs.append(common)
                    out.notes.append("parent git dir \(common) read-only (--allow-parent-git makes it writable)")
                    try guardWorktrees(of: common, only: Paths.basename(real))
                }
                // The worktree's own git dir is the one git uses for the project.
                out.gitDirs.removeAll { $0 == real }
                out.gitDirs.insert(real, at: 0)
                return
            }
            let submodule = verifySubmodule(real)
            if case .success = submodule {
                try guardRepository(real, depth: 0)
                out.writable.append(real)
                out.notes.append("submodule git dir \(real) read-write (core.worktree points back at the project)")
                return
            }
            var why = ""
            if case .failure(let w) = submodule { why = w.reason } else if case .failure(let w) = worktree { why = w.reason }
            throw outside("outside the project and not a worktree of a repository (\(why))")
        }

        struct NotVerified: Error { var reason: String }

        /// `gitDir` is `COMMON/worktrees/NAME` of a real repository COMMON, its
        /// `gitdir` file points back at this project's `.git`, and its
        /// `commondir` leads to COMMON. Returns COMMON.
        func verifyWorktree(_ gitDir: String) -> Result<String, NotVerified> {
            let worktrees = Paths.parent(gitDir)
            let common = Paths.parent(worktrees)
            guard Paths.basename(worktrees) == "worktrees", isRealGitDir(common) else {
                return .failure(NotVerified(reason: "it is not in the worktrees directory of a repository"))
            }
            guard !isForbidden(common) else {
                return .failure(NotVerified(reason: "its repository \(common) is / or holds your home directory or the project"))
            }
            guard let back = firstLine(gitDir + "/gitdir"), !back.isEmpty else {
                return .failure(NotVerified(reason: "\(gitDir)/gitdir does not point back at \(project)/.git"))
            }
            guard resolve(named(back, from: gitDir))?.real == project + "/.git" else {
                return .failure(NotVerified(reason: "\(gitDir)/gitdir points at \(back), not at \(project)/.git"))
            }
            guard let commondir = firstLine(gitDir + "/commondir"), !commondir.isEmpty else {
                return .failure(NotVerified(reason: "\(gitDir) has no commondir"))
            }
            guard resolve(named(commondir, from: gitDir))?.real == common else {
                return .failure(NotVerified(reason: "its commondir leads to \(Paths.join(gitDir, commondir)), not to \(common)"))
            }
            return .success(common)
        }

        /// `gitDir` lies in a real superproject's `modules/`, is itself a real
        /// git dir, and its `core.worktree` resolves back to the project.
        /// Nil when it is not in a superproject's `modules/` at all.
        func verifySubmodule(_ gitDir: String) -> Result<Void, NotVerified>? {
            var a = Paths.parent(gitDir)
            var inModules = false
            for _ in 0..<GitGuards.maxModuleDepth where a != "/" {
                if Paths.basename(a) == "modules" && isRealGitDir(Paths.parent(a)) { inModules = true; break }
                a = Paths.parent(a)
            }
            guard inModules else { return nil }
            guard isRealGitDir(gitDir), !isForbidden(gitDir) else {
                return .failure(NotVerified(reason: "the submodule git dir \(gitDir) is not a repository"))
            }
            let config = String(decoding: fs.head(gitDir + "/config", bytes: 65536), as: UTF8.self)
            guard fs.kind(gitDir + "/config") == .file,
                  let worktree = GitConfig.value(section: "core", key: "worktree", in: config),
                  resolve(named(worktree, from: gitDir))?.real == project
            else {
                return .failure(NotVerified(reason: "the core.worktree of the submodule git dir \(gitDir) does not lead back to the project"))
            }
            return .success(())
        }
    }
}
