import Foundation
import Testing

/// Secret decoys (issue 13, "secrets"): empty files of the session bound
/// read-only at the well-known secret paths of the private home, watched from
/// outside; each open is a `secret-read` event in events.jsonl, in the exit
/// summary, in `watch` and in the sandbox's refusals file. A path the user
/// mounted is never shadowed; the session directory stays out of reach.
@Suite struct SecretDecoyTests {
    static func sessionIDs(_ state: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state + "/agentpen/sessions")) ?? []).sorted()
    }

    static func secretReads(_ state: String, _ id: String) -> [String] {
        readEvents(state + "/agentpen/sessions/" + id + "/events.jsonl")
            .filter { $0["kind"] as? String == "secret-read" }.compactMap { $0["subject"] as? String }
    }

    @Test func eachOpenOfASecretPathIsAnEventTheSummaryAndTheAgentSee() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let h = f.home
        // Interleaved opens (the kernel merges identical events that follow each
        // other unread); a stat, a listing and a write attempt are no reads.
        let script = """
            cat ~/.aws/credentials ~/.netrc ~/.aws/credentials; echo "cat=$?"
            ls -la ~/.ssh > /dev/null; stat ~/.kube/config > /dev/null; echo "stat=$?"
            echo planted > ~/.npmrc 2>/dev/null; echo "write=$?"
            [ -s ~/.ssh/id_ed25519 ]; echo "nonempty=$?"
            ls -A "\(state)" 2>/dev/null; echo "state=$?"
            i=0; while [ $i -lt 300 ] && ! grep -q -- '.netrc' "$AGENTPEN_REFUSALS"; do i=$((i+1)); sleep 0.05; done
            cat "$AGENTPEN_REFUSALS"
            """
        let r = try f.sh(script, env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        // Empty, read-only, and nothing of the real files or of the session inside.
        #expect(r.stdout.contains("cat=0") && r.stdout.contains("stat=0") && r.stdout.contains("nonempty=1"), "\(r.stdout) \(r.stderr)")
        #expect(!r.stdout.contains("write=0") && !r.stdout.contains("state=0"), "\(r.stdout)")
        #expect(!r.stdout.contains("SECRET"), "a secret leaked: \(r.stdout)")
        #expect(f.read(h + "/.npmrc") == "SECRET-NPM")
        // The agent reads why, in its refusals file.
        #expect(r.stdout.contains("secret-read \(h)/.netrc (1x)") && r.stdout.contains("secret-read \(h)/.aws/credentials"),
                "refusals file: \(r.stdout)")

        let ids = Self.sessionIDs(state)
        try #require(ids.count == 1, "\(ids)")
        let reads = Self.secretReads(state, ids[0])
        #expect(reads.sorted() == [h + "/.aws/credentials", h + "/.aws/credentials", h + "/.netrc"], "\(reads)")
        // The decoys are files of the session, owner-only, and still empty.
        let decoys = state + "/agentpen/sessions/" + ids[0] + "/decoys"
        var st = stat()
        #expect(lstat(decoys, &st) == 0 && (st.st_mode & 0o777) == 0o700, "\(String(st.st_mode, radix: 8))")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: decoys)) ?? [] {
            #expect(lstat(decoys + "/" + name, &st) == 0 && st.st_size == 0, "\(name) is not empty")
        }
        // The exit summary: the count, and the paths reached for.
        let lines = r.stderr.split(separator: "\n").map(String.init)
        let ended = lines.first { $0.hasPrefix("agentpen: session \(ids[0]) ended:") } ?? ""
        #expect(ended.contains("3 secret reads") && !ended.contains("secret-read"), "\(r.stderr)")
        #expect(lines.contains("agentpen: secrets reached for: \(h)/.aws/credentials ×2, \(h)/.netrc (empty decoys: the real files are not in the sandbox)"),
                "\(r.stderr)")
        // watch shows them (the final view, off a terminal).
        let w = try f.agentpen(["watch", ids[0]], env: ["XDG_STATE_HOME": state])
        #expect(w.status == 0 && w.stdout.contains("secret-read") && w.stdout.contains("\(h)/.netrc"), "\(w.stdout) \(w.stderr)")
    }

    @Test func aRunThatReadsNoSecretHasNoSecretEventOrLine() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let r = try f.sh("ls -A ~ ~/.ssh > /dev/null; echo ok", env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0 && r.stdout.contains("ok"), "\(r.stderr)")
        let ids = Self.sessionIDs(state)
        try #require(ids.count == 1)
        #expect(Self.secretReads(state, ids[0]).isEmpty)
        #expect(!r.stderr.contains("secret"), "\(r.stderr)")
    }

    /// `--mount ~/.aws` and the config file's `mounts = ["~/.ssh"]` show the real
    /// files: no decoy lies over them, and reading them is no secret-read.
    @Test func aPathTheUserMountedIsNotShadowed() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        try f.write(f.home + "/.config/agentpen/config.toml", "mounts = [\"~/.ssh\"]\n")
        let r = try f.sh("cat ~/.aws/credentials; echo; cat ~/.ssh/id_ed25519; echo; cat ~/.netrc; echo \"netrc=$?\"",
                         ["--mount", f.home + "/.aws"], env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("SECRET-AWS") && r.stdout.contains("SECRET-SSH-KEY"), "a mount was shadowed: \(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("netrc=0") && !r.stdout.contains("SECRET-NETRC"), "\(r.stdout)")
        let ids = Self.sessionIDs(state)
        try #require(ids.count == 1)
        #expect(Self.secretReads(state, ids[0]) == [f.home + "/.netrc"], "\(Self.secretReads(state, ids[0]))")
        // --dry-run names the decoys the plan makes: the mounted stores have none.
        let dry = try f.agentpen(["--dry-run", "--mount", f.home + "/.aws", "--", "/bin/true"], env: ["XDG_STATE_HOME": state])
        let line = dry.stdout.split(separator: "\n").first { $0.contains("empty read-only decoys (files") }.map(String.init) ?? ""
        #expect(line.contains(f.home + "/.netrc") && line.contains(f.home + "/.kube/config"), "\(dry.stdout)")
        #expect(!line.contains("/.aws/") && !line.contains("/.ssh/"), "mounted, yet a decoy: \(line)")
    }
}
