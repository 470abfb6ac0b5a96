import Testing
@testable import AgentpenPolicy

/// bubblewrap's argv is rendered from the typed list in one place; the
/// descriptors and writable paths the runner uses are derived from the same list.
@Suite struct BwrapArgumentTests {
    static let all: [BwrapArgument] = [
        .unshareUser, .uid(1000), .gid(100), .disableUserns, .unsharePID, .unshareIPC, .unshareUTS,
        .unshareCgroupTry, .unshareNet, .dieWithParent, .capDropAll, .hostname("agentpen"),
        .bind(source: "/usr", destination: "/usr", readOnly: true), .symlink(target: "usr/bin", path: "/bin"),
        .proc("/proc"), .dev("/dev"), .tmpfs("/dev/shm", size: 4096, mode: nil), .remountReadOnly("/dev"),
        .dir("/etc", mode: 0o755), .data(path: "/etc/passwd", content: "root:x:0:0::/root:/bin/sh\n"),
        .tmpfs("/home/u", size: 8192, mode: 0o700), .bind(source: "/srv/a", destination: "/mnt/a", readOnly: false),
        .bindOpened("/p/.git", readOnly: false), .bindOpened("/p/.git/hooks", readOnly: true),
        .tmpfs("/q/.git", size: nil, mode: 0o555), .dir("/x", mode: nil), .chdir("/p"), .seccomp,
    ]

    @Test func everyCaseRendersAsBubblewrapTakesIt() {
        #expect(BwrapArgument.render(Self.all) == [
            "--unshare-user", "--uid", "1000", "--gid", "100", "--disable-userns", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--unshare-net", "--die-with-parent", "--cap-drop", "ALL",
            "--hostname", "agentpen", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
            "--proc", "/proc", "--dev", "/dev", "--size", "4096", "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--perms", "0755", "--dir", "/etc", "--ro-bind-data", "10", "/etc/passwd",
            "--perms", "0700", "--size", "8192", "--tmpfs", "/home/u", "--bind", "/srv/a", "/mnt/a",
            "--bind-fd", "11", "/p/.git", "--ro-bind-fd", "12", "/p/.git/hooks",
            "--perms", "0555", "--tmpfs", "/q/.git", "--dir", "/x", "--chdir", "/p", "--seccomp", "13",
        ])
    }

    @Test func descriptorsAreNumberedInOrderAndDerivedFromTheList() {
        var plan = SandboxPlan()
        plan.bwrap = Self.all
        #expect(plan.dataFiles == [.init(fd: 10, path: "/etc/passwd", content: "root:x:0:0::/root:/bin/sh\n")])
        #expect(plan.pathFDs == [PathFD(fd: 11, path: "/p/.git"), PathFD(fd: 12, path: "/p/.git/hooks")])
        #expect(plan.seccompFD == 13)
        #expect(plan.cgroupFD == 14)
        // A descriptor argument added before the others shifts them all: nothing is numbered by hand.
        plan.bwrap.insert(.data(path: "/etc/hostname", content: "agentpen\n"), at: 0)
        #expect(plan.dataFiles.map(\.fd) == [10, 11])
        #expect(plan.pathFDs.map(\.fd) == [12, 13])
        #expect(plan.seccompFD == 14 && plan.cgroupFD == 15)
        #expect(BwrapArgument.render(plan.bwrap).suffix(2) == ["--seccomp", "14"])
    }

    @Test func hostWritableIsTheSourceOfEveryReadWriteBind() {
        var plan = SandboxPlan()
        plan.bwrap = Self.all + [.bind(source: "/srv/a", destination: "/other", readOnly: false),
                                 .bind(source: "/ro", destination: "/ro", readOnly: true)]
        #expect(plan.hostWritable == ["/srv/a", "/p/.git"])
    }

    /// --dry-run prints one option a line; a value that begins with `--` stays with its option.
    @Test func optionsKeepEachValueWithItsOption() {
        let args: [BwrapArgument] = [.symlink(target: "--odd", path: "/home/u/.local/bin/tool"),
                                     .tmpfs("/tmp", size: 4096, mode: nil)]
        #expect(BwrapArgument.options(args) == [["--symlink", "--odd", "/home/u/.local/bin/tool"],
                                                ["--size", "4096"], ["--tmpfs", "/tmp"]])
    }
}
