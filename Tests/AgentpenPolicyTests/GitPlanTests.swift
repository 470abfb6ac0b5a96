import Testing
@testable import AgentpenPolicy

/// What the git guards take from the project (`.git` files, `gitdir:`,
/// `commondir`, symlinks) is validated: nothing outside the project is bound
/// except a verified parent repository of a worktree or the git dir of a
/// verified submodule checkout, and every guarded git dir is pinned (bound onto
/// itself) before the read-only binds inside it.
@Suite struct GitPlanTests {
    static let p = "/home/u/src/p"
    /// debianLike without the project's `.git`.
    static var base: [String: FakeFS.Node] {
        debianLike.filter { !$0.key.hasPrefix(p + "/.git") }.merging([p + "/README": .file("", exec: false)]) { $1 }
    }
    /// A real repository's git dir at `dir`.
    static func gitDir(_ dir: String, config: String = "") -> [String: FakeFS.Node] {
        [dir + "/HEAD": .file("ref: refs/heads/main\n", exec: false), dir + "/config": .file(config, exec: false),
         dir + "/objects/pack": .dir, dir + "/refs/heads": .dir, dir + "/hooks/pre-commit.sample": .file("", exec: false)]
    }
    /// A genuine worktree: the project is a linked worktree of /home/u/src/main.
    static let main = "/home/u/src/main/.git"
    static let own = main + "/worktrees/p"
    static var worktree: [String: FakeFS.Node] {
        base.merging(gitDir(main)) { $1 }.merging([
            p + "/.git": .file("gitdir: \(own)\n", exec: false),
            own + "/HEAD": .file("ref: refs/heads/wt\n", exec: false),
            own + "/commondir": .file("../..\n", exec: false),
            own + "/gitdir": .file(p + "/.git\n", exec: false),
        ]) { $1 }
    }
    /// A genuine submodule checkout: the project is /home/u/src/sup/lib.
    static let sub = "/home/u/src/sup/lib"
    static let subGit = "/home/u/src/sup/.git/modules/lib"
    static var submodule: [String: FakeFS.Node] {
        base.merging(gitDir("/home/u/src/sup/.git")) { $1 }.merging(gitDir(subGit, config: "[core]\n\tbare = false\n\tworktree = ../../../lib\n")) { $1 }
            .merging([sub + "/.git": .file("gitdir: ../.git/modules/lib\n", exec: false),
                      sub + "/f": .file("", exec: false)]) { $1 }
    }

    static func refusal(_ nodes: [String: FakeFS.Node], project: String = p,
                        _ args: [String] = ["--", "/bin/sh"]) -> PlanError? {
        do { _ = try plan(args, fs: FakeFS(nodes), project: project); return nil } catch let e as PlanError {
            return e
        } catch { return nil }
    }

    /// Where `path` is bound onto itself (by name or from a descriptor) in `args`.
    static func position(readOnly: Bool, _ path: String, in args: [BwrapArgument]) -> Int? {
        args.firstIndex { $0 == .bind(source: path, destination: path, readOnly: readOnly) || $0 == .bindOpened(path, readOnly: readOnly) }
    }

    // MARK: `.git` files pointing outside the project

    @Test(arguments: ["/home/u", "/home", "/", "/etc", "../..", "../../..", "/home/u/src/other", "/home/u/src/other/.git",
                      "/nonexistent"])
    func gitdirOutsideTheProjectIsRefused(_ target: String) throws {
        var nodes = Self.base
        nodes[Self.p + "/.git"] = .file("gitdir: \(target)\n", exec: false)
        nodes.merge(Self.gitDir("/home/u/src/other/.git")) { $1 }
        let refused = Self.refusal(nodes)
        let e = try #require(refused, "gitdir: \(target) was planned")
        #expect(e.isUsage)
        #expect(e.message.hasPrefix("refusing \(Self.p)/.git: "), "\(e.message)")
        #expect(e.message.contains("(gitdir: \(target))"), "\(e.message)")
    }

    @Test func homeIsNamedInTheRefusal() throws {
        var nodes = Self.base
        nodes[Self.p + "/.git"] = .file("gitdir: /home/u\n", exec: false)
        let refused = Self.refusal(nodes)
        let e = try #require(refused)
        #expect(e.message.contains("it points git at /home/u (gitdir: /home/u)"), "\(e.message)")
        #expect(e.message.hasSuffix("remove or fix it"), "\(e.message)")
    }

    /// HOME may name the home through a symlink; its real path is refused too.
    @Test func realPathOfASymlinkedHomeIsRefused() throws {
        var nodes = Self.base.filter { !$0.key.hasPrefix("/home/u") }
        for (k, v) in Self.base where k.hasPrefix("/home/u/") { nodes["/var/home/u/" + k.dropFirst("/home/u/".count)] = v }
        nodes["/home"] = .link("var/home")
        nodes["/var/home/u/src/p/.git"] = .file("gitdir: /var/home/u\n", exec: false)
        let refused = Self.refusal(nodes, project: "/var/home/u/src/p")
        let e = try #require(refused)
        #expect(e.message.contains("which is your home directory"), "\(e.message)")
    }

    @Test func gitFileWithoutGitdirIsRefused() throws {
        var nodes = Self.base
        nodes[Self.p + "/.git"] = .file("hello\n", exec: false)
        #expect(Self.refusal(nodes)?.isUsage == true)
    }

    @Test func fakeWorktreesAreRefused() throws {
        var missingBackPointer = Self.worktree
        missingBackPointer[Self.own + "/gitdir"] = nil
        var elsewhere = Self.worktree
        elsewhere[Self.own + "/gitdir"] = .file("/home/u/src/other/.git\n", exec: false)
        var notARepository = Self.worktree
        notARepository = notARepository.filter { !$0.key.hasPrefix(Self.main + "/objects") }
        var commondirToHome = Self.worktree
        commondirToHome[Self.own + "/commondir"] = .file("/home/u\n", exec: false)
        var commondirElsewhere = Self.worktree.merging(Self.gitDir("/home/u/src/evil/.git")) { $1 }
        commondirElsewhere[Self.own + "/commondir"] = .file("../../../../evil/.git\n", exec: false)
        var noCommondir = Self.worktree
        noCommondir[Self.own + "/commondir"] = nil
        var throughAProjectSymlink = Self.worktree
        throughAProjectSymlink[Self.p + "/lnk"] = .link("/home/u/src/main/.git")
        throughAProjectSymlink[Self.p + "/.git"] = .file("gitdir: \(Self.p)/lnk/worktrees/p\n", exec: false)
        for (name, nodes) in [("missing back-pointer", missingBackPointer), ("back-pointer elsewhere", elsewhere),
                              ("parent not a repository", notARepository), ("commondir to home", commondirToHome),
                              ("commondir elsewhere", commondirElsewhere), ("no commondir", noCommondir),
                              ("through a symlink in the project", throughAProjectSymlink)] {
            let e = Self.refusal(nodes)
            #expect(e?.isUsage == true, "\(name) was planned")
            #expect(e?.message.contains(Self.p + "/.git") == true, "\(name): \(e?.message ?? "")")
        }
    }

    @Test func commondirToHomeIsNamed() throws {
        var nodes = Self.worktree
        nodes[Self.own + "/commondir"] = .file("/home/u\n", exec: false)
        let refused = Self.refusal(nodes)
        let e = try #require(refused)
        #expect(e.message.contains("commondir"), "\(e.message)")
        #expect(e.message.contains("/home/u"), "\(e.message)")
    }

    // MARK: symlinks where a guard belongs

    @Test(arguments: ["/home/u", "/home/u/src/other", "realgit"])
    func dotGitSymlinkIsRefused(_ target: String) throws {
        var nodes = Self.base.merging(Self.gitDir(Self.p + "/realgit")) { $1 }.merging(Self.gitDir("/home/u/src/other")) { $1 }
        nodes[Self.p + "/.git"] = .link(target)
        let refused = Self.refusal(nodes)
        let e = try #require(refused, ".git -> \(target) was planned")
        #expect(e.isUsage)
        #expect(e.message.hasPrefix("refusing \(Self.p)/.git: it is a symlink (to \(target))"), "\(e.message)")
    }

    @Test(arguments: [
        (".git/hooks", "../../../.ssh"), (".git/config", "../../.."), (".git/hooks", "/home/u/.ssh"),
        (".git/modules/x/config", "/home/u/.ssh/id"), (".git/modules/x/hooks", "../../../../../.ssh"),
        (".git/modules/x", "/home/u/.ssh"), (".git/modules", "../../.."), (".git/modules/a/b", "/home/u"),
        (".git/worktrees/w", "/home/u"), (".git/worktrees/w/commondir", "/home/u/.ssh/id"),
        (".git/config.worktree", "../../../.bashrc"),
    ])
    func symlinkedGuardIsRefused(_ path: String, _ target: String) throws {
        var nodes = Self.base.merging(Self.gitDir(Self.p + "/.git")) { $1 }
        nodes.merge(Self.gitDir(Self.p + "/.git/modules/x")) { $1 }
        nodes[Self.p + "/.git/modules/a/b/HEAD"] = .file("", exec: false)
        nodes[Self.p + "/.git/worktrees/w/commondir"] = .file("../..\n", exec: false)
        nodes = nodes.filter { !$0.key.hasPrefix(Self.p + "/" + path + "/") }
        nodes[Self.p + "/" + path] = .link(target)
        let refused = Self.refusal(nodes)
        let e = try #require(refused, "\(path) -> \(target) was planned")
        #expect(e.isUsage)
        #expect(e.message.hasPrefix("refusing \(Self.p)/\(path): it is a symlink (to \(target))"), "\(e.message)")
    }

    @Test func mainGitDirWithCommondirIsRefused() throws {
        var nodes = Self.base.merging(Self.gitDir(Self.p + "/.git")) { $1 }
        nodes[Self.p + "/.git/commondir"] = .file("/home/u\n", exec: false)
        let refused = Self.refusal(nodes)
        let e = try #require(refused)
        #expect(e.message.hasPrefix("refusing \(Self.p)/.git/commondir: "), "\(e.message)")
    }

    // MARK: what is still planned

    @Test func projectGitDirIsPinnedBeforeItsGuards() throws {
        var nodes = Self.base.merging(Self.gitDir(Self.p + "/.git")) { $1 }
        nodes.merge(Self.gitDir(Self.p + "/.git/modules/lib")) { $1 }
        nodes.merge(Self.gitDir(Self.p + "/.git/modules/vendor/x")) { $1 }
        nodes[Self.p + "/.git/worktrees/w/commondir"] = .file("../..\n", exec: false)
        nodes[Self.p + "/.git/worktrees/w/gitdir"] = .file("/home/u/src/w/.git\n", exec: false)
        let plan = try plan(["--", "/bin/sh"], fs: FakeFS(nodes))
        let a = plan.bwrap
        let git = Self.p + "/.git"
        let project = try #require(Self.position(readOnly: false, Self.p, in: a))
        let pin = try #require(Self.position(readOnly: false, git, in: a), "\(git) not pinned")
        #expect(project < pin)
        for guarded in [git + "/hooks", git + "/config"] {
            let ro = try #require(Self.position(readOnly: true, guarded, in: a), "\(guarded) not read-only")
            #expect(pin < ro)
        }
        for module in [git + "/modules/lib", git + "/modules/vendor/x"] {
            let modulePin = try #require(Self.position(readOnly: false, module, in: a), "\(module) not pinned")
            #expect(pin < modulePin)
            for g in ["hooks", "config"] {
                let ro = try #require(Self.position(readOnly: true, module + "/" + g, in: a))
                #expect(modulePin < ro)
            }
        }
        // The directories holding guarded git dirs are pinned too: renaming one
        // would carry the guards inside it away.
        for holder in [git + "/modules", git + "/modules/vendor", git + "/worktrees"] {
            let holderPin = try #require(Self.position(readOnly: false, holder, in: a), "\(holder) not pinned")
            #expect(pin < holderPin)
        }
        #expect(try #require(Self.position(readOnly: false, git + "/modules/vendor", in: a))
                < (try #require(Self.position(readOnly: false, git + "/modules/vendor/x", in: a))))
        let w = git + "/worktrees/w"
        let wPin = try #require(Self.position(readOnly: false, w, in: a), "\(w) not pinned")
        let wCommon = try #require(Self.position(readOnly: true, w + "/commondir", in: a))
        #expect(wPin < wCommon)
        #expect(plan.gitDirs == [git, git + "/modules/lib", git + "/modules/vendor/x", w])
    }

    @Test func genuineWorktreeIsPlanned() throws {
        let fs = FakeFS(Self.worktree)
        let locked = try plan(["--", "/bin/sh"], fs: fs)
        let a = locked.bwrap
        let dotGit = try #require(Self.position(readOnly: true, Self.p + "/.git", in: a), ".git file not pinned read-only")
        let parent = try #require(Self.position(readOnly: true, Self.main, in: a))
        let own = try #require(Self.position(readOnly: false, Self.own, in: a))
        #expect(try #require(Self.position(readOnly: false, Self.p, in: a)) < dotGit)
        #expect(parent < own)
        // The parent is read-only as a whole; the worktree's own dir is writable but
        // its commondir (which redirects git's config) is not.
        let commondir = try #require(Self.position(readOnly: true, Self.own + "/commondir", in: a))
        #expect(own < commondir)
        // A missing config.worktree is created empty and bound read-only.
        #expect(locked.createBeforeRun.contains(.emptyFile(Self.own + "/config.worktree")))
        #expect(try #require(Self.position(readOnly: true, Self.own + "/config.worktree", in: a)) > own)
        #expect(Self.position(readOnly: false, Self.main, in: a) == nil)
        #expect(locked.gitDirs == [Self.own, Self.main])
        #expect(locked.writable.contains(Self.own))
        #expect(!locked.writable.contains(Self.main))

        let open = try plan(["--allow-parent-git", "--", "/bin/sh"], fs: fs)
        let b = open.bwrap
        #expect(Self.position(readOnly: false, Self.main, in: b) != nil)
        #expect(Self.position(readOnly: true, Self.main + "/hooks", in: b) != nil)
        #expect(Self.position(readOnly: true, Self.own + "/commondir", in: b) != nil)
        #expect(open.writable.contains(Self.main))
    }

    /// A symlink outside the project (the user's own) on the way to the parent is
    /// resolved: the real paths are verified and bound.
    @Test func symlinkedPathToTheParentBindsTheRealPath() throws {
        var nodes = Self.worktree
        nodes["/home/u/repos"] = .link("src")
        nodes[Self.p + "/.git"] = .file("gitdir: /home/u/repos/main/.git/worktrees/p\n", exec: false)
        let plan = try plan(["--", "/bin/sh"], fs: FakeFS(nodes))
        #expect(plan.gitDirs == [Self.own, Self.main])
        #expect(!plan.bwrap.contains { $0.paths.contains { $0.hasPrefix("/home/u/repos") } })
    }

    /// A linked worktree's submodules live in its own git dir.
    @Test func submodulesOfTheWorktreeAreGuarded() throws {
        let nodes = Self.worktree.merging(Self.gitDir(Self.own + "/modules/lib")) { $1 }
        let plan = try plan(["--", "/bin/sh"], fs: FakeFS(nodes))
        let a = plan.bwrap
        let own = try #require(Self.position(readOnly: false, Self.own, in: a))
        let pin = try #require(Self.position(readOnly: false, Self.own + "/modules/lib", in: a))
        #expect(own < pin)
        for g in ["hooks", "config"] {
            #expect(try #require(Self.position(readOnly: true, Self.own + "/modules/lib/" + g, in: a)) > pin)
        }
        #expect(plan.gitDirs == [Self.own, Self.main, Self.own + "/modules/lib"])
    }

    /// The host paths the sandbox can write include git dirs bound from a
    /// descriptor (`--bind-fd`): a log or an AGENTPEN_* program there is refused.
    @Test func descriptorBindsCountAsHostWritable() throws {
        let fs = FakeFS(Self.worktree)
        let locked = try plan(["--", "/bin/sh"], fs: fs)
        #expect(locked.hostWritable.contains(Self.own), "\(locked.hostWritable)")
        #expect(!locked.hostWritable.contains(Self.main))
        let open = try plan(["--allow-parent-git", "--", "/bin/sh"], fs: fs)
        #expect(open.hostWritable.contains(Self.main), "\(open.hostWritable)")
        #expect(WritableSet(open.hostWritable, fs: fs).container(of: Self.main + "/agentpen.log") == Self.main)
    }

    @Test func worktreeWithRelativeBackPointerAndConfigWorktree() throws {
        var nodes = Self.worktree
        nodes[Self.own + "/gitdir"] = .file("../../../../p/.git\n", exec: false)
        nodes[Self.own + "/config.worktree"] = .file("", exec: false)
        let a = try plan(["--", "/bin/sh"], fs: FakeFS(nodes)).bwrap
        #expect(Self.position(readOnly: true, Self.own + "/config.worktree", in: a) != nil)
    }

    @Test func genuineSubmoduleCheckoutIsPlanned() throws {
        let plan = try plan(["--", "/bin/sh"], fs: FakeFS(Self.submodule), project: Self.sub)
        let a = plan.bwrap
        #expect(Self.position(readOnly: true, Self.sub + "/.git", in: a) != nil)
        let pin = try #require(Self.position(readOnly: false, Self.subGit, in: a))
        for g in ["hooks", "config"] {
            let ro = try #require(Self.position(readOnly: true, Self.subGit + "/" + g, in: a))
            #expect(pin < ro)
        }
        #expect(!a.contains { $0.paths.contains("/home/u/src/sup/.git") })
        #expect(plan.gitDirs == [Self.subGit])
        #expect(plan.writable.contains(Self.subGit))
    }

    @Test func submoduleCheckoutMustPointBack() throws {
        var elsewhere = Self.submodule
        elsewhere[Self.subGit + "/config"] = .file("[core]\n\tworktree = ../../../other\n", exec: false)
        var none = Self.submodule
        none[Self.subGit + "/config"] = .file("[core]\n\tbare = false\n[x]\n\tworktree = ../../../lib\n", exec: false)
        var notInModules = Self.submodule.merging(Self.gitDir("/home/u/src/loose", config: "[core]\nworktree = /home/u/src/sup/lib\n")) { $1 }
        notInModules[Self.sub + "/.git"] = .file("gitdir: /home/u/src/loose\n", exec: false)
        for (name, nodes) in [("worktree elsewhere", elsewhere), ("no core.worktree", none), ("not in modules", notInModules)] {
            #expect(Self.refusal(nodes, project: Self.sub)?.isUsage == true, "\(name) was planned")
        }
        let e = Self.refusal(elsewhere, project: Self.sub)
        #expect(e?.message.contains("core.worktree") == true, "\(e?.message ?? "")")
    }

    @Test func gitdirInsideTheProjectIsGuardedThere() throws {
        var nodes = Self.base.merging(Self.gitDir(Self.p + "/.gitdata")) { $1 }
        nodes[Self.p + "/.git"] = .file("gitdir: .gitdata\n", exec: false)
        let plan = try plan(["--", "/bin/sh"], fs: FakeFS(nodes))
        let a = plan.bwrap
        #expect(Self.position(readOnly: true, Self.p + "/.git", in: a) != nil)
        let pin = try #require(Self.position(readOnly: false, Self.p + "/.gitdata", in: a))
        let ro = try #require(Self.position(readOnly: true, Self.p + "/.gitdata/hooks", in: a))
        #expect(pin < ro)
        #expect(plan.gitDirs == [Self.p + "/.gitdata"])
    }

    /// Every git bind comes from a descriptor the runner opens without following
    /// symlinks, numbered apart from the generated files and the seccomp program.
    @Test func gitBindsUseDescriptors() throws {
        for (nodes, project) in [(Self.worktree, Self.p), (Self.submodule, Self.sub)] {
            let plan = try plan(["--allow-parent-git", "--", "/bin/sh"], fs: FakeFS(nodes), project: project)
            let a = plan.bwrapArgs
            var fromArgs: [PathFD] = []
            for i in a.indices where a[i] == "--bind-fd" || a[i] == "--ro-bind-fd" {
                fromArgs.append(PathFD(fd: try #require(Int32(a[i + 1])), path: a[i + 2]))
            }
            #expect(!fromArgs.isEmpty)
            #expect(fromArgs == plan.pathFDs)
            let others = plan.dataFiles.map(\.fd) + [plan.seccompFD]
            #expect(Set(plan.pathFDs.map(\.fd)).count == plan.pathFDs.count)
            #expect(plan.pathFDs.allSatisfy { !others.contains($0.fd) && $0.fd > 9 })
            // No git path is bound by name (which would follow a symlink swapped in).
            #expect(!plan.bwrap.contains { if case .bind(let s, _, _) = $0 { s.contains("/.git") } else { false } })
            for flag in ["--bind", "--ro-bind"] {
                #expect(!occurrences(flag, in: a, width: 1).contains { $0[0].contains("/.git") }, "\(flag) by path")
            }
        }
    }

    /// core.worktree as git reads it: sections and keys case-insensitive, the
    /// last value wins, quotes and comments, subsections are other sections.
    @Test func coreWorktreeIsReadLikeGit() {
        let text = """
            [core]
            \tworktree = ../first
            [core "x"]
            \tworktree = ../subsection
            [remote.core]
            \tworktree = ../legacy-subsection
            [CORE]
            \tWorkTree = "../with space" ; a comment
            [user] name = x
            """
        #expect(GitConfig.value(section: "core", key: "worktree", in: text) == "../with space")
        #expect(GitConfig.value(section: "core", key: "worktree", in: "[core] worktree = ../inline # c\n") == "../inline")
        #expect(GitConfig.value(section: "core", key: "worktree", in: "[core]\n\tworktreex = a\n") == nil)
        #expect(GitConfig.value(section: "core", key: "worktree", in: "[core \"sub\"]\nworktree = a\n") == nil)
    }

    @Test func noRepositoryStillGetsAReadOnlyEmptyGitDir() throws {
        let plan = try plan(["--", "/bin/sh"], fs: FakeFS(Self.base))
        #expect(plan.createBeforeRun == [.transientMountPoint(Self.p + "/.git")])
        // /dev is remounted read-only too (the tmpfs bounds); the git guard is the other one.
        #expect(plan.remountedReadOnly == [Self.p + "/.git"])
        #expect(plan.gitDirs == [])
    }
}
