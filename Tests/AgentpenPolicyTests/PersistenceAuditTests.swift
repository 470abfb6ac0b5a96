@testable import AgentpenPolicy
import Testing

@Suite struct PersistenceAuditRulesTests {
    func risks(_ s: String) -> String? { PersistenceAudit.configRisks(Array(s.utf8)) }

    @Test func keysThatRunProgramsAreFound() {
        let dangerous = [
            "[core]\nfsmonitor = ./x", "[core]\nhooksPath = /tmp", "[core]\nsshCommand = x", "[core]\npager = x",
            "[core]\neditor = x", "[core]\naskPass = x", "[sequence]\neditor = x", "[gpg]\nprogram = x",
            "[gpg \"ssh\"]\nprogram = x", "[pager]\nlog = touch x", "[filter \"a\"]\nsmudge = x",
            "[filter \"a\"]\nprocess = x", "[diff \"a\"]\ntextconv = x", "[diff]\nexternal = x",
            "[merge \"a\"]\ndriver = x", "[credential]\nhelper = x", "[credential \"https://h\"]\nhelper = x",
            "[alias]\nst = !sh", "[alias]\nst = \t!sh", "[include]\npath = ../c", "[includeIf \"gitdir:/\"]\npath = c",
            "[remote \"o\"]\nuploadpack = x", "[submodule \"s\"]\nupdate = !x", "[protocol \"ext\"]\nallow = always",
            "[hook \"h\"]\ncommand = x", "[difftool \"t\"]\ncmd = x", "[future \"x\"]\ncommand = y",
            "[core]\n\tFsMonitor = \"touch \\\n/x\"",
        ]
        for d in dangerous { #expect(risks(d) != nil, "\(d.debugDescription)") }
    }

    @Test func ordinaryConfigIsNot() {
        let safe = [
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n",
            "[core]\nfsmonitor = false", "[core]\nfsmonitor = true", "[pager]\nlog = false", "[alias]\nco = checkout",
            "[remote \"origin\"]\n\turl = https://x\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
            "[submodule \"s\"]\nupdate = rebase", "[core]\n\tworktree = ../../../sub", "",
        ]
        for s in safe { #expect(risks(s) == nil, "\(s.debugDescription): \(risks(s) ?? "")") }
    }

    @Test func unparseableConfigIsDangerous() {
        #expect(risks("[core]\npager = \"x\n") != nil)
        #expect(risks("[core\n") != nil)
    }

    @Test func decisions() {
        func d(_ r: PersistenceAudit.Role, _ p: PersistenceAudit.GitDirPlace = .other, regular: Bool = true, _ c: String = "")
            -> PersistenceAudit.Action? { PersistenceAudit.decide(role: r, place: p, isRegular: regular, content: Array(c.utf8))?.0 }
        #expect(d(.hook("post-checkout")) == .quarantine)
        #expect(d(.gitConfig, .other, "[core]\npager = x") == .quarantine)
        #expect(d(.gitConfig, .other, "[core]\nbare = false") == nil)
        #expect(d(.gitConfig, regular: false) == .quarantine)
        #expect(d(.commondir, .worktree, "../..\n") == nil)
        #expect(d(.commondir, .worktree, "../../../evil") == .quarantine)
        #expect(d(.commondir, .other, "../..") == .quarantine)
        #expect(d(.envrc) == .report)
        #expect(d(.activation) == .report)
        #expect(PersistenceAudit.decide(role: .vscodeTasks, place: .other, isRegular: true,
                                        content: Array("{\"runOptions\":{\"runOn\":\"folderOpen\"}}".utf8))?.1.contains("folderOpen") == true)
    }

    @Test func namesAndPlaces() {
        #expect(PersistenceAudit.looksLikeGitDir(["HEAD", "objects", "refs", "config"]))
        #expect(PersistenceAudit.looksLikeGitDir(["HEAD", "commondir"]))
        #expect(!PersistenceAudit.looksLikeGitDir(["HEAD", "config"]))
        #expect(PersistenceAudit.projectFileRole(".envrc", dirName: "x", parentName: "y") == .envrc)
        #expect(PersistenceAudit.projectFileRole("activate.fish", dirName: "bin", parentName: ".venv") == .activation)
        #expect(PersistenceAudit.projectFileRole("tasks.json", dirName: ".vscode", parentName: "p") == .vscodeTasks)
        #expect(PersistenceAudit.projectFileRole("tasks.json", dirName: "src", parentName: "p") == nil)
        #expect(!PersistenceAudit.isHookName("pre-commit.sample"))
        #expect(!PersistenceAudit.isHookName("pre-commit" + PersistenceAudit.quarantineMarker + "1"))
        #expect(PersistenceAudit.isHookName("pre-commit"))
        #expect(PersistenceAudit.gitFileTarget(Array("gitdir: ../x\n".utf8)) == "../x")
        #expect(PersistenceAudit.gitFileTarget(Array("nope".utf8)) == nil)
        #expect(PersistenceAudit.componentsInside(project: "/p", linkDir: "/p/a", target: "../b/.git") == ["b", ".git"])
        #expect(PersistenceAudit.componentsInside(project: "/p", linkDir: "/p/a", target: "../../etc") == nil)
        #expect(PersistenceAudit.componentsInside(project: "/p", linkDir: "/p", target: "/home/u") == nil)
    }

    @Test func overlapAndRegistryPlacement() {
        let t = PersistenceAudit.Timestamp(sec: 10, nsec: 5)
        #expect(PersistenceAudit.overlapNote(findingCtime: t, others: [.init(start: .init(sec: 10, nsec: 6))]) == nil)
        #expect(PersistenceAudit.overlapNote(findingCtime: t, others: [.init(start: .init(sec: 9, nsec: 0))]) != nil)
        // A run that ended before the change, or a file this run's ledger shows it wrote: no caveat.
        #expect(PersistenceAudit.overlapNote(findingCtime: t, others: [.init(start: .init(sec: 9, nsec: 0), end: .init(sec: 10, nsec: 4))]) == nil)
        #expect(PersistenceAudit.overlapNote(findingCtime: t, others: [.init(start: .init(sec: 9, nsec: 0), end: .init(sec: 10, nsec: 5))]) != nil)
        #expect(PersistenceAudit.overlapNote(findingCtime: t, others: [.init(start: .init(sec: 9, nsec: 0))], wroteIt: true) == nil)
        let q = PersistenceAudit.quarantineName("config", runID: "12-34")
        #expect(PersistenceAudit.quarantinedByOther(q, runID: "12-34") == nil)
        #expect(PersistenceAudit.quarantinedByOther(q + "-1", runID: "12-34") == nil)
        #expect(PersistenceAudit.quarantinedByOther(q, runID: "56-78") == "config")
        #expect(PersistenceAudit.quarantinedByOther("config", runID: "56-78") == nil)
        #expect(PersistenceAudit.quarantinedByOther(PersistenceAudit.quarantineMarker + "1", runID: "56-78") == nil)
        // The registry must not lie in anything the sandbox can write (the runner
        // asks the plan's WritableSet, the same one --log and AGENTPEN_* use).
        func exposed(_ path: String, _ args: [BwrapArgument]) -> Bool {
            var plan = SandboxPlan()
            plan.bwrap = args
            return WritableSet(plan.hostWritable, fs: FakeFS([:])).container(of: path) != nil
        }
        #expect(exposed("/h/.local/state/agentpen", [ro("/h"), rw("/h/.local")]))
        #expect(!exposed("/h/.local/state/agentpen", [ro("/h/.local"), rw("/p")]))
        let fp = PersistenceAudit.Fingerprint(dev: 1, ino: 2, ctime: t)
        #expect(PersistenceAudit.Fingerprint(line: Substring(fp.line)) == fp)
        let split = PersistenceAudit.splitGitDirs(["/r/.git/worktrees/w", "/r/.git", "/p/.git/modules/m", "/p/.git"], project: "/p")
        #expect(split.guarded == ["/p/.git", "/p/.git/modules/m"])
        #expect(split.outside == ["/r/.git/worktrees/w", "/r/.git"])
        #expect(exposed("/p/x", [.bindOpened("/p", readOnly: false)]))
        #expect(!exposed("/p/x", [.bindOpened("/p", readOnly: true)]))
    }

    @Test func hooksPathInsideTheProject() {
        func dirs(_ configs: [String]) -> [String] {
            PersistenceAudit.hooksDirsInProject(configs: configs.map { Array($0.utf8) }, project: "/p", home: "/h")
        }
        #expect(dirs(["[core]\nhooksPath = .husky"]) == ["/p/.husky"])
        #expect(dirs(["[core]\nhooksPath = .husky", "[core]\nhooksPath = /elsewhere"]) == [])   // the last one wins
        #expect(dirs(["[core]\nhooksPath = /elsewhere", "[core]\nhooksPath = hooks"]) == ["/p/hooks"])
        #expect(dirs(["[core]\nhooksPath = ../up"]) == [])
        #expect(dirs(["[core]\nhooksPath = ~/h"]) == [])
        #expect(dirs(["[core\n", "[core]\nhooksPath = x"]) == ["/p/x"])
        #expect(dirs([]) == [])
    }

    @Test func attribution() {
        let start = PersistenceAudit.Timestamp(sec: 100, nsec: 500)
        let before = PersistenceAudit.Timestamp(sec: 100, nsec: 499), same = start
        typealias E = PersistenceAudit.Evidence
        #expect(PersistenceAudit.isTheRuns(ctime: same, start: start, inRunsGitDir: false, evidence: E()))
        #expect(!PersistenceAudit.isTheRuns(ctime: before, start: start, inRunsGitDir: false, evidence: E()))
        #expect(PersistenceAudit.isTheRuns(ctime: before, start: start, inRunsGitDir: true, evidence: E()))
        // Proved another run's: left to it.
        #expect(!PersistenceAudit.isTheRuns(ctime: same, start: start, inRunsGitDir: true, evidence: E(otherActiveWroteIt: true)))
        #expect(!PersistenceAudit.isTheRuns(ctime: same, start: start, inRunsGitDir: false, evidence: E(otherReportedAsItsOwn: true)))
        // Written by this run: its own, whatever the other ledgers say and whatever its ctime.
        #expect(PersistenceAudit.isTheRuns(ctime: before, start: start, inRunsGitDir: false,
                                           evidence: E(wroteIt: true, otherActiveWroteIt: true, otherReportedAsItsOwn: true)))
        // The project's .git and guarded git dirs never make their old files the run's.
        #expect(!PersistenceAudit.gitDirIsTheRuns(ctime: same, start: start, place: .projectGit, guarded: true))
        #expect(!PersistenceAudit.gitDirIsTheRuns(ctime: same, start: start, place: .other, guarded: true))
        #expect(PersistenceAudit.gitDirIsTheRuns(ctime: same, start: start, place: .other, guarded: false))
        #expect(!PersistenceAudit.gitDirIsTheRuns(ctime: before, start: start, place: .other, guarded: false))
        #expect(PersistenceAudit.place(isProjectGit: true, parentName: "p") == .projectGit)
        #expect(PersistenceAudit.place(isProjectGit: false, parentName: "worktrees") == .worktree)
        #expect(PersistenceAudit.isGitDir(name: ".git", hasHEAD: false, hasObjects: false, hasRefs: false, hasCommondir: false))
        #expect(!PersistenceAudit.isGitDir(name: "x", hasHEAD: true, hasObjects: false, hasRefs: false, hasCommondir: false))
        #expect(!PersistenceAudit.enters("objects", of: ".git", inGitTree: false, isGitDir: true))
        #expect(!PersistenceAudit.enters("refs", of: "lib", inGitTree: true, isGitDir: true))
        #expect(PersistenceAudit.enters("objects", of: "bare.git", inGitTree: false, isGitDir: true))   // a planted bare repo is entered whole
        #expect(!PersistenceAudit.enters("hooks", of: "x", inGitTree: false, isGitDir: true))
        #expect(PersistenceAudit.enters("hooks", of: "src", inGitTree: false, isGitDir: false))
    }
}
