import AgentpenCommandLine
import Testing
@testable import AgentpenPolicy

/// Issue 7, kernel surface: the filter fails closed and socket families are an allowlist.
@Suite struct SeccompResolutionTests {
    @Test func namedCallsGoInByTheirNumber() throws {
        #expect(try SyscallPolicy.resolve("ptrace", libseccompNumber: 101, arch: .x86_64) == .number(101))
    }

    @Test func callsLibseccompCannotNameGoInByRawNumber() throws {
        for arch in [SyscallPolicy.Architecture.x86_64, .aarch64] {
            #expect(try SyscallPolicy.resolve("listmount", libseccompNumber: -1, arch: arch) == .raw(458))
            #expect(try SyscallPolicy.resolve("statmount", libseccompNumber: -1, arch: arch) == .raw(457))
            #expect(try SyscallPolicy.resolve("open_tree_attr", libseccompNumber: -1, arch: arch) == .raw(467))
        }
    }

    @Test func aPlaceholderForACallTheArchitectureLacksIsSkipped() throws {
        // __PNR_stime: x86_64 and aarch64 have no stime.
        #expect(try SyscallPolicy.resolve("stime", libseccompNumber: -10064, arch: .x86_64) == .absent)
    }

    @Test func anUnnamedCallWithoutANumberStopsTheRun() {
        #expect(throws: SyscallPolicy.UnresolvableSyscall(syscall: "frobnicate")) {
            try SyscallPolicy.resolve("frobnicate", libseccompNumber: -1, arch: .x86_64)
        }
        // An architecture without a table: even a known raw number cannot be trusted there.
        #expect(throws: SyscallPolicy.UnresolvableSyscall(syscall: "listmount")) {
            try SyscallPolicy.resolve("listmount", libseccompNumber: -1, arch: nil)
        }
        let message = SyscallPolicy.UnresolvableSyscall(syscall: "frobnicate").description
        #expect(message.contains("frobnicate"))
    }

    @Test func everyRawNumberIsAPolicyCallOnBothArchitectures() {
        let names = Set(SyscallPolicy.rules.map(\.syscall))
        for (name, numbers) in SyscallPolicy.rawNumbers {
            #expect(names.contains(name), "\(name) has a number but no rule")
            #expect(numbers[.x86_64] != nil && numbers[.aarch64] != nil, "\(name)")
        }
    }

    @Test func theMountInfoCallsAreDenied() {
        for name in ["listmount", "statmount", "open_tree_attr"] {
            #expect(SyscallPolicy.rules.contains { $0.syscall == name && $0.args.isEmpty && $0.action == .errno(SyscallPolicy.EPERM) }, "\(name)")
        }
        // mseal is left alone on purpose (see SyscallPolicy).
        #expect(!SyscallPolicy.rules.contains { $0.syscall == "mseal" })
    }
}

@Suite struct SocketFamilyRuleTests {
    /// Evaluates the rules for `syscall` the way the BPF program does: the first
    /// matching rule's errno, or nil (allowed).
    static func verdict(_ syscall: String, family: UInt64, proto: UInt64 = 0) -> Int32? {
        let args: [UInt32: UInt64] = [0: family, 1: 1, 2: proto]
        for rule in SyscallPolicy.rules where rule.syscall == syscall {
            let hit = rule.args.allSatisfy { m in
                let a = args[m.index] ?? 0
                switch m.comparison {
                case .maskedEqual: return a & m.mask == m.value
                case .notEqual: return a != m.value
                case .greaterOrEqual: return a >= m.value
                }
            }
            if hit, case .errno(let e) = rule.action { return e }
        }
        return nil
    }

    @Test(arguments: ["socket", "socketpair"])
    func onlyTheFourFamiliesPass(_ call: String) {
        for family: UInt64 in [1, 2, 10] { #expect(Self.verdict(call, family: family) == nil, "\(family)") }
        #expect(Self.verdict(call, family: 16, proto: 0) == nil)   // NETLINK_ROUTE
        let refused = SyscallPolicy.EAFNOSUPPORT
        for family: UInt64 in [0, 3, 4, 5, 9, 17, 31, 38, 40, 44, 45] {
            #expect(Self.verdict(call, family: family) == refused, "family \(family)")
        }
        // Everything at or above AF_MAX, whatever the kernel adds later.
        for family: UInt64 in [46, 47, 255, 0x7FFF_FFFF, 0xFFFF_FFFF, UInt64.max] {
            #expect(Self.verdict(call, family: family) == refused, "family \(family)")
        }
        // The kernel reads an int: garbage above bit 31 must not pass as AF_INET or hide AF_VSOCK.
        for family: UInt64 in [0xDEAD_0000_0000_0002, 0x1_0000_0001, 0x1_0000_0028] {
            #expect(Self.verdict(call, family: family) == refused, "family \(String(family, radix: 16))")
        }
        // Netlink: routes only.
        for proto: UInt64 in [9 /* AUDIT */, 15 /* KOBJECT_UEVENT */, 4 /* SOCK_DIAG */, 12 /* NETFILTER */, 0x1_0000_0000] {
            #expect(Self.verdict(call, family: 16, proto: proto) == refused, "netlink protocol \(proto)")
        }
    }

    @Test func eachRuleTakesOneComparisonPerArgument() {
        for rule in SyscallPolicy.rules {
            let indices = rule.args.map(\.index)
            #expect(Set(indices).count == indices.count, "\(rule.syscall): \(rule.args)")
        }
    }

    @Test func lineDisciplinesAreRefusedLikeTIOCSTI() {
        let ioctls = SyscallPolicy.rules.filter { $0.syscall == "ioctl" }
        for request: UInt64 in [0x5412 /* TIOCSTI */, 0x5423 /* TIOCSETD */] {
            #expect(ioctls.contains { $0.args == [SyscallPolicy.ArgMatch(index: 1, mask: 0xFFFF_FFFF, value: request)] && $0.action == .errno(SyscallPolicy.EPERM) })
        }
    }
}

@Suite struct CredentialStoreTests {
    @Test func storesWithinADirectory() {
        #expect(CredentialStores.contained(in: "/home/u/.config", home: "/home/u").contains("/home/u/.config/gh"))
        #expect(CredentialStores.contained(in: "/home/u/.config", home: "/home/u").contains("/home/u/.config/gcloud"))
        #expect(CredentialStores.contained(in: "/home/u/.local/share", home: "/home/u").contains("/home/u/.local/share/keyrings"))
        #expect(CredentialStores.contained(in: "/home/u/.npm-global", home: "/home/u").isEmpty)
        #expect(CredentialStores.contained(in: "/home/u/.local/lib", home: "/home/u").isEmpty)
        #expect(Set(CredentialStores.contained(in: "/home", home: "/home/u")).isSuperset(of: ["/home/u/.ssh", "/home/u/.netrc"]))
    }

    @Test func aStoreLinkedIntoADirectoryCounts() {
        let fs = FakeFS(["/home/u/.ssh": .link("dotfiles/ssh"), "/home/u/dotfiles/ssh/id": .file("SECRET", exec: false)])
        #expect(CredentialStores.contained(in: "/home/u/dotfiles", home: "/home/u", fs: fs) == ["/home/u/.ssh"])
        #expect(CredentialStores.contained(in: "/home/u/dotfiles", home: "/home/u").isEmpty)   // lexically it is not
    }

    @Test func aPathInsideAStore() {
        #expect(CredentialStores.enclosing("/home/u/.aws/tools/bin", home: "/home/u") == "/home/u/.aws")
        #expect(CredentialStores.enclosing("/home/u/.awsome", home: "/home/u") == nil)
        let fs = FakeFS(["/home/u/.ssh": .link("/data/keys"), "/data/keys/tool/bin/x": .file("", exec: true)])
        #expect(CredentialStores.enclosing("/data/keys/tool", home: "/home/u", fs: fs) == "/home/u/.ssh")
    }
}

@Suite struct InstallTreeCredentialTests {
    /// stow-managed dotfiles: ~/.ssh links into ~/dotfiles, which also looks like a prefix.
    let dotfiles = FakeFS([
        "/home/u/.ssh": .link("dotfiles/ssh"), "/home/u/dotfiles/ssh/id_ed25519": .file("SECRET", exec: false),
        "/home/u/dotfiles/bin/agent": .file("#!/bin/sh\n", exec: true), "/home/u/dotfiles/lib/data": .file("", exec: false),
        "/bin/sh": .file("", exec: true),
    ])

    @Test func aPrefixHoldingAStoreIsNarrowedToTheProgramAndItsLib() throws {
        let tree = try InstallTree.plan(for: "/home/u/dotfiles/bin/agent", home: "/home/u", callerPath: "/bin",
                                        visible: { $0.hasPrefix("/bin") }, fs: dotfiles)
        #expect(tree.readOnly == ["/home/u/dotfiles/bin/agent", "/home/u/dotfiles/lib"])
        #expect(tree.notes.contains { $0.contains("/home/u/dotfiles") && $0.contains("/home/u/.ssh") })
    }

    @Test func aVirtualenvHoldingAStoreKeepsItsConfigAndLib() throws {
        let fs = FakeFS([
            "/home/u/.config/pyvenv.cfg": .file("home = /usr/bin\n", exec: false),
            "/home/u/.config/bin/tool": .file("#!/usr/bin/python3\n", exec: true),
            "/home/u/.config/lib/python3.11/site-packages/tool/x": .file("", exec: false),
            "/home/u/.config/gh/hosts.yml": .file("SECRET", exec: false),
            "/usr/bin/python3": .file("", exec: true),
        ])
        let tree = try InstallTree.plan(for: "/home/u/.config/bin/tool", home: "/home/u", callerPath: "/usr/bin",
                                        visible: { $0.hasPrefix("/usr") }, fs: fs)
        #expect(Set(tree.readOnly) == ["/home/u/.config/bin/tool", "/home/u/.config/lib", "/home/u/.config/pyvenv.cfg"])
        #expect(!tree.readOnly.contains { Paths.isWithin("/home/u/.config/gh", $0) })
    }

    @Test func aTreeInsideAStoreIsRefused() {
        let fs = FakeFS([
            "/home/u/.aws/tools/bin/agent": .file("\u{7f}ELF", exec: true), "/home/u/.aws/tools/lib/x": .file("", exec: false),
            "/home/u/.aws/credentials": .file("SECRET", exec: false),
        ])
        #expect(throws: InstallTree.LookupError.insideCredentialStore(bind: "/home/u/.aws/tools", store: "/home/u/.aws")) {
            try InstallTree.plan(for: "/home/u/.aws/tools/bin/agent", home: "/home/u", callerPath: "",
                                 visible: { _ in false }, fs: fs)
        }
    }

    @Test func theRefusalIsAUsageErrorNamingBindAndStore() throws {
        var nodes = debianLike
        nodes["/home/u/.docker/bin/agent"] = .file("\u{7f}ELF", exec: true)
        nodes["/home/u/.docker/lib/x"] = .file("", exec: false)
        do {
            _ = try plan(["agent"], fs: FakeFS(nodes), env: ["PATH": "/home/u/.docker/bin:/usr/bin"])
            Issue.record("planned a bind inside ~/.docker")
        } catch let e as PlanError {
            #expect(e.isUsage)
            #expect(e.message.contains("/home/u/.docker/bin") || e.message.contains("/home/u/.docker"))
            #expect(e.message.contains("credential store /home/u/.docker"))
        }
    }

    @Test func ordinaryTreesAreUntouched() throws {
        let tree = try InstallTree.plan(for: "/home/u/.local/bin/aider", home: "/home/u", callerPath: "/usr/bin",
                                        visible: { $0.hasPrefix("/usr") },
                                        fs: FakeFS(["/home/u/.local/bin/aider": .file("#!/usr/bin/python3\n", exec: true),
                                                    "/home/u/.local/lib/python3/x": .file("", exec: false),
                                                    "/home/u/.local/share/keyrings/login": .file("SECRET", exec: false),
                                                    "/usr/bin/python3": .file("", exec: true)]))
        #expect(tree.notes.isEmpty)
        #expect(Set(tree.readOnly) == ["/home/u/.local/bin/aider", "/home/u/.local/lib"])
    }
}

@Suite struct TmpfsBudgetTests {
    static let gib: UInt64 = 1 << 30

    @Test func parsesSizesAndPercentages() throws {
        #expect(try TmpfsBudget.parse("512M") == .bytes(512 << 20))
        #expect(try TmpfsBudget.parse("4G") == .bytes(4 << 30))
        #expect(try TmpfsBudget.parse("4GiB") == .bytes(4 << 30))
        #expect(try TmpfsBudget.parse("1.5g") == .bytes(3 << 29))
        #expect(try TmpfsBudget.parse("1048576") == .bytes(1 << 20))
        #expect(try TmpfsBudget.parse("25%") == .percentOfMemory(25))
        for bad in ["", "G", "-1G", "1.G", "0%", "101%", "1X", "99999999999T", "1.5", "1..5G", "１G"] {
            #expect(throws: TmpfsBudget.BudgetError.self) { try TmpfsBudget.parse(bad) }
        }
    }

    @Test func defaultIsAQuarterOfMemorySplitAsDocumented() throws {
        let s = try TmpfsBudget.sizes(nil, memoryTotal: 16 * Self.gib)
        #expect(s.total <= 4 * Self.gib)
        #expect(s.total > 4 * Self.gib - 5 * 4096 - 1000)
        #expect(s.home == (4 * Self.gib / 1000 * 400) / 4096 * 4096)
        #expect(s.tmp == (4 * Self.gib / 1000 * 300) / 4096 * 4096)
        for v in [s.home, s.tmp, s.varTmp, s.devShm, s.run] { #expect(v % 4096 == 0 && v > 0) }
        #expect(s.home > s.tmp && s.tmp > s.devShm && s.devShm > s.varTmp && s.varTmp > s.run)
        #expect(TmpfsBudget.shares.map(\.permille).reduce(0, +) == 1000)
    }

    @Test func neverMoreThanTheMachineHas() throws {
        #expect(throws: TmpfsBudget.BudgetError.self) { try TmpfsBudget.sizes(.bytes(32 * Self.gib), memoryTotal: 16 * Self.gib) }
        #expect(try TmpfsBudget.sizes(.percentOfMemory(100), memoryTotal: 16 * Self.gib).total <= 16 * Self.gib)
        #expect(try TmpfsBudget.sizes(.bytes(16 * Self.gib), memoryTotal: 16 * Self.gib).total <= 16 * Self.gib)
        #expect(throws: TmpfsBudget.BudgetError.self) { try TmpfsBudget.sizes(.bytes(1 << 20), memoryTotal: 16 * Self.gib) }
        // Unknown memory: a fixed total.
        #expect(try TmpfsBudget.sizes(nil, memoryTotal: 0).total <= TmpfsBudget.fallbackTotal)
    }

    /// `--size` must come right before the `--tmpfs` it bounds, /dev/shm must be
    /// mounted before /dev becomes read-only, and every tmpfs has a size.
    @Test func bwrapArgumentsBoundEveryTmpfs() throws {
        var f = facts()
        f.memoryTotal = 8 * Self.gib
        let p = try SandboxPlan.make(options: try Options.parse(["--tmpfs-size", "1G", "--", "/usr/bin/sh"]), facts: f,
                                     project: "/home/u/src/p", preset: nil, network: .none, fs: FakeFS(debianLike))
        let a = p.bwrap
        let sizes = TmpfsBudget.split(1 << 30)
        func tmpfsSize(_ mount: String) -> UInt64?? {
            for case .tmpfs(let path, let size, _) in a where path == mount { return size }
            return nil
        }
        for (mount, size) in [("/home/u", sizes.home), ("/tmp", sizes.tmp), ("/var/tmp", sizes.varTmp),
                              ("/dev/shm", sizes.devShm), ("/run", sizes.run)] {
            #expect(tmpfsSize(mount) == .some(size), "\(mount)")
        }
        // Every writable tmpfs is bounded (a read-only one, like the empty .git guard, cannot fill).
        for case .tmpfs(let path, let size, _) in a {
            #expect(size != nil || a.contains(.remountReadOnly(path)), "unbounded tmpfs \(path)")
        }
        let dev = try #require(a.firstIndex(of: .dev("/dev")))
        let shm = try #require(a.firstIndex(of: .tmpfs("/dev/shm", size: sizes.devShm, mode: nil)))
        let ro = try #require(a.firstIndex(of: .remountReadOnly("/dev")))
        #expect(dev < shm && shm < ro)
        // bubblewrap takes --size (and --perms) just before the --tmpfs it bounds.
        let argv = p.bwrapArgs
        let tmp = try #require(argv.firstIndex(of: "/tmp"))
        #expect(Array(argv[(tmp - 3)...tmp]) == ["--size", String(sizes.tmp), "--tmpfs", "/tmp"])
        let home = try #require(argv.firstIndex(of: "/home/u"))
        #expect(Array(argv[(home - 5)...home]) == ["--perms", "0700", "--size", String(sizes.home), "--tmpfs", "/home/u"])
        #expect(p.notes.contains { $0.hasPrefix("tmpfs bounds, 1G in all") })
    }

    @Test func theFlagIsParsedAndChecked() throws {
        #expect(try Options.parse(["--tmpfs-size", "2G"]).tmpfsSize == .bytes(2 << 30))
        #expect(try Options.parse(["--tmpfs-size=10%"]).tmpfsSize == .percentOfMemory(10))
        #expect(throws: Options.UsageError.self) { try Options.parse(["--tmpfs-size", "lots"]) }
        var f = facts()
        f.memoryTotal = 1 << 30
        #expect(throws: PlanError.self) {
            try SandboxPlan.make(options: try Options.parse(["--tmpfs-size", "2G", "--", "/usr/bin/sh"]), facts: f,
                                 project: "/home/u/src/p", preset: nil, network: .none, fs: FakeFS(debianLike))
        }
    }
}

@Suite struct CgroupPlanTests {
    typealias Level = CgroupPlan.Facts.Level
    static let gib: UInt64 = 1 << 30

    /// A desktop terminal: systemd's user manager owns user@1000.service and below.
    static func desktop(appSliceControls: [String] = ["cpu", "memory", "pids"]) -> CgroupPlan.Facts {
        let svc = "/user.slice/user-1000.slice/user@1000.service"
        return CgroupPlan.Facts(mountPoint: "/sys/fs/cgroup", unified: true, ownPath: svc + "/app.slice/vte-spawn-1.scope", ancestors: [
            Level(path: svc + "/app.slice", delegated: true, subtreeControl: appSliceControls),
            Level(path: svc, delegated: true, subtreeControl: ["cpu", "memory", "pids"]),
            Level(path: "/user.slice/user-1000.slice", delegated: false, subtreeControl: ["cpu", "memory", "pids"]),
            Level(path: "/user.slice", delegated: false, subtreeControl: ["cpu", "memory", "pids"]),
            Level(path: "/", delegated: false, subtreeControl: ["cpu", "memory", "pids"]),
        ], pid: 4242)
    }

    @Test func defaultsInTheNearestDelegatedParent() throws {
        let d = try CgroupPlan.decide(CgroupPlan.Limits(), facts: Self.desktop(), uid: 1000, memoryTotal: 16 * Self.gib)
        #expect(d == .apply(directory: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/agentpen-4242",
                            writes: [.init(file: "memory.max", value: String(16 * Self.gib / 100 * 75)),
                                     .init(file: "pids.max", value: "4096"),
                                     .init(file: "cpu.weight", value: "50")],
                            skipped: []))
    }

    @Test func explicitLimitsAreWritten() throws {
        var l = CgroupPlan.Limits()
        l.memory = .set(.bytes(2 * Self.gib)); l.milliCPUs = .set(1500); l.tasks = .set(100)
        guard case .apply(_, let writes, _) = try CgroupPlan.decide(l, facts: Self.desktop(), uid: 1000, memoryTotal: 16 * Self.gib) else {
            Issue.record("not applied"); return
        }
        #expect(writes.contains(.init(file: "memory.max", value: String(2 * Self.gib))))
        #expect(writes.contains(.init(file: "cpu.max", value: "150000 100000")))
        #expect(writes.contains(.init(file: "pids.max", value: "100")))
        #expect(throws: CgroupPlan.RefusedLimit.self) {
            var big = CgroupPlan.Limits(); big.memory = .set(.bytes(32 * Self.gib))
            _ = try CgroupPlan.decide(big, facts: Self.desktop(), uid: 1000, memoryTotal: 16 * Self.gib)
        }
    }

    @Test func aParentWithoutControllersIsSkippedForTheNextDelegatedOne() throws {
        let d = try CgroupPlan.decide(CgroupPlan.Limits(), facts: Self.desktop(appSliceControls: []), uid: 1000, memoryTotal: 16 * Self.gib)
        guard case .apply(let dir, _, _) = d else { Issue.record("\(d)"); return }
        #expect(dir == "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/agentpen-4242")
    }

    @Test func aMissingControllerIsReportedForDefaultsAndRefusedWhenAsked() throws {
        let d = try CgroupPlan.decide(CgroupPlan.Limits(), facts: Self.desktop(appSliceControls: ["pids"]), uid: 1000, memoryTotal: 16 * Self.gib)
        guard case .apply(_, let writes, let skipped) = d else { Issue.record("\(d)"); return }
        #expect(writes == [.init(file: "pids.max", value: "4096")])
        #expect(skipped.count == 2 && skipped.allSatisfy { $0.contains("not enabled") })
        var l = CgroupPlan.Limits(); l.memory = .set(.percentOfMemory(50))
        #expect(throws: CgroupPlan.RefusedLimit.self) {
            _ = try CgroupPlan.decide(l, facts: Self.desktop(appSliceControls: ["pids"]), uid: 1000, memoryTotal: 16 * Self.gib)
        }
    }

    /// An ssh login: session-N.scope belongs to root; user@1000.service is a sibling, not an ancestor.
    @Test func aLoginSessionIsNotDelegated() throws {
        let f = CgroupPlan.Facts(mountPoint: "/sys/fs/cgroup", unified: true, ownPath: "/user.slice/user-1000.slice/session-3.scope", ancestors: [
            Level(path: "/user.slice/user-1000.slice", delegated: false, subtreeControl: ["memory", "pids"]),
            Level(path: "/user.slice", delegated: false, subtreeControl: ["memory", "pids"]),
            Level(path: "/", delegated: false, subtreeControl: ["memory", "pids"]),
        ], pid: 1)
        let d = try CgroupPlan.decide(CgroupPlan.Limits(), facts: f, uid: 1000, memoryTotal: 16 * Self.gib)
        guard case .notApplied(let why) = d else { Issue.record("\(d)"); return }
        #expect(why.contains("no delegated cgroup") && why.contains("session-3.scope"))
        var l = CgroupPlan.Limits(); l.tasks = .set(10)
        #expect(throws: CgroupPlan.RefusedLimit.self) { _ = try CgroupPlan.decide(l, facts: f, uid: 1000, memoryTotal: 16 * Self.gib) }
    }

    /// The walk stops at the first ancestor that is not the user's, even if one above looks delegated.
    @Test func delegationDoesNotSkipAForeignAncestor() throws {
        let f = CgroupPlan.Facts(mountPoint: "/sys/fs/cgroup", unified: true, ownPath: "/a/b/c", ancestors: [
            Level(path: "/a/b", delegated: false, subtreeControl: ["memory"]),
            Level(path: "/a", delegated: true, subtreeControl: ["memory"]),
            Level(path: "/", delegated: false, subtreeControl: ["memory"]),
        ], pid: 1)
        #expect(try CgroupPlan.decide(CgroupPlan.Limits(), facts: f, uid: 1000, memoryTotal: Self.gib) == .notApplied(
            "no delegated cgroup: /a/b/c and its parents are not yours (a systemd user session delegates user@1000.service; start agentpen from a desktop terminal or under `systemd-run --user --scope`)"))
    }

    @Test func rootV1AndNoneAreNotApplied() throws {
        let none: CgroupPlan.Limits = { var l = CgroupPlan.Limits(); l.memory = .none; l.milliCPUs = .none; l.tasks = .none; return l }()
        #expect(try CgroupPlan.decide(none, facts: Self.desktop(), uid: 1000, memoryTotal: Self.gib) == .notApplied("no limits asked for (all set to none)"))
        guard case .notApplied(let root) = try CgroupPlan.decide(CgroupPlan.Limits(), facts: Self.desktop(), uid: 0, memoryTotal: Self.gib) else {
            Issue.record("applied as root"); return
        }
        #expect(root.contains("root"))
        var v1 = Self.desktop(); v1.unified = false
        guard case .notApplied(let hybrid) = try CgroupPlan.decide(CgroupPlan.Limits(), facts: v1, uid: 1000, memoryTotal: Self.gib) else {
            Issue.record("applied on v1"); return
        }
        #expect(hybrid.contains("cgroup v2"))
        guard case .notApplied = try CgroupPlan.decide(CgroupPlan.Limits(), facts: nil, uid: 1000, memoryTotal: Self.gib) else {
            Issue.record("applied without a cgroupfs"); return
        }
    }

    @Test func flagsParse() throws {
        #expect(try Options.parse(["--memory-max", "4G"]).cgroupLimits.memory == .set(.bytes(4 << 30)))
        #expect(try Options.parse(["--memory-max", "none"]).cgroupLimits.memory == .none)
        #expect(try Options.parse(["--cpus", "1.5"]).cgroupLimits.milliCPUs == .set(1500))
        #expect(try Options.parse(["--tasks-max", "64"]).cgroupLimits.tasks == .set(64))
        let off = try Options.parse(["--no-cgroup"]).cgroupLimits
        #expect(off.memory == .none && off.milliCPUs == .none && off.tasks == .none)
        for bad in [["--cpus", "0"], ["--cpus", "x"], ["--cpus", "1.2345"], ["--tasks-max", "0"], ["--memory-max", "lots"], ["--no-cgroup=1"]] {
            #expect(throws: Options.UsageError.self, "\(bad)") { try Options.parse(bad) }
        }
    }

    @Test func thePlanHandsTheHelperTheCgroupDescriptor() throws {
        var f = facts()
        f.memoryTotal = 16 * Self.gib
        f.cgroup = Self.desktop()
        let p = try SandboxPlan.make(options: try Options.parse(["--", "/usr/bin/sh"]), facts: f, project: "/home/u/src/p",
                                     preset: nil, network: .none, fs: FakeFS(debianLike))
        guard let i = p.innerCommand.firstIndex(of: "--cgroup") else { Issue.record("\(p.innerCommand)"); return }
        #expect(p.innerCommand[i + 1] == String(p.cgroupFD))
        #expect(i < p.innerCommand.firstIndex(of: "--")!)
        #expect(!p.dataFiles.map(\.fd).contains(p.cgroupFD) && p.cgroupFD != p.seccompFD)
        // Not applied: no descriptor, and the reason is in the plan.
        let q = try SandboxPlan.make(options: try Options.parse(["--", "/usr/bin/sh"]), facts: facts(), project: "/home/u/src/p",
                                     preset: nil, network: .none, fs: FakeFS(debianLike))
        #expect(!q.innerCommand.contains("--cgroup"))
        #expect(q.notes.contains { $0.hasPrefix("cgroup limits not applied") })
    }
}
