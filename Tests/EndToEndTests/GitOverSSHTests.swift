import Foundation
import Testing

/// Issue 11 (net): git over ssh through `--allow NAME:PORT`, against the test
/// world's real sshd (git.test:2222, a git-shell account, key authentication).
/// The key is one the user mounts (`--mount`); the ssh agent socket never enters.
extension NetworkTests {
    @Suite struct GitOverSSH {
        /// The world's client test key and pinned host key, copied into the fixture's
        /// home as a user keeps them (the key 0600, as ssh requires).
        static func keys(_ f: NetFixture) throws -> (key: String, knownHosts: String) {
            let dir = try World.require() + "/ssh"
            let key = f.f.home + "/.ssh/apw_git_ed25519", known = f.f.home + "/.ssh/known_hosts_apw"
            try f.f.write(key, try String(contentsOfFile: dir + "/client_ed25519", encoding: .utf8), mode: 0o600)
            try f.f.write(known, try String(contentsOfFile: dir + "/known_hosts", encoding: .utf8))
            return (key, known)
        }

        static func sshCommand(_ k: (key: String, knownHosts: String)) -> String {
            "ssh -i \(k.key) -o UserKnownHostsFile=\(k.knownHosts) -o StrictHostKeyChecking=yes -o BatchMode=yes"
                + " -o IdentitiesOnly=yes -o ConnectTimeout=10"
        }

        @Test(arguments: ["direct", "pasta"])
        func gitCloneOverSSHToAnAllowedNameAndPort(_ hop: String) throws {
            let f = try NetFixture()
            let k = try Self.keys(f)
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let r = try f.sh(["--hop", hop, "--log", log, "--allow-private", "git.test:2222",
                              "--mount", k.key, "--mount", k.knownHosts], """
                echo "agent=${SSH_AUTH_SOCK:-unset}"
                GIT_SSH_COMMAND='\(Self.sshCommand(k))' git clone -q ssh://apw-git@git.test:2222\(World.dir ?? "/run/apw")/ssh/repo.git viassh \
                    && cat viassh/README
                echo "clone=$?"
                """, env: ["SSH_AUTH_SOCK": f.root + "/agent.sock"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("hello from the test repo\nclone=0"), "git clone over ssh failed: \(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("agent=unset"), "the ssh agent socket entered the sandbox: \(r.stdout)")
            let allowed = readEvents(log).filter { $0["kind"] as? String == "connection-allowed" }
            #expect(allowed.contains { $0["subject"] as? String == "git.test"
                && ($0["details"] as? [String: String])?["upstream"] == "198.18.0.10:2222" }, "\(allowed)")
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: ["198.18.0.10:2222"]).isEmpty, "\(arrived)")
            #expect(arrived.contains { $0.ev == "arrive" && $0["dport"] == "2222" && $0["src"] == World.host4 },
                    "agentpen did not dial the sshd: \(arrived)")
        }

        @Test func aNameAllowedWithoutThePortHasNoSSH() throws {
            // TLS on 443 only: the same clone is refused at connect time and reported.
            let f = try NetFixture()
            let k = try Self.keys(f)
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let r = try f.sh(["--hop", "direct", "--log", log, "--allow-private", "git.test", "--allow-private", "other.test:2222",
                              "--mount", k.key, "--mount", k.knownHosts], """
                GIT_SSH_COMMAND='\(Self.sshCommand(k))' git clone -q ssh://apw-git@git.test:2222\(World.dir ?? "/run/apw")/ssh/repo.git viassh
                echo "clone=$?"
                """)
            #expect(r.stdout.contains("clone=") && !r.stdout.contains("clone=0"), "\(r.stdout) \(r.stderr)")
            let blocked = readEvents(log).filter { $0["kind"] as? String == "connection-blocked" }
            #expect(blocked.contains { $0["subject"] as? String == "git.test"
                && ($0["reason"] as? String ?? "").contains("port 2222 is not allowed for git.test") }, "\(blocked)")
            #expect(r.stderr.contains("agentpen: blocked git.test"), "\(r.stderr)")
            try #expect(Arrivals.unexpected(mark.since()).isEmpty)
        }
    }
}
