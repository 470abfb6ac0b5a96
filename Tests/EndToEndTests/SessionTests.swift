import Foundation
import Testing

/// Sessions (issue 13): each run's directory under $XDG_STATE_HOME/agentpen/sessions,
/// its events.jsonl and control socket, the start line and exit summary, pruning,
/// and `agentpen watch --json` / `suggest` on an ended session. Offline runs only;
/// the networked ones are in SessionNetworkTests.
@Suite struct SessionTests {
    @Test func aRunHasAnOwnerOnlySessionWithEventsAndASocketTheSandboxCannotSee() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let fifo = f.project + "/go.fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        // Inside: look for the state dir and any unix socket agentpen made; then wait.
        let script = """
            for p in "\(state)" "\(state)/agentpen" "\(f.home)/.local/state/agentpen"; do
              if [ -e "$p" ]; then echo "visible $p"; else echo "absent $p"; fi
            done
            echo "view: $(ls -A /run/agentpen/session | tr '\n' ' ')"
            echo ready > ready.txt
            cat go.fifo > /dev/null
            """
        let run = try Launched(f, ["--", "/bin/sh", "-c", script], env: ["XDG_STATE_HOME": state])
        defer { run.killLeftovers() }
        #expect(waitUntil(30) { f.read(f.project + "/ready.txt") != nil }, "the sandbox did not start: \(run.stderr)")
        let sessions = state + "/agentpen/sessions"
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: sessions)) ?? []
        #expect(ids.count == 1, "\(ids)")
        let id = ids.first ?? "none"
        #expect(id.range(of: #"^[0-9]{8}-[0-9]{6}-[0-9]+$"#, options: .regularExpression) != nil, "\(id)")
        let dir = sessions + "/" + id
        var st = stat()
        #expect(lstat(dir, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR && (st.st_mode & 0o777) == 0o700, "\(String(st.st_mode, radix: 8))")
        #expect(lstat(sessions, &st) == 0 && (st.st_mode & 0o077) == 0, "sessions dir \(String(st.st_mode, radix: 8))")
        #expect(lstat(dir + "/control", &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK && (st.st_mode & 0o777) == 0o600,
                "control socket: \(String(st.st_mode, radix: 8))")
        #expect(lstat(dir + "/events.jsonl", &st) == 0 && (st.st_mode & 0o777) == 0o600)
        #expect(unixConnect(dir + "/control"), "cannot connect to the control socket while the run lives")
        // The start line came before the sandbox ran anything.
        let first = run.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("agentpen: session \(id): project \(f.project), profile untrusted, 0 hosts allowed"), "\(run.stderr)")
        #expect(first.contains("agentpen watch \(id)"), "\(first)")
        #expect(writeAll(fifo, "go\n"))
        #expect(run.finish(within: 60) == 0, "\(run.stderr)")
        #expect(run.stdout.contains("absent \(state)\n") && run.stdout.contains("absent \(state)/agentpen\n")
                && run.stdout.contains("view: refusals \n"), "visible inside: \(run.stdout)")
        // After the run: the socket is gone, the events stay.
        #expect(lstat(dir + "/control", &st) != 0, "the control socket outlived the run")
        let events = readEvents(dir + "/events.jsonl")
        #expect(events.allSatisfy { $0["v"] as? Int == 1 && $0["seq"] is Int }, "\(events)")
        let start = events.first { $0["kind"] as? String == "run-start" }
        let details = start?["details"] as? [String: String] ?? [:]
        #expect(details["project"] == f.project && details["agent"] == "sh" && details["profile"] == "untrusted"
                && details["hosts"] == "0", "\(events)")
        let end = events.last
        #expect(end?["kind"] as? String == "run-end" && (end?["details"] as? [String: String])?["status"] == "0", "\(events)")
        let summary = run.stderr.split(separator: "\n").filter { $0.hasPrefix("agentpen: session \(id) ended:") }
        #expect(summary.count == 1, "\(run.stderr)")
    }

    @Test func theDefaultStateDirIsUnderTheHomeAndQuietDropsTheLines() throws {
        let f = try Fixture()
        let r = try f.agentpen(["--quiet", "--", "/bin/true"])
        #expect(r.status == 0 && r.stderr.isEmpty, "--quiet printed: \(r.stderr)")
        let sessions = f.home + "/.local/state/agentpen/sessions"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: sessions)) ?? []).count == 1)
        let loud = try f.agentpen(["--", "/bin/true"])
        #expect(loud.stderr.hasPrefix("agentpen: session "), "\(loud.stderr)")
    }

    @Test(arguments: ["in-project", "mount-rw", "mount-ro"])
    func noSessionWhereTheSandboxCouldWriteOrSeeIt(_ place: String) throws {
        let f = try Fixture()
        let elsewhere = f.root + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        let state: String
        var flags: [String] = []
        switch place {
        case "in-project": state = f.project + "/.state"
        case "mount-rw": state = elsewhere + "/state"; flags = ["--mount-rw", elsewhere]
        default: state = elsewhere + "/state"; flags = ["--mount", elsewhere]
        }
        let r = try f.agentpen(flags + ["--", "/bin/sh", "-c", "ls -a \"\(state)\" 2>&1 || true"],
                               env: ["XDG_STATE_HOME": state])
        // Either the run goes on without a session, or (where a mount would show one
        // of agentpen's own directories, the config part's rule) it is refused whole.
        let withoutSession = r.status == 0 && r.stderr.contains("agentpen: no session: \(state)")
        let refused = r.status == 2 && r.stderr.contains(state)
        #expect(withoutSession || refused, "\(r.status) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: state + "/agentpen/sessions"), "a session was made where the sandbox reaches it")
    }

    @Test func oldSessionsArePrunedAndASymlinkIsNotFollowed() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let sessions = state + "/agentpen/sessions"
        try FileManager.default.createDirectory(atPath: sessions, withIntermediateDirectories: true)
        chmod(state + "/agentpen", 0o700); chmod(sessions, 0o700)
        let victim = f.root + "/victim"
        try f.write(victim + "/keep", "precious")
        let old = Date().addingTimeInterval(-40 * 86400)
        for i in 0..<3 {
            let d = sessions + String(format: "/20200101-0000%02d-1", i)
            try f.write(d + "/events.jsonl", "{}\n")
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: d)
        }
        // A symlink among them, old too: removed as a name, its target untouched.
        try FileManager.default.createSymbolicLink(atPath: sessions + "/20200101-000009-1", withDestinationPath: victim)
        // Recent ones (an hour ago, a second apart) beyond the count limit: the oldest of them go.
        let format = DateFormatter()
        format.dateFormat = "yyyyMMdd-HHmmss"
        format.timeZone = TimeZone(identifier: "UTC")
        let recent = (0..<60).map { format.string(from: Date().addingTimeInterval(Double(-3600 + $0))) + "-1" }
        for name in recent { try f.write(sessions + "/" + name + "/events.jsonl", "{}\n") }
        let r = try f.agentpen(["--", "/bin/true"], env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stderr)")
        let left = Set((try? FileManager.default.contentsOfDirectory(atPath: sessions)) ?? [])
        #expect(f.read(victim + "/keep") == "precious", "pruning followed a symlink")
        #expect(!left.contains("20200101-000000-1") && !left.contains("20200101-000009-1"), "old sessions kept: \(left.sorted())")
        #expect(left.count == 50, "\(left.count) sessions left")
        #expect(!left.contains(recent[0]) && !left.contains(recent[10]) && left.contains(recent[11]) && left.contains(recent[59]),
                "\(left.sorted())")
    }

    @Test func watchJSONAndSuggestReadAnEndedSession() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let env = ["XDG_STATE_HOME": state]
        // A finding for the log: a planted hook in a repository the run creates.
        let r = try f.agentpen(["--", "/bin/sh", "-c", "git init -q nested && printf '#!/bin/sh\\n' > nested/.git/hooks/pre-commit"], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        let w = try f.agentpen(["watch", "--json"], env: env)
        #expect(w.status == 0, "\(w.stderr)")
        let lines = w.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.count == w.stdout.split(separator: "\n").count && lines.count >= 3, "\(w.stdout)")
        #expect(lines.first?["kind"] as? String == "run-start" && lines.last?["kind"] as? String == "run-end", "\(w.stdout)")
        #expect(lines.contains { ($0["kind"] as? String ?? "").hasPrefix("persistence-") }, "\(w.stdout)")
        // The same session by its ID; a name that is not an ID is refused.
        let id = try FileManager.default.contentsOfDirectory(atPath: state + "/agentpen/sessions")[0]
        #expect(try f.agentpen(["watch", "--json", id], env: env).stdout == w.stdout)
        let bad = try f.agentpen(["watch", "../../x"], env: env)
        #expect(bad.status == 2 && bad.stderr.contains("not a session"), "\(bad.stderr)")
        let none = try f.agentpen(["suggest"], env: ["XDG_STATE_HOME": f.root + "/empty"])
        #expect(none.status == 2 && none.stderr.contains("no session"), "\(none.stderr)")
        let s = try f.agentpen(["suggest", id], env: env)
        #expect(s.status == 0 && s.stdout.contains("nothing was refused"), "\(s.stdout) \(s.stderr)")
        // The exit summary named the finding and the counts.
        #expect(r.stderr.contains("agentpen: session \(id) ended:") && r.stderr.contains("1 persistence finding"), "\(r.stderr)")
    }
}

/// Whether a unix stream socket at `path` accepts a connection. Reached through
/// its directory's descriptor: a test's path can be longer than sun_path.
func unixConnect(_ path: String) -> Bool {
    let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard dir >= 0 else { return false }
    defer { close(dir) }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array("/proc/self/fd/\(dir)/\((path as NSString).lastPathComponent)".utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
    withUnsafeMutableBytes(of: &addr.sun_path) { buf in for (i, b) in bytes.enumerated() { buf[i] = b } }
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    } == 0
}

/// Writes `text` to a path (a FIFO: blocks until a reader opens it).
func writeAll(_ path: String, _ text: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == text.utf8.count
}
