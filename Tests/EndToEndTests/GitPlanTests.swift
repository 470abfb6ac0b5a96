import Foundation
import Testing

/// A hostile project's `.git` (a file, a symlink, symlinked hooks or config)
/// cannot make the plan bind the home, and the git guards cannot be renamed
/// aside from inside the sandbox.
@Suite struct GitPlanTests {
    /// The reading and writing a hostile project would try once the home is bound.
    static let probe = "cat ~/.ssh/id_ed25519; echo pwned >> ~/.bashrc; echo RAN"

    static func expectRefused(_ r: Agentpen.Result, _ f: Fixture, naming file: String,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 2, "status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains("refusing \(file)"), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stdout.contains("SECRET"), sourceLocation: sourceLocation)
        #expect(!r.stdout.contains("RAN"), sourceLocation: sourceLocation)
        #expect(f.read(f.home + "/.bashrc") == "# original bashrc\n", sourceLocation: sourceLocation)
    }

    /// The reproduction: a `.git` file shipped with the project reading
    /// `gitdir: $HOME` (or its parent, `/`, a relative way up, a plain directory).
    @Test(arguments: ["HOME", "../..", "PARENT", "/", "SIBLING"])
    func dotGitFilePointingOutOfTheProjectIsRefused(_ target: String) throws {
        let f = try Fixture()
        let value = ["HOME": f.home, "PARENT": f.root + "/home", "SIBLING": f.sibling][target] ?? target
        try FileManager.default.removeItem(atPath: f.project + "/.git")
        try f.write(f.project + "/.git", "gitdir: \(value)\n")
        let r = try f.sh(Self.probe)
        Self.expectRefused(r, f, naming: f.project + "/.git")
        #expect(r.stderr.contains("gitdir: \(value)"), "\(r.stderr)")
    }

    /// `--ro-bind P P` follows a symlink at P: a relative link to the home (or
    /// to ~/.ssh) would put the real directory over the empty home.
    @Test(arguments: [(".git/hooks", "../../../.ssh"), (".git/config", "../../.."), (".git", "../.."),
                      (".git/hooks", "HOME/.ssh")])
    func symlinkedGuardIsRefused(_ path: String, _ target: String) throws {
        let f = try Fixture()
        let link = f.project + "/" + path
        try FileManager.default.removeItem(atPath: link)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target.replacingOccurrences(of: "HOME", with: f.home))
        let r = try f.sh("cat ~/.ssh/id_ed25519 .git/hooks/id_ed25519 .git/config/.ssh/id_ed25519; echo pwned >> ~/.bashrc; echo RAN")
        Self.expectRefused(r, f, naming: link)
        #expect(r.stderr.contains("symlink"), "\(r.stderr)")
    }

    @Test func submoduleHooksSymlinkIsRefused() throws {
        let f = try Fixture()
        try Self.addSubmodule(f)
        let hooks = f.project + "/.git/modules/lib/hooks"
        try FileManager.default.removeItem(atPath: hooks)
        try FileManager.default.createSymbolicLink(atPath: hooks, withDestinationPath: "../../../../../.ssh")
        Self.expectRefused(try f.sh(Self.probe), f, naming: hooks)
    }

    /// Renaming `.git` aside would carry the read-only hooks and config binds
    /// with it; as a mount point it cannot be renamed. Offline and with the
    /// network stack (the bind descriptors pass through the namespace helper).
    @Test(arguments: [[], ["--allow", "unused.test"]])
    func gitDirCannotBeRenamedAside(_ flags: [String]) throws {
        let f = try Fixture()
        let r = try f.sh("""
            mv .git .git-aside 2>&1; test -e .git-aside && echo MOVED
            mv .git/hooks .git/hooks-aside 2>/dev/null && echo HOOKS-MOVED
            echo evil > .git/hooks/pre-commit && echo HOOK-WRITTEN
            git config core.fsmonitor 'touch /tmp/pwn' && echo CONFIG-WRITTEN
            echo hi > a.txt && git add a.txt && git -c user.email=a@b.c -c user.name=a commit -qm add && echo COMMITTED
            """, flags)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.lowercased().contains("busy"), "\(r.stdout) \(r.stderr)")
        for word in ["MOVED", "HOOKS-MOVED", "HOOK-WRITTEN", "CONFIG-WRITTEN"] {
            #expect(!r.stdout.contains(word + "\n"), "\(word): \(r.stdout)")
        }
        #expect(r.stdout.contains("COMMITTED"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git-aside"))
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/hooks/pre-commit"))
        #expect(try f.git(["log", "--format=%s", "-1"]).stdout == "add\n")
    }

    /// A real worktree: its `.git` file and its own git dir are pinned, the
    /// `.git` file and `commondir` are read-only, and git still works inside.
    @Test func worktreeGuardsCannotBeMovedAside() throws {
        let f = try Fixture()
        let wt = f.home + "/src/wt"
        try f.git(["worktree", "add", "-q", wt])
        let own = f.project + "/.git/worktrees/wt"
        let dotGit = f.read(wt + "/.git")
        let script = """
            mv .git .git-aside 2>&1; test -e .git-aside && echo MOVED
            mv \(own) \(own)-aside 2>&1; test -e \(own)-aside && echo OWN-MOVED
            echo 'gitdir: /tmp' > .git && echo DOTGIT-WRITTEN
            echo ../../evil > \(own)/commondir && echo COMMONDIR-WRITTEN
            echo evil > \(f.project)/.git/hooks/post-checkout && echo HOOK-WRITTEN
            git status --short >/dev/null && echo STATUS-OK
            echo hi > a.txt && git add a.txt && git -c user.email=a@b.c -c user.name=a commit -qm wt-commit && echo COMMITTED
            """
        let r = try f.agentpen(["--allow-parent-git", "--", "/bin/sh", "-c", script], cwd: wt)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.lowercased().contains("busy"), "\(r.stdout) \(r.stderr)")
        for word in ["MOVED", "OWN-MOVED", "DOTGIT-WRITTEN", "COMMONDIR-WRITTEN", "HOOK-WRITTEN"] {
            #expect(!r.stdout.contains(word + "\n"), "\(word): \(r.stdout)")
        }
        #expect(r.stdout.contains("STATUS-OK"), "\(r.stderr)")
        #expect(r.stdout.contains("COMMITTED"), "\(r.stderr)")
        #expect(f.read(wt + "/.git") == dotGit)
        #expect(f.read(own + "/commondir") == "../..\n")
        #expect(try f.git(["log", "--format=%s", "-1"], in: wt).stdout == "wt-commit\n")

        // Without --allow-parent-git the parent stays read-only, status still works.
        let locked = try f.agentpen(["--", "/bin/sh", "-c", "touch \(f.project)/.git/refs/heads/evil && echo PARENT-WRITTEN; git status --short >/dev/null && echo STATUS-OK"], cwd: wt)
        #expect(!locked.stdout.contains("PARENT-WRITTEN"))
        #expect(locked.stdout.contains("STATUS-OK"), "\(locked.stderr)")
    }

    /// The main checkout of a repository with a linked worktree: renaming
    /// `.git/worktrees` (or the worktree's dir in it) would let a fresh one with
    /// a planted commondir take over git in the other checkout.
    @Test func worktreesOfTheProjectCannotBeMovedAside() throws {
        let f = try Fixture()
        let wt = f.home + "/src/wt"
        try f.git(["worktree", "add", "-q", wt])
        let r = try f.sh("""
            mv .git/worktrees .git/worktrees-aside 2>&1; test -e .git/worktrees-aside && echo WORKTREES-MOVED
            mv .git/worktrees/wt .git/worktrees/wt-aside 2>&1; test -e .git/worktrees/wt-aside && echo WT-MOVED
            echo ../../../evil > .git/worktrees/wt/commondir && echo COMMONDIR-WRITTEN
            git worktree list >/dev/null && echo LIST-OK
            """)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.lowercased().contains("busy"), "\(r.stdout) \(r.stderr)")
        for word in ["WORKTREES-MOVED", "WT-MOVED", "COMMONDIR-WRITTEN"] {
            #expect(!r.stdout.contains(word + "\n"), "\(word): \(r.stdout)")
        }
        #expect(r.stdout.contains("LIST-OK"), "\(r.stderr)")
        #expect(f.read(f.project + "/.git/worktrees/wt/commondir") == "../..\n")
        try f.git(["status", "--short"], in: wt)
    }

    /// With extensions.worktreeConfig on, git reads the worktree's own
    /// config.worktree: one planted there would run core.fsmonitor on the
    /// user's next `git status` in the worktree. It is created empty and bound
    /// read-only before the run.
    @Test func worktreeConfigCannotBePlanted() throws {
        let f = try Fixture()
        let wt = f.home + "/src/wt"
        try f.git(["worktree", "add", "-q", wt])
        try f.git(["config", "extensions.worktreeConfig", "true"])
        let own = f.project + "/.git/worktrees/wt"
        let marker = f.root + "/fsmonitor-ran"
        let r = try f.agentpen(["--allow-parent-git", "--", "/bin/sh", "-c", """
            printf '[core]\\n\\tfsmonitor = touch \(marker)\\n' > \(own)/config.worktree && echo PLANTED
            git config --worktree core.fsmonitor 'touch \(marker)' && echo CONFIG-WRITTEN
            git status --short >/dev/null && echo STATUS-OK
            """], cwd: wt)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("PLANTED"), "\(r.stdout)")
        #expect(!r.stdout.contains("CONFIG-WRITTEN"), "\(r.stdout)")
        #expect(r.stdout.contains("STATUS-OK"), "\(r.stderr)")
        #expect((f.read(own + "/config.worktree") ?? "") == "")
        try f.git(["status", "--short"], in: wt)
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    /// A linked worktree keeps its submodules' git dirs in its own git dir
    /// (`worktrees/NAME/modules`), which is writable: their hooks and config
    /// must be guarded like the main checkout's.
    @Test func submodulesOfAWorktreeAreGuarded() throws {
        let f = try Fixture()
        try Self.addSubmodule(f)
        try f.git(["-c", "user.email=t@e.st", "-c", "user.name=t", "commit", "-qm", "add lib"])
        let wt = f.home + "/src/wt"
        try f.git(["worktree", "add", "-q", wt])
        try f.git(["-c", "protocol.file.allow=always", "submodule", "update", "--init", "-q"], in: wt)
        let m = f.project + "/.git/worktrees/wt/modules/lib"
        #expect(FileManager.default.fileExists(atPath: m + "/config"))
        let r = try f.agentpen(["--", "/bin/sh", "-c", """
            echo evil > \(m)/hooks/pre-commit && echo HOOK-WRITTEN
            git -C lib config core.fsmonitor 'touch /tmp/pwn' && echo CONFIG-WRITTEN
            mv \(m) \(m)-aside 2>&1; test -e \(m)-aside && echo MOVED
            git -C lib status --short >/dev/null && echo STATUS-OK
            """], cwd: wt)
        #expect(r.status == 0, "\(r.stderr)")
        for word in ["HOOK-WRITTEN", "CONFIG-WRITTEN", "MOVED"] {
            #expect(!r.stdout.contains(word + "\n"), "\(word): \(r.stdout)")
        }
        #expect(r.stdout.contains("STATUS-OK"), "\(r.stderr)")
        #expect(!(f.read(m + "/config") ?? "").contains("fsmonitor"))
    }

    /// The bind sources are host descriptors (O_PATH): one left open inside
    /// would let `openat(fd, "..")` walk the host's tree. None reaches the
    /// agent or stays open in bubblewrap's init inside.
    @Test(arguments: [[], ["--allow", "unused.test"]])
    func bindDescriptorsStayOutside(_ flags: [String]) throws {
        let f = try Fixture()
        try Self.addSubmodule(f)
        let r = try f.sh("""
            for l in /proc/[0-9]*/fd/*; do readlink "$l"; done | grep -c '[.]git'
            echo "INIT-FDS $(ls /proc/1/fd | wc -l)"; echo "OWN-FDS $(ls /proc/self/fd | wc -l)"
            """, flags)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("0\n"), "a descriptor inside names a git path: \(r.stdout)")
        let counts = Dictionary(uniqueKeysWithValues: r.stdout.split(separator: "\n").compactMap { line -> (String, Int)? in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let n = Int(parts[1]) else { return nil }
            return (String(parts[0]), n)
        })
        // The plan hands over at least 8 bind descriptors here (.git, hooks, config,
        // modules, modules/lib and its hooks and config …).
        #expect((counts["INIT-FDS"] ?? 99) < 8, "\(r.stdout)")
        #expect((counts["OWN-FDS"] ?? 99) <= 4, "\(r.stdout)")   // 0, 1, 2 and ls's own
    }

    static func addSubmodule(_ f: Fixture) throws {
        let lib = f.home + "/src/lib"
        try FileManager.default.createDirectory(atPath: lib, withIntermediateDirectories: true)
        try f.git(["init", "-q"], in: lib)
        try f.git(["-c", "user.email=t@e.st", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "lib"], in: lib)
        try f.git(["-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "lib"])
    }

    @Test func submoduleGitDirCannotBeRenamedAside() throws {
        let f = try Fixture()
        try Self.addSubmodule(f)
        let m = ".git/modules/lib"
        let r = try f.sh("""
            mv \(m) \(m)-aside 2>&1; test -e \(m)-aside && echo MOVED
            mv .git/modules .git/modules-aside 2>&1; test -e .git/modules-aside && echo MODULES-MOVED
            echo evil > \(m)/hooks/pre-commit && echo HOOK-WRITTEN
            git -C lib config core.fsmonitor 'touch /tmp/pwn' && echo CONFIG-WRITTEN
            git -C lib status --short >/dev/null && echo STATUS-OK
            """)
        #expect(r.stdout.lowercased().contains("busy"), "\(r.stdout) \(r.stderr)")
        for word in ["MOVED", "MODULES-MOVED", "HOOK-WRITTEN", "CONFIG-WRITTEN"] {
            #expect(!r.stdout.contains(word + "\n"), "\(word): \(r.stdout)")
        }
        #expect(r.stdout.contains("STATUS-OK"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.project + "/" + m + "-aside"))
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/modules-aside"))
    }

    /// A submodule checkout run as the project: its `.git` file points into the
    /// superproject's `.git/modules/lib`, verified by that dir's core.worktree.
    @Test func submoduleCheckoutAsTheProjectWorks() throws {
        let f = try Fixture()
        try Self.addSubmodule(f)
        let lib = f.project + "/lib"
        let m = f.project + "/.git/modules/lib"
        let r = try f.agentpen(["--", "/bin/sh", "-c", """
            mv .git .git-aside 2>&1; test -e .git-aside && echo MOVED
            mv \(m) \(m)-aside 2>&1; test -e \(m)-aside && echo GITDIR-MOVED
            echo evil > \(m)/hooks/pre-commit && echo HOOK-WRITTEN
            git config core.fsmonitor 'touch /tmp/pwn' && echo CONFIG-WRITTEN
            git status --short >/dev/null && echo STATUS-OK
            echo hi > a.txt && git add a.txt && git -c user.email=a@b.c -c user.name=a commit -qm sub-commit && echo COMMITTED
            """], cwd: lib)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.lowercased().contains("busy"), "\(r.stdout) \(r.stderr)")
        for word in ["MOVED", "GITDIR-MOVED", "HOOK-WRITTEN", "CONFIG-WRITTEN"] {
            #expect(!r.stdout.contains(word + "\n"), "\(word): \(r.stdout)")
        }
        #expect(r.stdout.contains("STATUS-OK"), "\(r.stderr)")
        #expect(r.stdout.contains("COMMITTED"), "\(r.stderr)")
        #expect(try f.git(["log", "--format=%s", "-1"], in: lib).stdout == "sub-commit\n")
    }

    /// A `.git` file naming a directory that merely looks like a worktree's git
    /// dir (its back-pointer names another checkout) is refused.
    @Test func fakeWorktreeIsRefused() throws {
        let f = try Fixture()
        let wt = f.home + "/src/wt"
        try f.git(["worktree", "add", "-q", wt])
        let other = f.home + "/src/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try f.write(other + "/.git", "gitdir: \(f.project)/.git/worktrees/wt\n")
        let r = try f.agentpen(["--", "/bin/sh", "-c", Self.probe], cwd: other)
        Self.expectRefused(r, f, naming: other + "/.git")
    }
}
