import AgentpenCommandLine
import Testing
@testable import AgentpenPolicy

/// The whole plan (bubblewrap's argv as rendered, the environment, generated
/// files, descriptors, Landlock paths, notes) for fixed inputs, compared with
/// what it was before the plan was split into stages and typed: a refactor of
/// the planner must not change a byte of it. When a change of behaviour is
/// meant, update the expected text in PlanGoldenExpected.swift and say why.
@Suite struct PlanGoldenTests {
    static let nixos: [String: FakeFS.Node] = [
        "/nix/store/abc-bash/bin/sh": .file("", exec: true), "/nix/store/swift-lib/lib/libswiftCore.so": .file("", exec: false),
        "/run/current-system": .link("/nix/store/sys-1"), "/run/booted-system": .link("/nix/store/sys-0"),
        "/nix/store/sys-1/sw/bin/sh": .link("/nix/store/abc-bash/bin/sh"), "/bin/sh": .link("/nix/store/abc-bash/bin/sh"),
        "/usr/bin/env": .file("", exec: true), "/etc/static": .link("/etc/static-target"), "/etc/nsswitch.conf": .file("", exec: false),
        "/home/u/src/p/README": .file("", exec: false), "/self/agentpen": .file("", exec: true),
    ]

    static let venv = "/home/u/.local/share/tool/venv"
    static var agentInVenv: [String: FakeFS.Node] {
        debianLike.merging([
            "/home/u/.local/bin/tool": .link("../share/tool/venv/bin/tool"),
            venv + "/pyvenv.cfg": .file("home = /usr/bin\n", exec: false),
            venv + "/bin/python3": .link("/usr/bin/python3"),
            venv + "/bin/tool": .file("#!\(venv)/bin/python3\nprint(1)\n", exec: true),
            "/srv/ro/a": .file("", exec: false), "/srv/rw/b": .file("", exec: false),
            "/etc/corp/ca.pem": .file("CA", exec: false), "/home/u/.tool/x": .file("", exec: false),
            "/home/u/.toolrc": .file("", exec: false),
        ]) { $1 }
    }

    static let preset = try! Preset(name: "tool", text: "rw ~/.tool\nrw ~/.tool-new\nro ~/.toolrc\nro ~/.missing\nenv TOOL_KEY\nsetenv TOOL_HOME=~/.tool\narg --yes\n")

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var args: [String]
        var nodes: [String: FakeFS.Node]
        var project = "/home/u/src/p"
        var preset: Preset?
        var network = NetworkMode.none
        var edit: @Sendable (inout HostFacts) -> Void = { _ in }
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "plain", args: ["--", "/bin/sh", "-c", "true"], nodes: debianLike),
        Case(name: "worktree", args: ["--", "/bin/sh"], nodes: GitPlanTests.worktree),
        Case(name: "worktree-parent-rw", args: ["--allow-parent-git", "--", "/bin/sh"], nodes: GitPlanTests.worktree),
        Case(name: "submodule", args: ["--", "/bin/sh"], nodes: GitPlanTests.submodule, project: GitPlanTests.sub),
        Case(name: "no-git-root", args: [], nodes: GitPlanTests.base, edit: { f in
            f.uid = 0; f.gid = 0; f.user = "root"; f.shell = nil; f.callerEnv["SHELL"] = "/usr/bin/sh"
        }),
        Case(name: "venv-agent-mounts-preset", args: ["--mount", "/srv/ro", "--mount-rw", "/srv/rw", "--tmpfs-size", "1G",
                                                      "--env", "EXTRA", "--", "tool", "--flag"],
             nodes: agentInVenv, preset: preset, network: .proxied(hostsFile: "10.0.0.1 api.example\n", resolvConf: "nameserver 10.0.0.1\n"),
             edit: { f in
                 f.callerEnv["PATH"] = "/home/u/.local/bin:/usr/bin:/nonexistent:relative:/usr/bin"
                 f.callerEnv["SSL_CERT_FILE"] = "/etc/corp/ca.pem"
                 f.callerEnv["TOOL_KEY"] = "k"; f.callerEnv["EXTRA"] = "e"; f.callerEnv["LC_ALL"] = "C"
                 f.callerEnv["TERM"] = "xterm"; f.callerEnv["SHELL"] = "/bin/zsh"
                 f.memoryTotal = 16 << 30
                 f.cgroup = CgroupPlanTests.desktop()
                 f.selfLibraryDirs = ["/usr/lib", "/opt/swift/lib", "/opt/swift/lib"]
             }),
        Case(name: "ro-config", args: ["--ro-config", "--no-cgroup", "--", "/bin/sh"], nodes: agentInVenv, preset: preset),
        Case(name: "nixos", args: ["--", "sh"], nodes: nixos, edit: { f in
            f.isNixOS = true; f.canDisableUserns = false
            f.callerEnv["PATH"] = "/run/current-system/sw/bin:/bin"
            f.selfLibraryDirs = ["/nix/store/swift-lib/lib", "/opt/x"]
        }),
    ]

    static func describe(_ p: SandboxPlan) -> String {
        var out: [String] = []
        var args = p.bwrapArgs[...]
        while let a = args.first {
            args = args.dropFirst()
            var line = [a]
            while let next = args.first, !next.hasPrefix("--") { line.append(next); args = args.dropFirst() }
            out.append("bwrap " + line.joined(separator: " "))
        }
        out.append("inner " + p.innerCommand.joined(separator: " "))
        out.append("command " + p.command.joined(separator: " "))
        for v in p.env { out.append("env \(v.name)=\(v.value)") }
        for f in p.dataFiles { out.append("file \(f.fd) \(f.path) \(f.content.debugDescription)") }
        for f in p.pathFDs { out.append("pathfd \(f.fd) \(f.path)") }
        out.append("seccomp \(p.seccompFD) cgroupfd \(p.cgroupFD) cgroup \(p.cgroup)")
        for w in p.writable { out.append("landlock \(w)") }
        for w in p.hostWritable { out.append("hostWritable \(w)") }
        for c in p.createBeforeRun { out.append("create \(c)") }
        for g in p.gitDirs { out.append("gitdir \(g)") }
        for n in p.notes { out.append("note \(n)") }
        return out.joined(separator: "\n")
    }

    @Test(arguments: cases)
    func planIsUnchanged(_ c: Case) throws {
        var f = facts()
        c.edit(&f)
        let p = try SandboxPlan.make(options: try Options.parse(c.args), facts: f, project: c.project,
                                     preset: c.preset, network: c.network, fs: FakeFS(c.nodes))
        let actual = Self.describe(p)
        guard let expected = PlanGoldenExpected.plans[c.name] else {
            print("GOLDEN-BEGIN \(c.name)\n\(actual)\nGOLDEN-END")
            Issue.record("no expected plan for \(c.name)")
            return
        }
        #expect(actual == expected)
        if actual != expected {
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
            for i in 0..<max(a.count, e.count) where i >= a.count || i >= e.count || a[i] != e[i] {
                Issue.record("first difference at line \(i + 1): \(i < a.count ? String(a[i]) : "(end)") ≠ expected \(i < e.count ? String(e[i]) : "(end)")")
                break
            }
        }
    }
}
