import Foundation
import Testing

/// `hide` masks, the project file read-only inside, and agentpen's own
/// directories never mounted into the sandbox.
@Suite struct HideAndProtectTests {
    /// hide from the untrusted project file (it tightens): the masked paths
    /// read as empty inside and cannot be written, renamed or removed; the
    /// files on the host are untouched.
    @Test func hideMasksFilesAndDirectories() throws {
        let f = try Fixture()
        try f.write(f.project + "/.env", "SECRET-DOTENV")
        try f.write(f.project + "/server.pem", "SECRET-PEM")
        try f.write(f.project + "/.x.pem", "SECRET-DOTPEM")
        try f.write(f.project + "/secrets/db.key", "SECRET-DBKEY")
        try f.write(f.project + "/config/prod.key", "SECRET-PRODKEY")
        try f.write(f.project + "/config/app.yml", "visible: yes")
        try f.write(f.project + "/sub/server.pem", "nested-pem")
        try f.write(f.project + "/.agentpen.toml", "hide = [\".env\", \"*.pem\", \"secrets\", \"config/*.key\"]\n")
        let script = """
        for p in .env server.pem .x.pem secrets/db.key config/prod.key; do printf '%s=[%s]\\n' "$p" "$(cat "$p" 2>&1)"; done
        ls -A secrets; echo "ls=$?"
        cat config/app.yml; echo
        cat sub/server.pem; echo
        echo planted > .env 2>/dev/null && echo WROTE-ENV
        echo planted > secrets/new 2>/dev/null && echo WROTE-SECRETS
        mv server.pem moved.pem 2>/dev/null && echo MOVED
        rm -f .env 2>/dev/null && [ ! -e .env ] && echo REMOVED
        echo RAN
        """
        let r = try f.sh(script)
        #expect(r.status == 0, "\(r.status) \(r.stderr)")
        #expect(r.stdout.contains("RAN"), "\(r.stdout) \(r.stderr)")
        #expect(!r.stdout.contains("SECRET-"), "\(r.stdout)")
        for p in [".env", "server.pem", ".x.pem", "config/prod.key"] { #expect(r.stdout.contains("\(p)=[]"), "\(p): \(r.stdout)") }
        #expect(r.stdout.contains("ls=0"), "an empty directory in place of secrets: \(r.stdout)")
        #expect(r.stdout.contains("visible: yes") && r.stdout.contains("nested-pem"), "only what the patterns name: \(r.stdout)")
        for bad in ["WROTE-ENV", "WROTE-SECRETS", "MOVED", "REMOVED"] { #expect(!r.stdout.contains(bad), "\(bad): \(r.stdout)") }
        #expect(f.read(f.project + "/.env") == "SECRET-DOTENV")
        #expect(f.read(f.project + "/server.pem") == "SECRET-PEM")
        #expect(f.read(f.project + "/secrets/db.key") == "SECRET-DBKEY")
        #expect(!FileManager.default.fileExists(atPath: f.project + "/secrets/new"))
        let dry = try f.agentpen(["--dry-run", "--", "/bin/sh"])
        #expect(dry.stdout.contains("hide \(f.realProject)/.env"), "\(dry.stdout)")
    }

    /// A hide pattern meeting a symlink does not follow it out of the project,
    /// and a symlink named by a pattern is masked as itself.
    @Test func hideDoesNotFollowSymlinks() throws {
        let f = try Fixture()
        try f.write(f.project + "/real.env", "SECRET-REAL")
        try FileManager.default.createSymbolicLink(atPath: f.project + "/.env", withDestinationPath: "real.env")
        try FileManager.default.createSymbolicLink(atPath: f.project + "/out", withDestinationPath: f.home)
        try f.write(f.project + "/.agentpen.toml", "hide = [\".env\", \"out/*\", \"out\"]\n")
        let r = try f.sh("cat .env; cat real.env; ls -A out/ 2>&1; echo RAN")
        #expect(r.status == 0 && r.stdout.contains("RAN"), "\(r.stdout) \(r.stderr)")
        // .env's target in the project is masked; nothing is mounted through `out`.
        #expect(!r.stdout.contains("SECRET-REAL"), "\(r.stdout)")
        #expect(f.read(f.project + "/real.env") == "SECRET-REAL")
        #expect(f.read(f.home + "/.bashrc") == "# original bashrc\n")
    }

    /// The project file cannot be changed from inside: not written, not
    /// replaced, not removed (so the agent cannot plant keys for the next run).
    @Test func projectFileIsReadOnlyInside() throws {
        let f = try Fixture()
        try f.write(f.project + "/.agentpen.toml", "hide = [\".env\"]\n")
        let script = """
        echo 'mounts = ["~/.ssh"]' >> .agentpen.toml 2>/dev/null && echo APPENDED
        printf 'x' > new.toml; mv -f new.toml .agentpen.toml 2>/dev/null && echo REPLACED
        rm -f .agentpen.toml 2>/dev/null; [ -e .agentpen.toml ] || echo REMOVED
        echo RAN
        """
        let r = try f.sh(script)
        #expect(r.stdout.contains("RAN"), "\(r.stderr)")
        for bad in ["APPENDED", "REPLACED", "REMOVED"] { #expect(!r.stdout.contains(bad), "\(bad): \(r.stdout)") }
        #expect(f.read(f.project + "/.agentpen.toml") == "hide = [\".env\"]\n")
    }

    /// No mount, from a flag, the global config or a preset, may show
    /// agentpen's config, trust or state directories inside.
    @Test(arguments: [["--mount", "~/.config"], ["--mount-rw", "~/.config/agentpen"], ["--mount", "~/.local/state"],
                      ["--mount-rw", "~/.local/state/agentpen/trust"]])
    func mountsExposingAgentpensOwnDirectoriesAreRefused(flag: [String]) throws {
        let f = try Fixture()
        try f.write(f.home + "/.config/agentpen/config.toml", "hide = [\".env\"]\n")
        try f.write(f.home + "/.local/state/agentpen/trust/x", "")
        let r = try f.agentpen(flag + ["--", "/bin/echo", "RAN"])
        #expect(r.status == 2, "\(flag): \(r.status) \(r.stderr)")
        #expect(r.stderr.contains("agentpen's own"), "\(r.stderr)")
        #expect(!r.stdout.contains("RAN"))
    }

    @Test func aConfigMountOrAnXDGVariableCannotExposeThemEither() throws {
        let f = try Fixture()
        try f.write(f.home + "/.config/agentpen/config.toml", "mounts_rw = [\"~/.local/state\"]\n")
        try FileManager.default.createDirectory(atPath: f.home + "/.local/state/agentpen", withIntermediateDirectories: true)
        let r = try f.agentpen(["--", "/bin/echo", "RAN"])
        #expect(r.status == 2 && r.stderr.contains("agentpen's own"), "\(r.status) \(r.stderr)")
        // The state directory moved by XDG_STATE_HOME to a place a --mount-rw shows.
        try f.write(f.home + "/.config/agentpen/config.toml", "")
        try FileManager.default.createDirectory(atPath: f.home + "/work/state", withIntermediateDirectories: true)
        let moved = try f.agentpen(["--mount-rw", "~/work", "--", "/bin/echo", "RAN"], env: ["XDG_STATE_HOME": f.home + "/work/state"])
        #expect(moved.status == 2 && moved.stderr.contains("agentpen's own"), "\(moved.status) \(moved.stderr)")
        // A project that is one of them.
        let inside = try f.agentpen(["-C", f.home + "/.config/agentpen", "--", "/bin/echo", "RAN"])
        #expect(inside.status == 2 && inside.stderr.contains("agentpen's own"), "\(inside.status) \(inside.stderr)")
    }
}

extension Fixture {
    /// The project's real path (the fixture's root may lie under a symlink).
    var realProject: String {
        guard let p = realpath(project, nil) else { return project }
        defer { free(p) }
        return String(cString: p)
    }
}
