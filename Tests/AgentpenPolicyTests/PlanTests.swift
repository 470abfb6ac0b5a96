import AgentpenCommandLine
import Testing
@testable import AgentpenPolicy

/// A filesystem made of a dictionary: path → kind, link target or content.
struct FakeFS: FileSystemView {
    /// `special`: a fifo, socket or device (FileKind.other).
    enum Node { case dir, file(String, exec: Bool), link(String), special }
    var nodes: [String: Node]
    /// Paths agentpen may not open for reading.
    var unreadable: Set<String> = []

    init(_ nodes: [String: Node]) {
        var all = nodes
        // Every ancestor of a listed path is a directory.
        for path in nodes.keys {
            var p = Paths.parent(path)
            while p != "/" { if all[p] == nil { all[p] = .dir }; p = Paths.parent(p) }
        }
        all["/"] = .dir
        self.nodes = all
    }

    func kind(_ path: String) -> FileKind {
        switch nodes[Paths.normalize(path)] {
        case .dir: return .directory
        case .file: return .file
        case .link: return .symlink
        case .special: return .other
        case nil: return .missing
        }
    }
    func readLink(_ path: String) -> String? {
        if case .link(let t) = nodes[Paths.normalize(path)] { return t }
        return nil
    }
    func head(_ path: String, bytes: Int) -> [UInt8] {
        if case .file(let c, _) = nodes[Paths.normalize(path)] { return Array(c.utf8.prefix(bytes)) }
        return []
    }
    func list(_ directory: String) -> [String] {
        let d = Paths.normalize(directory)
        return nodes.keys.filter { $0 != "/" && Paths.parent($0) == d }.map { Paths.basename($0) }
    }
    func isReadable(_ path: String) -> Bool {
        guard let real = Paths.resolve(path, in: self) else { return false }
        return !unreadable.contains(real)
    }
    func isExecutable(_ path: String) -> Bool {
        guard let real = Paths.resolve(path, in: self) else { return false }
        if case .file(_, let x) = nodes[real] { return x }
        return false
    }
}

let debianLike: [String: FakeFS.Node] = [
    "/usr/bin/sh": .file("", exec: true), "/usr/bin/python3": .file("", exec: true),
    "/usr/bin/env": .file("", exec: true), "/usr/lib/x": .file("", exec: false),
    "/bin": .link("usr/bin"), "/lib": .link("usr/lib"), "/etc/ssl/certs/x": .file("", exec: false),
    "/etc/shadow": .file("", exec: false), "/etc/nsswitch.conf": .file("", exec: false),
    "/home/u/.ssh/id": .file("SECRET", exec: false), "/home/u/src/p/.git/hooks/x": .file("", exec: false),
    "/home/u/src/p/.git/config": .file("", exec: false), "/sys": .dir, "/self/agentpen": .file("", exec: true),
]

func facts(_ env: [String: String] = [:]) -> HostFacts {
    HostFacts(uid: 1000, gid: 1000, user: "u", home: "/home/u", shell: "/bin/sh", isNixOS: false,
              callerEnv: ["PATH": "/usr/bin:/bin", "HOME": "/home/u"].merging(env) { $1 },
              selfBinary: "/self/agentpen", selfLibraryDirs: [])
}

func plan(_ args: [String], fs: FakeFS = FakeFS(debianLike), project: String = "/home/u/src/p",
          preset: Preset? = nil, env: [String: String] = [:]) throws -> SandboxPlan {
    try SandboxPlan.make(options: try Options.parse(args), facts: facts(env), project: project,
                         preset: preset, network: .none, fs: fs)
}

/// The argument pairs/triples that follow each occurrence of `flag` (pasta's argv).
func occurrences(_ flag: String, in args: [String], width: Int) -> [[String]] {
    args.indices.filter { args[$0] == flag }.map { Array(args[($0 + 1)...].prefix(width)) }
}

/// `path` bound onto itself, read-only.
func ro(_ path: String) -> BwrapArgument { .bind(source: path, destination: path, readOnly: true) }
/// `path` bound onto itself, read-write.
func rw(_ path: String) -> BwrapArgument { .bind(source: path, destination: path, readOnly: false) }

extension SandboxPlan {
    /// Paths bound from a descriptor the runner opens, read-only or read-write.
    func openedBinds(readOnly: Bool) -> [String] {
        bwrap.compactMap { if case .bindOpened(let p, readOnly) = $0 { p } else { nil } }
    }
    /// Every `--remount-ro` but /dev's.
    var remountedReadOnly: [String] {
        bwrap.compactMap { if case .remountReadOnly(let p) = $0, p != "/dev" { p } else { nil } }
    }
}

@Suite struct OptionsTests {
    @Test func commandEndsOptions() throws {
        let o = try Options.parse(["--allow", "a.example", "codex", "--allow", "x", "-C", "y"])
        #expect(o.command == ["codex", "--allow", "x", "-C", "y"])
        #expect(o.allow.map(\.description) == ["a.example"])
        #expect(o.project == nil)
    }

    @Test func doubleDashAndInlineValues() throws {
        let o = try Options.parse(["--project=/p", "--env=FOO", "--", "-weird-command"])
        #expect(o.project == "/p")
        #expect(o.env == ["FOO"])
        #expect(o.command == ["-weird-command"])
    }

    @Test func badInputIsAUsageError() {
        #expect(throws: Options.UsageError.self) { try Options.parse(["--nope"]) }
        #expect(throws: Options.UsageError.self) { try Options.parse(["--allow"]) }
        #expect(throws: Options.UsageError.self) { try Options.parse(["--allow", "127.0.0.1"]) }
        #expect(throws: Options.UsageError.self) { try Options.parse(["--env", "1BAD"]) }
        #expect(throws: Options.UsageError.self) { try Options.parse(["--check", "--dry-run"]) }
        #expect(throws: Options.UsageError.self) { try Options.parse(["--check=yes"]) }
    }

    @Test func privateAllowKeepsItsPermission() throws {
        let o = try Options.parse(["--allow", "x.example", "--allow-private", "x.example"])
        let list = Allowlist(o.allow)
        #expect(list.patterns.count == 1)
        #expect(list.match("x.example")?.allowsPrivateUpstream == true)
    }

    @Test func helpNamesEveryPresetAndNoInternalMode() {
        for name in Preset.builtinNames { #expect(Options.usage.contains(name)) }
        #expect(!Options.usage.contains("__"))
    }
}

@Suite struct SandboxPlanTests {
    @Test func homeIsEmptyAndProjectIsBound() throws {
        let p = try plan(["--", "/bin/sh"])
        let a = p.bwrap
        let home = try #require(a.firstIndex { if case .tmpfs("/home/u", _, 0o700) = $0 { true } else { false } })
        let project = try #require(a.firstIndex(of: rw("/home/u/src/p")))
        #expect(!a.contains { $0.paths.contains { $0.hasPrefix("/home/u/.ssh") } })
        // The home tmpfs comes before anything bound beneath it.
        #expect(home < project)
        #expect(p.command == ["/bin/sh"])
        #expect(p.writable.contains("/home/u/src/p"))
    }

    @Test func etcIsSelectiveAndIdentityIsGenerated() throws {
        let p = try plan(["--", "/bin/sh"])
        #expect(p.bwrap.contains(ro("/etc/ssl")))
        #expect(p.bwrap.contains(.copy(source: "/etc/nsswitch.conf", path: "/etc/nsswitch.conf")))
        #expect(!p.bwrap.contains { $0.paths.contains("/etc/shadow") })
        #expect(!p.bwrap.contains(ro("/etc")))
        #expect(p.bwrap.contains(.dir("/etc", mode: 0o755)))
        let passwd = try #require(p.dataFiles.first { $0.path == "/etc/passwd" })
        #expect(passwd.content.contains("u:x:1000:1000::/home/u:/bin/sh"))
        #expect(p.dataFiles.map(\.path).contains("/etc/resolv.conf"))
    }

    @Test func mergedUsrIsRecreatedAsSymlinks() throws {
        let p = try plan(["--", "/bin/sh"])
        #expect(p.bwrap.contains(.symlink(target: "usr/bin", path: "/bin")))
        #expect(p.bwrap.contains(ro("/usr")))
    }

    @Test func processIsolationFlags() throws {
        let a = try plan(["--", "/bin/sh"]).bwrap
        for flag: BwrapArgument in [.unshareUser, .disableUserns, .unsharePID, .unshareIPC, .unshareUTS,
                                    .unshareNet, .dieWithParent, .seccomp, .capDropAll, .uid(1000), .gid(1000)] {
            #expect(a.filter { $0 == flag }.count == 1, "\(flag)")
        }
        #expect(!BwrapArgument.render(a).contains("--new-session"))
    }

    @Test(arguments: ["/", "/home/u", "/home"])
    func refusesProjectsThatExposeHome(_ project: String) {
        #expect(throws: PlanError.self) { try plan(["--", "/bin/sh"], project: project) }
    }

    @Test func gitHooksAndConfigAreReadOnly() throws {
        let p = try plan(["--", "/bin/sh"])
        let ro = p.openedBinds(readOnly: true)
        #expect(ro.contains("/home/u/src/p/.git/hooks"))
        #expect(ro.contains("/home/u/src/p/.git/config"))
    }

    @Test func submoduleGitDirsAreGuarded() throws {
        var nodes = debianLike
        nodes["/home/u/src/p/.git/modules/lib/config"] = .file("", exec: false)
        nodes["/home/u/src/p/.git/modules/lib/HEAD"] = .file("", exec: false)
        nodes["/home/u/src/p/.git/modules/vendor/x/config"] = .file("", exec: false)
        nodes["/home/u/src/p/.git/modules/vendor/x/HEAD"] = .file("", exec: false)
        nodes["/home/u/src/p/.git/modules/vendor/x/hooks/pre-commit.sample"] = .file("", exec: false)
        let p = try plan(["--", "/bin/sh"], fs: FakeFS(nodes))
        let ro = p.openedBinds(readOnly: true)
        for path in ["/home/u/src/p/.git/modules/lib/config", "/home/u/src/p/.git/modules/lib/hooks",
                     "/home/u/src/p/.git/modules/vendor/x/config", "/home/u/src/p/.git/modules/vendor/x/hooks"] {
            #expect(ro.contains(path), "\(path) not guarded")
        }
        #expect(p.createBeforeRun.contains(.directory("/home/u/src/p/.git/modules/lib/hooks")))
    }

    @Test func missingHooksAreCreatedFirst() throws {
        var nodes = debianLike
        nodes["/home/u/src/p/.git/hooks/x"] = nil
        nodes["/home/u/src/p/.git/HEAD"] = .file("", exec: false)
        let p = try plan(["--", "/bin/sh"], fs: FakeFS(nodes))
        #expect(p.createBeforeRun.contains(.directory("/home/u/src/p/.git/hooks")))
    }

    @Test func noRepositoryGetsAReadOnlyEmptyGitDir() throws {
        let fs = FakeFS(debianLike.filter { !$0.key.contains("/.git/") }.merging(["/home/u/src/q/f": .file("", exec: false)]) { $1 })
        let p = try plan(["--", "/bin/sh"], fs: fs, project: "/home/u/src/q")
        #expect(p.createBeforeRun == [.transientMountPoint("/home/u/src/q/.git")])
        #expect(p.remountedReadOnly == ["/home/u/src/q/.git"])
        #expect(p.bwrap.contains(.tmpfs("/home/u/src/q/.git", size: nil, mode: 0o555)))
    }

    @Test func worktreeParentIsReadOnlyUnlessAllowed() throws {
        var nodes = debianLike
        nodes["/home/u/src/wt/.git"] = .file("gitdir: /home/u/src/p/.git/worktrees/wt\n", exec: false)
        nodes["/home/u/src/p/.git/worktrees/wt/commondir"] = .file("../..\n", exec: false)
        // A verified parent: a real git dir whose worktrees/wt/gitdir points back.
        nodes["/home/u/src/p/.git/worktrees/wt/gitdir"] = .file("/home/u/src/wt/.git\n", exec: false)
        nodes["/home/u/src/p/.git/HEAD"] = .file("ref: refs/heads/main\n", exec: false)
        nodes["/home/u/src/p/.git/objects/pack"] = .dir
        nodes["/home/u/src/p/.git/refs/heads"] = .dir
        let fs = FakeFS(nodes)
        let locked = try plan(["--", "/bin/sh"], fs: fs, project: "/home/u/src/wt")
        #expect(locked.openedBinds(readOnly: true).contains("/home/u/src/p/.git"))
        #expect(locked.openedBinds(readOnly: false).contains("/home/u/src/p/.git/worktrees/wt"))
        let open = try plan(["--allow-parent-git", "--", "/bin/sh"], fs: fs, project: "/home/u/src/wt")
        #expect(open.openedBinds(readOnly: false).contains("/home/u/src/p/.git"))
        // Hooks stay read-only even then.
        #expect(open.openedBinds(readOnly: true).contains("/home/u/src/p/.git/hooks"))
    }

    @Test func mountsMayNotExposeTheHome() {
        #expect(throws: PlanError.self) { try plan(["--mount", "/home/u", "--", "/bin/sh"]) }
        #expect(throws: PlanError.self) { try plan(["--mount-rw", "/", "--", "/bin/sh"]) }
        #expect(throws: PlanError.self) { try plan(["--mount", "/nonexistent", "--", "/bin/sh"]) }
    }

    @Test func presetPathsAndEnvironment() throws {
        let preset = try Preset(name: "t", text: "rw ~/.tool\nro ~/.toolrc\nenv TOOL_KEY\nsetenv TOOL_HOME=~/.tool\n")
        let p = try plan(["--", "/bin/sh"], preset: preset, env: ["TOOL_KEY": "k", "SSH_AUTH_SOCK": "/s", "SECRET": "x"])
        #expect(p.createBeforeRun.contains(.directory("/home/u/.tool")))
        #expect(p.bwrap.contains(rw("/home/u/.tool")))
        let env = Dictionary(uniqueKeysWithValues: p.env.map { ($0.name, $0.value) })
        #expect(env["TOOL_KEY"] == "k")
        #expect(env["TOOL_HOME"] == "/home/u/.tool")
        #expect(env["SSH_AUTH_SOCK"] == nil)
        #expect(env["SECRET"] == nil)
        #expect(p.writable.contains("/home/u/.tool"))
    }

    @Test func readOnlyConfigMode() throws {
        var nodes = debianLike
        nodes["/home/u/.tool/settings.json"] = .file("{}", exec: false)
        let preset = try Preset(name: "t", text: "rw ~/.tool\nrw ~/.missing\n")
        let p = try plan(["--ro-config", "--", "/bin/sh"], fs: FakeFS(nodes), preset: preset)
        #expect(p.bwrap.contains(ro("/home/u/.tool")))
        #expect(!p.bwrap.contains(rw("/home/u/.tool")))
        #expect(!p.writable.contains("/home/u/.tool"))
        #expect(p.createBeforeRun.isEmpty)   // nothing is created for a read-only run
    }

    /// NixOS: programs live in /nix/store, the system profile is a symlink in /run.
    @Test func nixosLayout() throws {
        let fs = FakeFS([
            "/etc/NIXOS": .file("", exec: false),
            "/nix/store/aaa-bash/bin/sh": .file("", exec: true),
            "/nix/store/sss-system/sw/bin/git": .file("", exec: true),
            "/run/current-system": .link("/nix/store/sss-system"),
            "/bin/sh": .link("/nix/store/aaa-bash/bin/sh"),
            "/usr/bin/env": .file("", exec: true),
            "/home/u/src/p/f": .file("", exec: false),
        ])
        var f = facts()
        f.isNixOS = true
        let p = try SandboxPlan.make(options: try Options.parse(["--", "/bin/sh"]), facts: f, project: "/home/u/src/p",
                                     preset: nil, network: .none, fs: fs)
        #expect(p.bwrap.contains(ro("/nix")))
        #expect(p.bwrap.contains(ro("/bin")))
        // The /run tmpfs comes first, the profile symlink after it.
        let tmpfsRun = try #require(p.bwrap.firstIndex { if case .tmpfs("/run", _, _) = $0 { true } else { false } })
        let link = try #require(p.bwrap.firstIndex(of: .symlink(target: "/nix/store/sss-system", path: "/run/current-system")))
        #expect(tmpfsRun < link)
    }

    @Test func commandNotFound() {
        #expect(throws: PlanError.self) { try plan(["--", "no-such-tool"]) }
    }
}

@Suite struct InstallTreeTests {
    @Test func npmGlobalPackage() throws {
        let fs = FakeFS([
            "/home/u/.npm/bin/claude": .link("../lib/node_modules/@anthropic-ai/claude-code/cli.js"),
            "/home/u/.npm/lib/node_modules/@anthropic-ai/claude-code/cli.js": .file("#!/usr/bin/env node\n", exec: true),
            "/home/u/.nvm/versions/node/v20/bin/node": .file("\u{7f}ELF", exec: true),
            "/home/u/.nvm/versions/node/v20/lib/node_modules/npm/x": .file("", exec: false),
        ])
        let path = "/home/u/.npm/bin:/home/u/.nvm/versions/node/v20/bin:/usr/bin"
        let exe = try InstallTree.locate("claude", path: path, cwd: "/", fs: fs)
        let tree = try InstallTree.plan(for: exe, home: "/home/u", callerPath: path, visible: { $0.hasPrefix("/usr") }, fs: fs)
        #expect(tree.readOnly.contains("/home/u/.npm/lib/node_modules/@anthropic-ai/claude-code"))
        #expect(tree.readOnly.contains("/home/u/.nvm/versions/node/v20"))
        #expect(tree.symlinks.map(\.path) == ["/home/u/.npm/bin/claude"])
        #expect(!tree.readOnly.contains("/home/u") && !tree.readOnly.contains("/home/u/.npm"))
    }

    @Test func pipUserScriptGetsLibNotAllOfLocal() throws {
        let fs = FakeFS([
            "/home/u/.local/bin/aider": .file("#!/usr/bin/python3\n", exec: true),
            "/home/u/.local/lib/python3.11/site-packages/aider/x": .file("", exec: false),
            "/home/u/.local/share/keyrings/login": .file("SECRET", exec: false),
            "/usr/bin/python3": .file("", exec: true),
        ])
        let tree = try InstallTree.plan(for: "/home/u/.local/bin/aider", home: "/home/u", callerPath: "/usr/bin",
                                    visible: { $0.hasPrefix("/usr") }, fs: fs)
        #expect(Set(tree.readOnly) == ["/home/u/.local/bin/aider", "/home/u/.local/lib"])
    }

    @Test func nativeSingleBinary() throws {
        let fs = FakeFS([
            "/home/u/.local/bin/claude": .link("/home/u/.local/share/claude/versions/2.0.1"),
            "/home/u/.local/share/claude/versions/2.0.1": .file("\u{7f}ELF", exec: true),
        ])
        let tree = try InstallTree.plan(for: "/home/u/.local/bin/claude", home: "/home/u", callerPath: "",
                                    visible: { _ in false }, fs: fs)
        #expect(tree.readOnly == ["/home/u/.local/share/claude/versions/2.0.1"])
    }

    @Test func locateLikeExecvp() throws {
        let fs = FakeFS(["/a/tool": .file("", exec: false), "/b/tool": .file("", exec: true)])
        #expect(try InstallTree.locate("tool", path: "/a:/b", cwd: "/", fs: fs) == "/b/tool")
        #expect(throws: InstallTree.LookupError.notExecutable("tool")) { try InstallTree.locate("tool", path: "/a", cwd: "/", fs: fs) }
        #expect(throws: InstallTree.LookupError.notFound("nope")) { try InstallTree.locate("nope", path: "/a:/b", cwd: "/", fs: fs) }
        #expect(try InstallTree.locate("./tool", path: "", cwd: "/b", fs: fs) == "/b/tool")
    }

    @Test func shebangInterpreters() {
        let fs = FakeFS(["/x": .file("#!/usr/bin/env -S node --flag\n", exec: true), "/y": .file("#! /opt/py/bin/python3 -u\n", exec: true)])
        #expect(InstallTree.interpreter(of: "/x", fs: fs) == "node")
        #expect(InstallTree.interpreter(of: "/y", fs: fs) == "/opt/py/bin/python3")
    }
}

@Suite struct NetworkPlanTests {
    @Test func hostsFileListsExactNamesOnly() throws {
        let list = Allowlist([try HostPattern("api.example.com"), try HostPattern("*.cdn.example")])
        let hosts = NetworkPlan.hostsFile(list)
        #expect(hosts.contains("127.0.0.1 api.example.com\n"))
        #expect(!hosts.contains("cdn.example"))
    }

    @Test func pastaHasEveryAutomaticForwardOff() {
        let old = NetworkPlan.PastaFeatures(helpText: "--no-map-gw")
        let a = NetworkPlan.pastaArgs(pasta: "/usr/bin/pasta", hop: .splice, proxyPort: 4000, uid: 1000, gid: 1000,
                                      targetPID: 42, features: old)
        #expect(occurrences("-t", in: a, width: 1) == [["none"]])
        #expect(occurrences("-u", in: a, width: 1) == [["none"]])
        #expect(occurrences("-U", in: a, width: 1) == [["none"]])
        #expect(occurrences("-T", in: a, width: 1) == [["443:4000"]])
        #expect(a.contains("--no-map-gw") && a.contains("--no-udp") && a.contains("--no-icmp"))
        #expect(occurrences("--runas", in: a, width: 1) == [["1000:1000"]])
        #expect(a.last == "42")
        let gw = NetworkPlan.pastaArgs(pasta: "p", hop: .gateway, proxyPort: 4000, uid: 0, gid: 0, targetPID: 1, features: old)
        #expect(occurrences("-T", in: gw, width: 1) == [["none"]])
        #expect(!gw.contains("--no-map-gw"))
        let current = NetworkPlan.PastaFeatures(helpText: "--map-host-loopback ADDR")
        let c = NetworkPlan.pastaArgs(pasta: "p", hop: .splice, proxyPort: 1, uid: 0, gid: 0, targetPID: 1, features: current)
        #expect(occurrences("--map-host-loopback", in: c, width: 1) == [["none"]])
    }
}

@Suite struct SyscallPolicyTests {
    @Test func coversTheIssueList() {
        let names = Set(SyscallPolicy.rules.map(\.syscall))
        for n in ["ptrace", "process_vm_readv", "process_vm_writev", "bpf", "perf_event_open", "keyctl", "add_key",
                  "request_key", "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
                  "fsmount", "fspick", "mount_setattr", "unshare", "setns", "io_uring_setup", "io_uring_enter",
                  "io_uring_register", "userfaultfd", "kexec_load", "kexec_file_load", "init_module", "finit_module",
                  "delete_module", "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "clock_settime",
                  "settimeofday", "ioctl", "clone", "clone3"] {
            #expect(names.contains(n), "\(n) missing")
        }
        #expect(SyscallPolicy.rules.first { $0.syscall == "clone3" }?.action == .errno(SyscallPolicy.ENOSYS))
        let ioctl = SyscallPolicy.rules.filter { $0.syscall == "ioctl" }
        #expect(ioctl.allSatisfy { $0.args.first?.mask == 0xFFFF_FFFF })
    }
}

@Suite struct PathsTests {
    @Test func normalizeAndWithin() {
        #expect(Paths.normalize("/a//b/./c/../d/") == "/a/b/d")
        #expect(Paths.isWithin("/home/u", "/home"))
        #expect(!Paths.isWithin("/home/user2", "/home/u"))
        #expect(Paths.isWithin("/x", "/"))
    }

    @Test func resolveFollowsLinksAndDetectsLoops() {
        let fs = FakeFS(["/a": .link("b"), "/b": .link("/c/d"), "/c/d/f": .file("", exec: false), "/l1": .link("l2"), "/l2": .link("l1")])
        #expect(Paths.resolve("/a/f", in: fs) == "/c/d/f")
        #expect(Paths.resolve("/l1", in: fs) == nil)
        // Relative targets with "..", links in the middle, links to the root, missing parts.
        let more = FakeFS(["/p/q": .link("../r/s"), "/r/s/t": .link("u"), "/r/s/u/v": .file("", exec: false),
                           "/top": .link("/"), "/r/s/w": .link("../../p/q/u")])
        #expect(Paths.resolve("/p/q/t/v", in: more) == "/r/s/u/v")
        #expect(Paths.resolve("/top/p/q/t", in: more) == "/r/s/u")
        #expect(Paths.resolve("/r/s/w/v", in: more) == "/r/s/u/v")
        #expect(Paths.resolve("/", in: more) == "/")
        #expect(Paths.resolve("/top", in: more) == "/")
        #expect(Paths.resolve("/p/q/missing", in: more) == nil)
        #expect(Paths.resolve("/p/./q/../q/t", in: more) == "/r/s/u")
    }
}
