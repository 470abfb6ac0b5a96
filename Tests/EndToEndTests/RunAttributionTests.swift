import Foundation
import Testing

/// Two agentpen runs on one project at once: each run's persistence audit lists
/// what its own sandbox planted, and leaves to the other run only what it can
/// prove is the other's (a file the other run's processes wrote, seen by a
/// fanotify mark on the other sandbox's own project mount). What it cannot
/// prove stays in its report. Where the kernel refuses the mark (an
/// unprivileged user: see `agentpen __probe fanotify`), each run lists every
/// change made while both were active, with a note, and never omits its own.
/// The runs are ordered with FIFOs and files, no sleeps.
@Suite struct RunAttributionTests {
    typealias World = PersistenceAuditTests.World

    /// Two runs started side by side; `step` releases a FIFO, `finish` waits for a run.
    final class Pair {
        let f: Fixture
        var pids: [String: pid_t] = [:]
        init(_ f: Fixture) { self.f = f }
        func start(_ name: String, _ script: String, markers: String) throws {
            let full = PersistenceAuditTests.prelude(markers: markers) + "\n" + script
            pids[name] = try spawn([Agentpen.binary, "--", "/bin/sh", "-c", full], env: Agentpen.environment(home: f.home),
                                   cwd: f.project, stdout: f.root + "/\(name).out", stderr: f.root + "/\(name).err")
        }
        func fifo(_ n: String) { mkfifo(f.project + "/\(n).fifo", 0o600) }
        func release(_ n: String) {
            let fd = open(f.project + "/\(n).fifo", O_WRONLY)
            _ = write(fd, "go\n", 3)
            close(fd)
        }
        func exists(_ n: String) -> Bool { FileManager.default.fileExists(atPath: f.project + "/" + n) }
        func finish(_ name: String) -> (out: String, err: String)? {
            guard let pid = pids[name] else { return nil }
            var st: Int32 = 0
            guard waitUntil(120, { waitpid(pid, &st, WNOHANG) == pid }) else { return nil }
            pids[name] = nil
            return (f.read(f.root + "/\(name).out") ?? "", f.read(f.root + "/\(name).err") ?? "")
        }
        deinit { for p in pids.values { kill(p, SIGKILL); waitpid(p, nil, 0) } }
    }

    /// Whether the kernel lets agentpen mark the project mount of a sandbox
    /// here, from agentpen's own probe (the same calls a run makes).
    static func probe(_ f: Fixture) throws -> String {
        let r = try f.agentpen(["__probe", "fanotify"])
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout
    }

    static let note = "another agentpen run on this project was active"

    /// The lines of a report that name `path`.
    static func lines(_ err: String, naming path: String) -> [Substring] {
        err.split(separator: "\n").filter { $0.contains(path) }
    }

    /// A plants a nested repository (hooks, core.fsmonitor), an .envrc and a
    /// VS Code task while B is alive; B plants its own while A is alive; B ends
    /// first, then A. Each lists its own; neither lists the other's, where the
    /// kernel allows the mark; where it does not, what one lists of the other's
    /// carries the note.
    @Test func overlappingRunsReportTheirOwn() throws {
        let w = try World()
        let f = w.f
        // Root can mark any mount; an unprivileged user cannot mark a mount of
        // a filesystem mounted outside its user namespace (the kernel's rule),
        // and agentpen's probe, making the calls a run makes, must agree.
        let attributed = geteuid() == 0
        let probe = try Self.probe(f)
        #expect(probe.contains(attributed ? "mount-mark=ok" : "mount-mark=EPERM"), "\(probe)")
        let p = Pair(f)
        for n in ["a1", "a2", "b1", "b2"] { p.fifo(n) }
        let aPlants = ["a/.envrc", "arepo/.git/config", "arepo/.git/hooks/post-checkout", "av/.vscode/tasks.json"]
        let bPlants = ["b/.envrc", "brepo/.git/config", "brepo/.git/hooks/pre-commit", "bv/.vscode/settings.json"]
        try p.start("a", """
            touch readyA; read x < a1.fifo
            mkdir a && echo 'touch $M/envrc-a' > a/.envrc && plant_repo arepo
            mkdir -p av/.vscode && printf '{"tasks":[{"label":"x","command":"touch","runOptions":{"runOn":"folderOpen"}}]}' > av/.vscode/tasks.json
            touch plantedA; read x < a2.fifo; echo A-DONE
            """, markers: w.markers)
        #expect(waitUntil(60) { p.exists("readyA") })
        try p.start("b", """
            touch readyB; read x < b1.fifo
            mkdir b && echo 'touch $M/envrc-b' > b/.envrc && plant_repo brepo
            mkdir -p bv/.vscode && echo '{"git.path":"/tmp/x"}' > bv/.vscode/settings.json
            touch plantedB; read x < b2.fifo; echo B-DONE
            """, markers: w.markers)
        #expect(waitUntil(60) { p.exists("readyB") })
        p.release("a1")
        #expect(waitUntil(60) { p.exists("plantedA") })
        p.release("b1")
        #expect(waitUntil(60) { p.exists("plantedB") })
        p.release("b2")
        let b = try #require(p.finish("b"))
        #expect(b.out.contains("B-DONE"), "\(b.err)")
        p.release("a2")
        let a = try #require(p.finish("a"))
        #expect(a.out.contains("A-DONE"), "\(a.err)")

        for (mine, theirs, report, name) in [(aPlants, bPlants, a.err, "A"), (bPlants, aPlants, b.err, "B")] {
            for path in mine {
                #expect(!Self.lines(report, naming: "\(f.project)/\(path)").isEmpty, "\(name) did not report its own \(path): \(report)")
            }
            for path in theirs {
                let named = Self.lines(report, naming: "\(f.project)/\(path)")
                if attributed {
                    #expect(named.isEmpty, "\(name) reported the other run's \(path): \(report)")
                } else {
                    #expect(named.allSatisfy { $0.contains(Self.note) }, "\(name) listed \(path) without the note: \(report)")
                }
            }
        }
        // Each says whether it could tell the runs apart, and why not.
        let unwatched = "kept no record of the files it wrote (fanotify_init: Operation not permitted"
        for report in [a.err, b.err] { #expect(report.contains(unwatched) == !attributed, "\(report)") }
        if attributed {
            // What each proved its own carries no note about the other run.
            #expect(!a.err.contains(Self.note), "\(a.err)")
            #expect(!b.err.contains(Self.note), "\(b.err)")
        }
        w.userGit("arepo")
        w.userGit("brepo")
        w.userGit()
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)")
    }

    /// A plants by rename, symlink and mkdir only (no file written, so no event
    /// names it) while B is alive, and B ends first. A still lists every plant
    /// (fail-safe), and so does B, which cannot prove them A's: both with the note.
    @Test func plantsMadeWithoutWritingAreReportedByBoth() throws {
        let w = try World()
        let f = w.f
        // Written before either run: moving them into place writes nothing.
        try f.write(f.project + "/seed/hook", "#!/bin/sh\ntouch \(w.markers)/renamed-hook\n", mode: 0o755)
        try f.write(f.project + "/seed/tasks.json", "{\"tasks\":[{\"runOptions\":{\"runOn\":\"folderOpen\"}}]}\n")
        let p = Pair(f)
        for n in ["a1", "a2", "b1"] { p.fifo(n) }
        try p.start("a", """
            touch readyA; read x < a1.fifo
            mkdir -p n/.git/hooks && mv seed/hook n/.git/hooks/post-checkout
            mkdir r && ln -s ../seed r/.envrc
            mkdir -p t/.vscode && mv seed/tasks.json t/.vscode/tasks.json
            touch plantedA; read x < a2.fifo; echo A-DONE
            """, markers: w.markers)
        #expect(waitUntil(60) { p.exists("readyA") })
        try p.start("b", "touch readyB; read x < b1.fifo; echo B-DONE", markers: w.markers)
        #expect(waitUntil(60) { p.exists("readyB") })
        p.release("a1")
        #expect(waitUntil(60) { p.exists("plantedA") })
        p.release("b1")
        let b = try #require(p.finish("b"))
        #expect(b.out.contains("B-DONE"), "\(b.err)")
        p.release("a2")
        let a = try #require(p.finish("a"))
        #expect(a.out.contains("A-DONE"), "\(a.err)")
        for path in ["n/.git/hooks/post-checkout", "r/.envrc", "t/.vscode/tasks.json"] {
            let inA = Self.lines(a.err, naming: "\(f.project)/\(path)")
            let inB = Self.lines(b.err, naming: "\(f.project)/\(path)")
            #expect(!inA.isEmpty, "A did not report its own \(path): \(a.err)")
            #expect(!inB.isEmpty, "B could not prove \(path) A's, yet left it out: \(b.err)")
            #expect(inB.allSatisfy { $0.contains(Self.note) }, "\(b.err)")
        }
        w.userGit("n")
        #expect(w.fired.isEmpty, "planted commands ran: \(w.fired)")
    }
}
