import AgentpenPolicy
import Foundation
import Testing

/// The secret decoys without a mount each (issue 11, startpath): the session's
/// decoy directory is bound read-only once, and each well-known secret path in
/// the private home is a link into it. Every bubblewrap bind costs a mount, a
/// remount and a read of the whole mountinfo; 15 of them were ~4 ms of the
/// start. What must hold as before: the decoys are empty and unwritable, an
/// open through the path or through the link's target is one `secret-read` of
/// the path, nothing else of the session is in reach, and whatever the agent
/// does to the links stays in its own home.
@Suite struct DecoyLinkTests {
    @Test func theDecoysAreNotOneMountEach() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        let r = try f.sh("cat /proc/self/mountinfo", env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stderr)")
        let points = r.stdout.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            return fields.count > 4 ? String(fields[4]) : nil
        }
        let decoys = SecretDecoys.relativePaths.map { f.home + "/" + $0 }
        #expect(!points.isEmpty)
        #expect(points.filter { decoys.contains($0) }.isEmpty, "decoy mounts: \(points.filter { decoys.contains($0) })")
        #expect(points.filter { $0.hasPrefix("/run/agentpen/decoys") }.count == 1, "\(points)")
    }

    @Test func theLinksTargetsAreEmptyUnwritableReportedAndAloneInTheirDirectory() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        // The target directory is the session's decoys alone, read-only; a read
        // through the target counts as a read of the path the link stands at.
        let script = """
            t=$(readlink ~/.netrc || echo ~/.netrc); d=$(dirname "$t")
            echo "target=$t"
            ls -A "$d" | tr '\\n' ' '; echo
            echo planted > "$t" 2>/dev/null; echo "write=$?"
            echo planted >> ~/.netrc 2>/dev/null; echo "append=$?"
            chmod 0666 "$t" 2>/dev/null; echo "chmod=$?"
            touch "$d/new" 2>/dev/null; echo "create=$?"
            mv "$t" "$d/moved" 2>/dev/null; echo "rename=$?"
            ln "$t" ~/hard 2>/dev/null; echo "link=$?"
            cat "$t"; echo "cat=$?"
            [ -s "$t" ]; echo "nonempty=$?"
            i=0; while [ $i -lt 300 ] && ! grep -q -- '.netrc' "$AGENTPEN_REFUSALS"; do i=$((i+1)); sleep 0.05; done
            """
        let r = try f.sh(script, env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        for denied in ["write", "append", "chmod", "create", "rename", "link"] {
            #expect(!r.stdout.contains("\(denied)=0"), "\(denied) succeeded: \(r.stdout)")
        }
        #expect(r.stdout.contains("cat=0") && r.stdout.contains("nonempty=1"), "\(r.stdout)")
        #expect(!r.stdout.contains("events.jsonl") && !r.stdout.contains("view") && !r.stdout.contains("SECRET"), "\(r.stdout)")
        let ids = SecretDecoyTests.sessionIDs(state)
        try #require(ids.count == 1, "\(ids)")
        #expect(SecretDecoyTests.secretReads(state, ids[0]) == [f.home + "/.netrc"])
        let decoys = state + "/agentpen/sessions/" + ids[0] + "/decoys"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: decoys)) ?? [] {
            var st = stat()
            #expect(lstat(decoys + "/" + name, &st) == 0 && st.st_size == 0 && (st.st_mode & 0o777) == 0o600, "\(name)")
        }
        #expect(f.read(f.home + "/.netrc")?.hasPrefix("SECRET") == true)
    }

    @Test func whatTheAgentPutsAtADecoyPathStaysInItsHome() throws {
        let f = try Fixture()
        let state = f.root + "/state"
        // The home is the sandbox's own tmpfs: replacing the link there is the
        // agent's business; neither the host's file nor the decoy changes.
        let script = """
            rm -f ~/.npmrc 2>/dev/null; echo "rm=$?"
            echo planted > ~/.npmrc 2>/dev/null; echo "write=$?"
            ln -sf /etc/passwd ~/.pypirc 2>/dev/null; echo "relink=$?"
            cat ~/.ssh/id_ed25519; echo "cat=$?"
            i=0; while [ $i -lt 300 ] && ! grep -q -- 'id_ed25519' "$AGENTPEN_REFUSALS"; do i=$((i+1)); sleep 0.05; done
            """
        let r = try f.sh(script, env: ["XDG_STATE_HOME": state])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(f.read(f.home + "/.npmrc") == "SECRET-NPM")
        #expect(f.read(f.home + "/.pypirc")?.hasPrefix("SECRET") == true)
        let ids = SecretDecoyTests.sessionIDs(state)
        try #require(ids.count == 1, "\(ids)")
        #expect(SecretDecoyTests.secretReads(state, ids[0]) == [f.home + "/.ssh/id_ed25519"])
        let decoys = state + "/agentpen/sessions/" + ids[0] + "/decoys"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: decoys)) ?? [] {
            var st = stat()
            #expect(lstat(decoys + "/" + name, &st) == 0 && st.st_size == 0, "\(name) is not empty")
        }
    }
}
