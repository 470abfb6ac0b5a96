import Foundation
import Testing

/// After a run, no git command the user runs in the project executes anything the
/// sandbox planted. Each test plants inside the sandbox, then runs the real git
/// as the user would (status, log, diff, branch on a terminal, checkout; `git -C
/// nested status` as a shell prompt does on cd) and checks that no planted
/// command left its marker.
@Suite struct PersistenceAuditTests {
    /// Shell functions used inside the sandbox (and, for the control test, outside).
    /// `plant_repo DIR` makes DIR a repository with hooks and program-running config
    /// that write markers into $M; `plant_config FILE` writes such a config.
    static func prelude(markers: String) -> String {
        """
        M='\(markers)'
        hooks() { mkdir -p "$1"; for h in post-checkout pre-commit reference-transaction post-index-change; do
            printf '#!/bin/sh\\ntouch "%s/hook-%s"\\n' "$M" "$h" > "$1/$h"; chmod +x "$1/$h"; done; }
        plant_config() { printf '[core]\\n\\tfsmonitor = "touch %s/fsmonitor; false"\\n\\tpager = "touch %s/pager; cat"\\n[alias]\\n\\tst = !touch %s/alias\\n' "$M" "$M" "$M" >> "$1"; }
        plant_repo() {
            mkdir -p "$1" && git init -q "$1" && echo a > "$1/f" && git -C "$1" add f &&
            git -C "$1" -c user.email=a@b.c -c user.name=a commit -q -m x &&
            hooks "$1/.git/hooks" && plant_config "$1/.git/config"; }
        """
    }

    struct World {
        let f: Fixture
        var markers: String { f.root + "/markers" }
        init() throws {
            f = try Fixture()
            try FileManager.default.createDirectory(atPath: f.root + "/markers", withIntermediateDirectories: true)
            chmod(f.root + "/markers", 0o777)
        }
        func sandbox(_ script: String, _ extra: [String] = []) throws -> Agentpen.Result {
            try f.sh(PersistenceAuditTests.prelude(markers: markers) + "\n" + script, extra)
        }
        /// What the user runs afterwards, in `dir` (relative to the project).
        func userGit(_ dir: String = ".") {
            let env = Agentpen.environment(home: f.home)
            let d = dir.hasPrefix("/") ? dir : f.project + "/" + dir
            for args in [["status"], ["log", "-1"], ["diff"], ["checkout", "-q", "-b", "after-\(UUID().uuidString.prefix(8))"],
                         ["-c", "user.email=u@e.st", "-c", "user.name=u", "commit", "-q", "--allow-empty", "-m", "u"], ["st"]] {
                _ = try? runProgram("/usr/bin/git", ["-C", d] + args, env: env, cwd: f.project)
            }
            // On a terminal git starts the pager: branch and log under script(1).
            // PAGER=cat (below core.pager in git's order) so that git's default
            // pager, less, cannot wait for a key on the dumb terminal.
            var tty = env
            tty["PAGER"] = "cat"
            _ = try? runProgram("/usr/bin/script", ["-qec", "git -C '\(d)' branch; git -C '\(d)' log -1", "/dev/null"],
                                env: tty, cwd: f.project, timeout: 20)
        }
        var fired: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: markers)) ?? []).sorted() }
    }

    /// The control: the same plants made outside agentpen do fire on these git
    /// commands, so the tests below cannot pass because nothing would ever run.
    @Test func plantsFireWithoutTheAudit() throws {
        let w = try World()
        let r = try runProgram("/bin/sh", ["-c", Self.prelude(markers: w.markers) + "\nplant_repo nested"],
                               env: Agentpen.environment(home: w.f.home), cwd: w.f.project)
        #expect(r.status == 0, "\(r.stderr)")
        w.userGit("nested")
        #expect(w.fired.contains("fsmonitor"), "\(w.fired)")
        #expect(w.fired.contains("pager"), "\(w.fired)")
        #expect(w.fired.contains("hook-post-checkout"), "\(w.fired)")
        #expect(w.fired.contains("alias"), "\(w.fired)")
    }

    @Test func newNestedRepositoryIsDisarmed() throws {
        let w = try World()
        let log = w.f.root + "/events.log"
        let r = try w.sandbox("plant_repo nested && echo PLANTED", ["--log", log])
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        // The log has each finding as an event, with where it went.
        let events = (w.f.read(log) ?? "").split(separator: "\n")
        #expect(events.contains { e in
            e.contains("\"kind\":\"persistence-moved\"") && e.contains("moved-to")
                && (e.contains("nested/.git/config") || e.contains("nested\\/.git\\/config"))   // slashes escaped or not
        }, "\(events)")
        w.userGit("nested")
        w.userGit()
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)\n\(r.stderr)")
        #expect(r.stderr.contains("persistence: moved \(w.f.project)/nested/.git/config"), "\(r.stderr)")
        #expect(r.stderr.contains("core.fsmonitor"), "\(r.stderr)")
        #expect(r.stderr.contains("/nested/.git/hooks/post-checkout"), "\(r.stderr)")
        // The repository itself still works.
        #expect(try w.f.git(["status", "--short"], in: w.f.project + "/nested").status == 0)
    }

    @Test func gitlinkInTheIndexIsDisarmed() throws {
        let w = try World()
        let r = try w.sandbox("plant_repo nested && git add nested && git status --short && echo PLANTED")
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        w.userGit()                       // git status in the root recurses into the gitlink
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)\n\(r.stderr)")
        #expect(r.stderr.contains("/nested/.git/config"), "\(r.stderr)")
    }

    @Test func bareRepositoryPlantedInTheRootIsDisarmed() throws {
        let w = try World()
        let r = try w.sandbox("""
            rm -rf .git/* 2>/dev/null
            mkdir -p objects refs/heads && echo 'ref: refs/heads/main' > HEAD && plant_config config
            hooks hooks
            echo PLANTED
            """)
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        w.userGit()
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)\n\(r.stderr)")
        #expect(r.stderr.contains("persistence: moved \(w.f.project)/config"), "\(r.stderr)")
        #expect(r.stderr.contains("\(w.f.project)/hooks/pre-commit"), "\(r.stderr)")
    }

    /// `.git` swapped for a link to a planted repository (possible while `.git`
    /// can be renamed; where it is pinned the rename fails and the plant lands in
    /// a subdirectory): either way the audit runs and disarms it.
    @Test func gitReplacedByFileOrSymlink() throws {
        for kind in ["file", "symlink"] {
            let w = try World()
            let link = kind == "file" ? "echo 'gitdir: stash' > \"$d/.git\"" : "ln -s stash \"$d/.git\""
            let r = try w.sandbox("""
                d=.
                mv .git .git-aside 2>/dev/null || { d=sub; mkdir sub; }
                plant_repo tmprepo && mv tmprepo/.git "$d/stash" && rm -rf tmprepo
                \(link)
                echo PLANTED in $d
                """)
            #expect(r.stdout.contains("PLANTED"), "\(kind): \(r.stderr)")
            w.userGit()
            w.userGit("sub")
            #expect(w.fired.isEmpty, "\(kind): planted commands ran: \(w.fired)\n\(r.stderr)")
            #expect(r.stderr.contains("persistence: moved"), "\(kind): \(r.stderr)")
            #expect(r.stderr.contains("/stash/config"), "\(kind): \(r.stderr)")
            if r.stdout.contains("PLANTED in .") {
                // .git could be renamed: the user is told where it went.
                #expect(r.stderr.contains("persistence: \(w.f.project)/.git-aside: this is the project's .git, moved here during the run"),
                        "\(kind): \(r.stderr)")
            }
        }
    }

    @Test func gitLinkPointingOutsideTheProjectIsMovedAside() throws {
        let w = try World()
        let outside = w.f.home + "/src/sibling"
        let r = try w.sandbox("mkdir sub sub2 && echo 'gitdir: \(outside)' > sub/.git && ln -s .. sub2/.git && echo PLANTED")
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: w.f.project + "/sub/.git"))
        #expect(r.stderr.contains("persistence: moved \(w.f.project)/sub/.git"), "\(r.stderr)")
        // A link to a directory that is no repository (here the project root) goes too.
        #expect(r.stderr.contains("persistence: moved \(w.f.project)/sub2/.git"), "\(r.stderr)")
    }

    @Test func newSubmoduleGitDirIsDisarmed() throws {
        let w = try World()
        let r = try w.sandbox("""
            plant_repo tmprepo && mkdir -p .git/modules && mv tmprepo/.git .git/modules/new && rm -rf tmprepo
            mkdir sub && echo 'gitdir: ../.git/modules/new' > sub/.git
            git -C sub config core.worktree ../../../sub
            git -C sub checkout -q -- . 2>/dev/null; echo PLANTED
            """)
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        w.userGit("sub")
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)\n\(r.stderr)")
        #expect(r.stderr.contains("/.git/modules/new/hooks/post-checkout"), "\(r.stderr)")
        #expect(r.stderr.contains("/.git/modules/new/config"), "\(r.stderr)")
    }

    @Test func shellAndEditorFilesAreReportedNotChanged() throws {
        let w = try World()
        let r = try w.sandbox("""
            echo 'touch $M/envrc' > .envrc
            mkdir -p .venv/bin deep/er && echo 'touch $M/activate' > .venv/bin/activate && echo x > deep/er/.envrc
            mkdir -p .vscode && printf '{"tasks":[{"label":"x","command":"touch","runOptions":{"runOn":"folderOpen"}}]}' > .vscode/tasks.json
            echo PLANTED
            """)
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        for p in [".envrc", "deep/er/.envrc", ".venv/bin/activate", ".vscode/tasks.json"] {
            #expect(r.stderr.contains("persistence: \(w.f.project)/\(p) was created or changed in the sandbox"), "\(p): \(r.stderr)")
            #expect(FileManager.default.fileExists(atPath: w.f.project + "/" + p), "\(p) was changed")
        }
        #expect(r.stderr.contains("direnv"), "\(r.stderr)")
        #expect(r.stderr.contains("folderOpen"), "\(r.stderr)")
    }

    @Test func preexistingNestedRepositoryIsNotReported() throws {
        let w = try World()
        let pre = try runProgram("/bin/sh", ["-c", Self.prelude(markers: w.markers) + "\nplant_repo old"],
                                 env: Agentpen.environment(home: w.f.home), cwd: w.f.project)
        #expect(pre.status == 0, "\(pre.stderr)")
        let r = try w.sandbox("echo x > .envrc && echo RAN")
        #expect(r.stdout.contains("RAN"), "\(r.stderr)")
        #expect(r.stderr.contains("/.envrc"), "the audit did not run: \(r.stderr)")
        #expect(!r.stderr.contains("/old/"), "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: w.f.project + "/old/.git/hooks/post-checkout"))
        #expect((w.f.read(w.f.project + "/old/.git/config") ?? "").contains("fsmonitor"))
    }

    /// A long run (waiting on a FIFO the test opens) and a short run on the same
    /// project: each reports its own plants and not the other's.
    @Test func twoRunsAtOnceReportOnlyTheirOwn() throws {
        let w = try World()
        let f = w.f
        let fifo = f.project + "/go.fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let longOut = f.root + "/long.out"
        let script = Self.prelude(markers: w.markers) + """

            mkdir a && echo x > a/.envrc && plant_repo arepo && touch ready
            read line < go.fifo
            mkdir a2 && echo y > a2/.envrc
            echo LONG-DONE
            """
        let pid = try spawn([Agentpen.binary, "--", "/bin/sh", "-c", script], env: Agentpen.environment(home: f.home),
                            cwd: f.project, stdout: longOut, stderr: f.root + "/long.err")
        var longStatus: Int32 = -1
        defer { if longStatus < 0 { kill(pid, SIGKILL); waitpid(pid, nil, 0) } }
        #expect(waitUntil(60) { FileManager.default.fileExists(atPath: f.project + "/ready") })

        let short = try w.sandbox("mkdir b && echo x > b/.envrc && plant_repo brepo && echo SHORT-DONE")
        #expect(short.stdout.contains("SHORT-DONE"), "\(short.stderr)")
        #expect(short.stderr.contains("\(f.project)/b/.envrc"), "\(short.stderr)")
        #expect(short.stderr.contains("\(f.project)/brepo/.git/config"), "\(short.stderr)")
        #expect(!short.stderr.contains("\(f.project)/a/"), "the short run reported the long run's plant: \(short.stderr)")
        #expect(!short.stderr.contains("/arepo/"), "the short run reported the long run's plant: \(short.stderr)")

        let fd = open(fifo, O_WRONLY)
        #expect(fd >= 0)
        _ = write(fd, "go\n", 3)
        close(fd)
        var st: Int32 = 0
        #expect(waitUntil(120) { waitpid(pid, &st, WNOHANG) == pid })
        longStatus = st
        let longErr = f.read(f.root + "/long.err") ?? ""
        #expect(f.read(longOut)?.contains("LONG-DONE") == true, "\(longErr)")
        #expect(longErr.contains("\(f.project)/a/.envrc"), "\(longErr)")
        #expect(longErr.contains("\(f.project)/a2/.envrc"), "\(longErr)")
        #expect(longErr.contains("\(f.project)/arepo/.git/config"), "\(longErr)")
        // The short run's plants were made while the long run was active: only
        // the short run's ledger (kept where the kernel allows the mark: root,
        // RunAttributionTests) proves them its own. Without it the long run
        // lists them too, each with the caveat.
        let theirs = longErr.split(separator: "\n").filter { $0.contains("\(f.project)/b/") || $0.contains("/brepo/") }
        if geteuid() == 0 {
            #expect(theirs.isEmpty, "the long run reported the short run's plant: \(longErr)")
        } else {
            #expect(!theirs.isEmpty && theirs.allSatisfy { $0.contains("another agentpen run on this project was active") },
                    "\(longErr)")
        }
        w.userGit("arepo")
        w.userGit("brepo")
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)")
    }

    /// A change made while both runs are active, by the run that ends last:
    /// where its ledger proves it wrote it (root), the run that ends first
    /// leaves it to that run; where no ledger can be kept (the kernel refuses
    /// an unprivileged user the mark), both list it, the first with a note
    /// that the other run may have made it.
    @Test func changeDuringBothRunsIsLeftToTheRunThatWroteIt() throws {
        let w = try World()
        let f = w.f
        for n in ["a1", "a2", "b1"] { #expect(mkfifo(f.project + "/\(n).fifo", 0o600) == 0) }
        func start(_ name: String, _ script: String) throws -> pid_t {
            try spawn([Agentpen.binary, "--", "/bin/sh", "-c", script], env: Agentpen.environment(home: f.home),
                      cwd: f.project, stdout: f.root + "/\(name).out", stderr: f.root + "/\(name).err")
        }
        func release(_ fifo: String) {
            let fd = open(f.project + "/" + fifo, O_WRONLY)
            _ = write(fd, "go\n", 3)
            close(fd)
        }
        func exists(_ n: String) -> Bool { FileManager.default.fileExists(atPath: f.project + "/" + n) }
        var pids: [pid_t] = []
        defer { for p in pids { kill(p, SIGKILL); waitpid(p, nil, 0) } }
        func finish(_ pid: pid_t) -> Bool {
            var st: Int32 = 0
            let done = waitUntil(120) { waitpid(pid, &st, WNOHANG) == pid }
            if done { pids.removeAll { $0 == pid } }
            return done
        }
        let a = try start("a", "touch readyA; read x < a1.fifo; mkdir m && echo x > m/.envrc && touch readyM; read x < a2.fifo; echo A-DONE")
        pids.append(a)
        #expect(waitUntil(60) { exists("readyA") })
        let b = try start("b", "touch readyB; read x < b1.fifo; echo B-DONE")
        pids.append(b)
        #expect(waitUntil(60) { exists("readyB") })
        release("a1.fifo")
        #expect(waitUntil(60) { exists("readyM") })
        release("b1.fifo")
        #expect(finish(b))
        let bErr = f.read(f.root + "/b.err") ?? ""
        #expect(f.read(f.root + "/b.out")?.contains("B-DONE") == true, "\(bErr)")
        let attributed = geteuid() == 0
        #expect(bErr.contains("\(f.project)/m/.envrc") == !attributed, "\(bErr)")
        #expect(bErr.contains("another agentpen run on this project was active") == !attributed, "\(bErr)")
        release("a2.fifo")
        #expect(finish(a))
        let aErr = f.read(f.root + "/a.err") ?? ""
        #expect(f.read(f.root + "/a.out")?.contains("A-DONE") == true, "\(aErr)")
        #expect(aErr.contains("\(f.project)/m/.envrc"), "A did not report its own change: \(aErr)")
    }

    /// A worktree's own git dir lies outside the project and is writable inside:
    /// a commondir planted there is moved aside too.
    @Test func worktreeGitDirCommondirIsDisarmed() throws {
        let w = try World()
        let wt = w.f.home + "/src/wt"
        try w.f.git(["worktree", "add", "-q", wt])
        let gd = w.f.project + "/.git/worktrees/wt"
        let script = Self.prelude(markers: w.markers) + """

            plant_repo evilsrc && mv evilsrc/.git evil && rm -rf evilsrc
            if echo \(wt)/evil > \(gd)/commondir 2>/dev/null; then echo PLANTED; else echo GUARDED; fi
            """
        let r = try w.f.agentpen(["--", "/bin/sh", "-c", script], cwd: wt)
        // Where the plan makes the worktree's commondir read-only the write fails;
        // otherwise the audit must move it aside. Either way nothing planted runs.
        #expect(r.stdout.contains("PLANTED") || r.stdout.contains("GUARDED"), "\(r.stderr)")
        w.userGit(wt)
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)\n\(r.stderr)")
        if r.stdout.contains("PLANTED") {
            #expect(r.stderr.contains("persistence: moved \(gd)/commondir"), "\(r.stderr)")
        }
        #expect(r.stderr.contains("persistence: moved \(wt)/evil/config"), "\(r.stderr)")
    }

    /// The project's config sends hooks to a directory of the working tree (as
    /// husky does): a hook the sandbox writes there is moved aside too.
    @Test func hooksInCoreHooksPathAreDisarmed() throws {
        let w = try World()
        try w.f.git(["config", "core.hooksPath", ".githooks"])
        let r = try w.sandbox("hooks .githooks && echo PLANTED")
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        w.userGit()
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)\n\(r.stderr)")
        #expect(r.stderr.contains("persistence: moved \(w.f.project)/.githooks/pre-commit"), "\(r.stderr)")
    }

    /// A nested repository inside a directory the run made unreadable (mode 0100
    /// still lets the user cd through it): audited all the same.
    @Test func unreadableDirectoryIsAuditedAnyway() throws {
        let w = try World()
        let r = try w.sandbox("mkdir locked && plant_repo locked/nested && chmod 100 locked && echo PLANTED")
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        w.userGit("locked/nested")
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)\n\(r.stderr)")
        #expect(r.stderr.contains("persistence: moved \(w.f.project)/locked/nested/.git/config"), "\(r.stderr)")
    }

    /// The registry of runs lives outside the sandbox's reach, even when an XDG
    /// variable (set by a project's .envrc, say) leads into the project.
    @Test func runRegistryStaysOutOfTheProject() throws {
        let w = try World()
        let f = w.f
        try FileManager.default.createDirectory(atPath: f.project + "/state", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: f.root + "/link", withDestinationPath: f.project + "/state")
        for state in [f.project + "/state", f.root + "/link"] {
            let r = try f.agentpen(["--", "/bin/sh", "-c", "echo x > .envrc"], env: ["XDG_STATE_HOME": state])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("/.envrc"), "the audit did not run: \(r.stderr)")
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: f.project + "/state")) ?? []).isEmpty, "\(state)")
        }
        // The default place, and the last run leaves nothing in it but the empty directory.
        _ = try f.sh("true")
        let runs = f.home + "/.local/state/agentpen/runs"
        let projects = (try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? []
        #expect(projects.count == 1, "\(projects)")
        let left = projects.flatMap { (try? FileManager.default.contentsOfDirectory(atPath: runs + "/" + $0)) ?? [] }
        #expect(left.isEmpty, "left behind: \(left)")   // no entry, lock file or handled list
    }

    /// A tree deeper than the audit's bound: the run ends, and the audit says
    /// where it stopped instead of hanging or staying silent.
    @Test func deepTreeDoesNotHangTheAudit() throws {
        let w = try World()
        let r = try w.sandbox("""
            p=.; i=0; while [ $i -lt 130 ]; do p=$p/d; i=$((i+1)); done
            mkdir -p $p && echo x > $p/.envrc && echo PLANTED
            """)
        #expect(r.stdout.contains("PLANTED"), "\(r.stderr)")
        #expect(r.stderr.contains(": the persistence audit stopped here"), "\(r.stderr)")
    }
}
