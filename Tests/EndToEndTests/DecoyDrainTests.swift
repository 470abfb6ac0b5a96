import Foundation
import Testing

/// The end of the decoys' watch (issue 11, exitpath): at the sandbox's end
/// agentpen reads what inotify queued, removes each watch and closes the
/// descriptor (closing it with its watches still on costs ~10-15 ms in the
/// kernel). An open in the agent's very last instant must still be reported
/// and counted, and the IN_IGNORED each removed watch queues must never count
/// as a read.
@Suite struct DecoyDrainTests {
    static func events(_ state: String) throws -> [[String: Any]] {
        let ids = SecretDecoyTests.sessionIDs(state)
        try #require(ids.count == 1, "\(ids)")
        return readEvents(state + "/agentpen/sessions/" + ids[0] + "/events.jsonl")
    }

    static func endedLine(_ stderr: String) -> String {
        stderr.split(separator: "\n").map(String.init).first { $0.hasPrefix("agentpen: session ") && $0.contains(" ended:") } ?? ""
    }

    /// The agent's last act is the read: `exec cat` is the sandbox's last
    /// process, so nothing runs between its open and the sandbox's end.
    @Test func aReadAsTheAgentsLastActIsReportedAndCounted() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let r = try f.sh("exec cat ~/.ssh/id_rsa", env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let e = try Self.events(state)
        let reads = e.filter { $0["kind"] as? String == "secret-read" }.compactMap { $0["subject"] as? String }
        #expect(reads == [f.home + "/.ssh/id_rsa"], "\(reads)")
        // The run-end comes after it: the read was reported before the run was closed.
        let kinds = e.compactMap { $0["kind"] as? String }
        #expect(kinds.last == "run-end" && kinds.firstIndex(of: "secret-read").map { $0 < kinds.count - 1 } == true, "\(kinds)")
        #expect(!kinds.contains("failure"), "\(e)")
        let ended = Self.endedLine(r.stderr)
        #expect(ended.contains("1 secret read") && !ended.contains("secret reads"), "\(r.stderr)")
        #expect(r.stderr.contains("agentpen: secrets reached for: \(f.home)/.ssh/id_rsa (empty decoys"), "\(r.stderr)")
    }

    /// Several decoys opened in the last instant, each once: every one is
    /// reported, and none more (no IN_IGNORED of the 15 removed watches counts).
    @Test func severalReadsInTheLastInstantAreAllReportedAndNothingElse() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let paths = [".ssh/id_ed25519", ".netrc", ".aws/credentials", ".kube/config", ".git-credentials", ".vault-token"]
        let r = try f.sh("exec cat " + paths.map { "~/" + $0 }.joined(separator: " "), env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let e = try Self.events(state)
        let reads = e.filter { $0["kind"] as? String == "secret-read" }.compactMap { $0["subject"] as? String }
        #expect(reads.sorted() == paths.map { f.home + "/" + $0 }.sorted(), "\(reads)")
        #expect(!e.contains { $0["kind"] as? String == "failure" }, "\(e)")
        #expect(Self.endedLine(r.stderr).contains("\(paths.count) secret reads"), "\(r.stderr)")
    }

    /// The watches go when the agent's last process has exited (the syscall
    /// filter's hang-up), not when some process does: short-lived children
    /// exit before the reads, one read comes from an orphan whose parent has
    /// exited, the last from the agent's final exec.
    @Test func processesEndingBeforeTheLastReadsDoNotEndTheWatch() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let script = """
            /bin/true; /bin/sh -c 'exit 0'; (/bin/true)
            d=$(mktemp -d); mkfifo "$d/go" "$d/done"
            /bin/sh -c '( read x < "$1/go"; cat ~/.pypirc; : > "$1/done" ) &' sh "$d"
            echo go > "$d/go"; read y < "$d/done"
            exec cat ~/.ssh/id_ecdsa
            """
        let r = try f.sh(script, env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let reads = try Self.events(state).filter { $0["kind"] as? String == "secret-read" }.compactMap { $0["subject"] as? String }
        #expect(reads == [f.home + "/.pypirc", f.home + "/.ssh/id_ecdsa"], "\(reads)")
        #expect(Self.endedLine(r.stderr).contains("2 secret reads"), "\(r.stderr)")
    }

    /// No read at all: removing the watches at the end reports nothing.
    @Test func removingTheWatchesIsNoRead() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let r = try f.sh("ls -la ~/.ssh > /dev/null; stat ~/.netrc > /dev/null; exit 3", env: ["XDG_STATE_HOME": state])
        #expect(r.status == 3, "\(r.stdout) \(r.stderr)")
        let e = try Self.events(state)
        #expect(!e.contains { $0["kind"] as? String == "secret-read" || $0["kind"] as? String == "failure" }, "\(e)")
        // The decoys were there (15 watches to remove), and the run ended.
        #expect(FileManager.default.fileExists(atPath: state + "/agentpen/sessions/" + SecretDecoyTests.sessionIDs(state)[0] + "/decoys/decoy-0"))
        #expect(e.last?["kind"] as? String == "run-end", "\(e)")
        #expect(!r.stderr.contains("secret"), "\(r.stderr)")
    }
}

/// The same on a networked run (the default direct hop and the pasta hop):
/// the namespace helper still reads the firewall's counters after the agent's
/// end, and the read in the agent's last instant is reported all the same.
extension NetworkTests {
@Suite struct DecoyDrainNetworkTests {
    @Test(arguments: [[String](), ["--hop", "pasta"]])
    func aReadAsTheAgentsLastActIsReportedOnANetworkedRun(hop: [String]) throws {
        let f = try NetFixture()
        let state = f.root + "/state"
        let r = try f.sh(World.baseAllow + hop, """
            curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello > /dev/null; echo "curl=$?"
            exec cat ~/.ssh/id_rsa ~/.netrc
            """, env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0 && r.stdout.contains("curl=0"), "\(r.stdout) \(r.stderr)")
        let e = try DecoyDrainTests.events(state)
        let reads = e.filter { $0["kind"] as? String == "secret-read" }.compactMap { $0["subject"] as? String }
        #expect(reads.sorted() == [f.f.home + "/.netrc", f.f.home + "/.ssh/id_rsa"], "\(reads)")
        #expect(e.last?["kind"] as? String == "run-end", "\(e)")
        #expect(DecoyDrainTests.endedLine(r.stderr).contains("2 secret reads"), "\(r.stderr)")
    }
}
}
