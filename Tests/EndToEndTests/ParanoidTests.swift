import Foundation
import Testing

/// The paranoid profile: the agent works on a throwaway copy of the project
/// (`agentpen review`, `agentpen apply`), on throwaway copies of its config
/// directories (only the login file comes back), with only its own API hosts
/// and no read-write mounts.
@Suite struct ParanoidTests {
    /// Every host of the claude preset taken out, so these runs need no network world.
    static let offline = "remove_hosts = [\"*.anthropic.com\", \"claude.ai\", \"*.claude.com\"]\n"

    @Test func theProjectIsAThrowawayCopyUntilApplied() throws {
        let f = try Fixture()
        try f.write(f.project + "/file.txt", "original\n")
        try f.write(f.project + "/gone.txt", "to be removed\n")
        let script = """
        echo changed > file.txt; echo new > new.txt; rm gone.txt
        mkdir -p sub/nested/.git/hooks && echo deep > sub/deep.txt && echo evil > sub/nested/.git/hooks/post-checkout
        ln -s ../../.ssh/id_ed25519 sub/key
        echo 'echo evil' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit
        cat file.txt; echo RAN
        """
        let r = try f.agentpen(["--profile", "paranoid", "--", "/bin/sh", "-c", script])
        #expect(r.status == 0 && r.stdout.contains("changed\nRAN"), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("agentpen review"), "\(r.stderr)")
        // Nothing reached the project.
        #expect(f.read(f.project + "/file.txt") == "original\n" && f.read(f.project + "/gone.txt") != nil)
        #expect(!FileManager.default.fileExists(atPath: f.project + "/new.txt"))
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/hooks/pre-commit"))

        // A second run goes on in the same copy.
        let again = try f.agentpen(["--profile", "paranoid", "--", "/bin/cat", "new.txt"])
        #expect(again.stdout == "new\n", "\(again.stdout) \(again.stderr)")

        let review = try f.agentpen(["review"])
        #expect(review.status == 0, "\(review.stderr)")
        for line in ["write file.txt", "write new.txt", "remove gone.txt", "mkdir sub", "write sub/deep.txt", "symlink sub/key", "+changed"] {
            #expect(review.stdout.contains(line), "\(line): \(review.stdout)")
        }
        #expect(!review.stdout.contains("pre-commit"), "\(review.stdout)")

        let apply = try f.agentpen(["apply"])
        #expect(apply.status == 0, "\(apply.stdout) \(apply.stderr)")
        #expect(f.read(f.project + "/file.txt") == "changed\n" && f.read(f.project + "/new.txt") == "new\n")
        #expect(f.read(f.project + "/sub/deep.txt") == "deep\n" && f.read(f.project + "/gone.txt") == nil)
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: f.project + "/sub/key")) == "../../.ssh/id_ed25519")
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/hooks/pre-commit"), "git internals were applied")
        #expect(!FileManager.default.fileExists(atPath: f.project + "/sub/nested/.git"), "a nested repository's git dir was applied")
        #expect(try f.agentpen(["review"]).stdout.contains("nothing to review"))
        #expect(try f.agentpen(["apply"]).status == 2)
    }

    /// The agent's config directory is a copy: a hook planted in its settings is
    /// thrown away, its refreshed login comes back.
    @Test func configDirectoriesAreThrowawayCopiesButTheLogin() throws {
        let f = try Fixture()
        try f.write(f.home + "/.claude/settings.json", "{}\n")
        try f.write(f.home + "/.claude/.credentials.json", "{\"token\":\"old\"}\n")
        try f.write(f.home + "/.config/agentpen/config.toml", "profile = \"paranoid\"\n" + Self.offline)
        let script = """
        echo '{"hooks":{"Stop":[{"command":"evil"}]}}' > ~/.claude/settings.json
        echo '{"token":"new"}' > ~/.claude/.credentials.json
        echo planted > ~/.claude/CLAUDE.md
        cat ~/.claude/settings.json; echo RAN
        """
        let r = try f.agentpen(["--agent", "claude", "--", "/bin/sh", "-c", script])
        #expect(r.status == 0 && r.stdout.contains("evil") && r.stdout.contains("RAN"), "\(r.stdout) \(r.stderr)")
        #expect(f.read(f.home + "/.claude/settings.json") == "{}\n", "a change to the agent's config came back")
        #expect(!FileManager.default.fileExists(atPath: f.home + "/.claude/CLAUDE.md"))
        #expect(f.read(f.home + "/.claude/.credentials.json") == "{\"token\":\"new\"}\n", "the login did not come back: \(r.stderr)")
        #expect(r.stderr.contains("copied back"), "\(r.stderr)")
    }

    @Test func onlyTheAgentsHostsAndNoReadWriteMounts() throws {
        let f = try Fixture()
        try f.write(f.home + "/data/x", "x")
        try f.write(f.home + "/.config/agentpen/config.toml", "allow = [\"pypi.org\"]\nmounts_rw = [\"~/data\"]\n")
        let rw = try f.agentpen(["--profile", "paranoid", "--mount-rw", "~/data", "--", "/bin/true"])
        #expect(rw.status == 2 && rw.stderr.contains("refused by the paranoid profile"), "\(rw.stderr)")
        let allow = try f.agentpen(["--profile", "paranoid", "--allow", "example.org", "--", "/bin/true"])
        #expect(allow.status == 2 && allow.stderr.contains("only the agent's own API hosts"), "\(allow.stderr)")
        let dry = try f.agentpen(["--profile", "paranoid", "--dry-run", "--agent", "claude", "--", "/bin/sh"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("api.anthropic.com") && !dry.stdout.contains("allowed hosts (TLS on port 443 only): pypi.org")
                && !dry.stdout.contains(", pypi.org"), "\(dry.stdout)")
        #expect(dry.stdout.contains("dropped host (paranoid) = pypi.org") && dry.stdout.contains("dropped mounts_rw (paranoid) = ~/data"), "\(dry.stdout)")
        #expect(dry.stdout.contains("a throwaway copy"), "\(dry.stdout)")
        // A dry run copies nothing.
        #expect(!FileManager.default.fileExists(atPath: f.home + "/.local/state/agentpen/review"))
        // An untrusted project file may ask for it (it tightens).
        try f.write(f.project + "/.agentpen.toml", "profile = \"paranoid\"\n")
        let asked = try f.agentpen(["--dry-run", "--", "/bin/sh"])
        #expect(asked.stdout.contains("profile = paranoid") && asked.stdout.contains("a throwaway copy"), "\(asked.stdout) \(asked.stderr)")
    }
}
