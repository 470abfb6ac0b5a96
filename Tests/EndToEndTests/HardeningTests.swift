import Foundation
import Testing

/// Kernel surface and resources (issue 7): socket families, line disciplines,
/// the mount-info calls libseccomp cannot name, bounded tmpfs mounts, and
/// install-tree binds that would carry credentials. Each probe runs inside
/// the real sandbox through /usr/bin/python3.
@Suite struct HardeningTests {
    /// Runs a python script confined; returns its `name=value` lines.
    static func python(_ f: Fixture, _ script: String, flags: [String] = [],
                       args: [String] = []) throws -> (Agentpen.Result, [String: String]) {
        try f.write(f.project + "/probe.py", script)
        let r = try f.agentpen(flags + ["--", "/usr/bin/python3", f.project + "/probe.py"] + args)
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { out[kv[0]] = kv[1] }
        }
        return (r, out)
    }

    static let prelude = #"""
    import ctypes, errno, os, socket, struct
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def res(name, fn):
        try:
            fn()
            print(name + "=OK")
        except OSError as e:
            print(name + "=" + errno.errorcode.get(e.errno, str(e.errno)))
    def raw(name, nr, *args):
        ctypes.set_errno(0)
        rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
        e = ctypes.get_errno()
        print(name + "=" + ("OK" if rc >= 0 else errno.errorcode.get(e, str(e))))
        if rc > 2 and name.startswith("sys_socket_"):
            os.close(rc)

    """#

    // The filter's answer for a refused family is the kernel's own for a family
    // it lacks (EAFNOSUPPORT); today's kernel gives OK or EPERM (no CAP_NET_RAW).
    @Test func socketFamiliesAreAnAllowlist() throws {
        let f = try Fixture()
        let script = Self.prelude + #"""
        SYS_socket = {"x86_64": 41, "aarch64": 198}[os.uname().machine]
        SYS_socketpair = {"x86_64": 53, "aarch64": 199}[os.uname().machine]
        res("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
        res("unix_dgram", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close())
        res("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
        res("inet_udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())
        res("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())
        res("netlink_route", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())
        res("socketpair_unix", lambda: [s.close() for s in socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)])
        res("vsock", lambda: socket.socket(40, socket.SOCK_STREAM, 0).close())
        res("packet", lambda: socket.socket(17, socket.SOCK_RAW, 0).close())
        res("packet_dgram", lambda: socket.socket(17, socket.SOCK_DGRAM, 0).close())
        res("netlink_audit", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9).close())
        res("netlink_uevent", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 15).close())
        res("bluetooth", lambda: socket.socket(31, socket.SOCK_RAW, 0).close())
        res("socketpair_vsock", lambda: [s.close() for s in socket.socketpair(40, socket.SOCK_STREAM)])
        # The kernel reads the family as an int: garbage above bit 31 is ignored
        # there, so the filter must not let such a value through as AF_INET.
        raw("sys_socket_inet", SYS_socket, 2, 1, 0)
        raw("sys_socket_garbage_inet", SYS_socket, (0xdead << 32) | 2, 1, 0)
        raw("sys_socket_garbage_vsock", SYS_socket, (1 << 32) | 40, 1, 0)
        raw("sys_socket_af_max", SYS_socket, 46, 1, 0)
        raw("sys_socket_huge", SYS_socket, 0x7fffffff, 1, 0)
        raw("sys_socket_netlink_garbage_proto", SYS_socket, 16, 3, (1 << 32))
        sv = (ctypes.c_int * 2)()
        raw("sys_socketpair_garbage_unix", SYS_socketpair, (7 << 32) | 1, 1, 0, sv)
        """#
        let (r, p) = try Self.python(f, script)
        #expect(r.status == 0, "\(r.stderr)")
        for name in ["unix", "unix_dgram", "inet", "inet_udp", "inet6", "netlink_route", "socketpair_unix", "sys_socket_inet"] {
            #expect(p[name] == "OK", "\(name) gave \(p[name] ?? "nothing"): \(r.stderr)")
        }
        for name in ["vsock", "packet", "packet_dgram", "netlink_audit", "netlink_uevent", "bluetooth", "socketpair_vsock",
                     "sys_socket_garbage_inet", "sys_socket_garbage_vsock", "sys_socket_af_max", "sys_socket_huge",
                     "sys_socket_netlink_garbage_proto", "sys_socketpair_garbage_unix"] {
            #expect(p[name] == "EAFNOSUPPORT", "\(name) gave \(p[name] ?? "nothing")")
        }
    }

    @Test func lineDisciplinesCannotBeChanged() throws {
        let f = try Fixture()
        let script = Self.prelude + #"""
        import fcntl, pty, termios
        m, s = pty.openpty()
        res("tiocsetd", lambda: fcntl.ioctl(s, termios.TIOCSETD, struct.pack("i", 0)))
        res("tiocgetd", lambda: fcntl.ioctl(s, termios.TIOCGETD, struct.pack("i", 0)))
        """#
        let (r, p) = try Self.python(f, script)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(p["tiocsetd"] == "EPERM", "TIOCSETD gave \(p["tiocsetd"] ?? "nothing")")
        #expect(p["tiocgetd"] == "OK", "\(p["tiocgetd"] ?? "nothing")")
    }

    /// listmount, statmount and open_tree_attr have the same numbers on x86_64
    /// and aarch64 (the generic table); libseccomp 2.5.4 cannot name them.
    static let mountInfoScript = prelude + #"""
    req = struct.pack("=IIQQQ", 24, 0, 0xFFFFFFFFFFFFFFFF, 0, 0)  # LSMT_ROOT
    ids = (ctypes.c_uint64 * 16)()
    raw("listmount", 458, ctypes.c_char_p(req), ids, 16, 0)
    buf = ctypes.create_string_buffer(4096)
    sreq = struct.pack("=IIQQQ", 24, 0, ids[0], 1, 0)            # STATMOUNT_SB_BASIC
    raw("statmount", 457, ctypes.c_char_p(sreq), buf, 4096, 0)
    raw("open_tree_attr", 467, -100, ctypes.c_char_p(b"/tmp"), 0, 0, 0)
    raw("getpid", 39 if os.uname().machine == "x86_64" else 172)
    """#

    @Test func mountInfoCallsAreRefusedByNumber() throws {
        let f = try Fixture()
        let (r, p) = try Self.python(f, Self.mountInfoScript)
        #expect(r.status == 0, "\(r.stderr)")
        for name in ["listmount", "statmount", "open_tree_attr"] {
            #expect(p[name] == "EPERM", "\(name) gave \(p[name] ?? "nothing")")
        }
        #expect(p["getpid"] == "OK")
    }

    @Test func mountInfoCallsWorkOutside() throws {
        // Control: this kernel answers them for an unprivileged caller, so the
        // test above measures the filter.
        let f = try Fixture()
        try f.write(f.project + "/probe.py", Self.mountInfoScript)
        let r = try runProgram("/usr/bin/python3", [f.project + "/probe.py"], env: [:], cwd: f.project)
        #expect(r.stdout.contains("listmount=OK"), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("statmount=OK"), "\(r.stdout) \(r.stderr)")
    }

    /// Writes 1 MiB blocks into DIR until the disk is full (bounded): prints
    /// DIR=ENOSPC:<MiB written> or DIR=FULL-NOT-REACHED.
    static let fillScript = prelude + #"""
    import sys
    for d in sys.argv[1:]:
        d = os.path.expanduser(d)
        path, written, outcome = os.path.join(d, "fill"), 0, "FULL-NOT-REACHED"
        block = b"x" * (1 << 20)
        try:
            with open(path, "wb") as fh:
                while written < 512:
                    fh.write(block); fh.flush(); os.fsync(fh.fileno())
                    written += 1
        except OSError as e:
            outcome = errno.errorcode.get(e.errno, str(e.errno)) + ":" + str(written)
        try:
            os.unlink(path)
        except OSError:
            pass
        print(d + "=" + outcome)
    """#

    @Test func tmpfsMountsAreBounded() throws {
        let f = try Fixture()
        try f.write(f.project + "/fill.py", Self.fillScript)
        let r = try f.agentpen(["--tmpfs-size", "100M", "--", "/usr/bin/python3", f.project + "/fill.py",
                                "~", "/tmp", "/var/tmp", "/dev/shm", "/run"])
        #expect(r.status == 0, "\(r.stderr)")
        var mib: [String: Int] = [:]
        for line in r.stdout.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            #expect(kv[1].hasPrefix("ENOSPC:"), "\(kv[0]): \(kv[1])")
            mib[kv[0]] = Int(kv[1].split(separator: ":").last ?? "")
        }
        #expect(mib.count == 5, "\(r.stdout) \(r.stderr)")
        // The documented split of the total: 40/30/10/15/5 per cent.
        let total = mib.values.reduce(0, +)
        #expect(total <= 100, "wrote \(total) MiB in all: \(mib)")
        #expect((mib[f.home] ?? 0) >= 35, "\(mib)")
        #expect((mib["/tmp"] ?? 0) >= 25, "\(mib)")
    }

    /// Without the flag the five mounts together stay within a quarter of RAM.
    @Test func defaultTotalIsAQuarterOfMemory() throws {
        let f = try Fixture()
        let script = Self.prelude + #"""
        for d in [os.environ["HOME"], "/tmp", "/var/tmp", "/dev/shm", "/run"]:
            s = os.statvfs(d)
            print(d + "=" + str(s.f_blocks * s.f_frsize))
        """#
        let (r, p) = try Self.python(f, script)
        #expect(r.status == 0, "\(r.stderr)")
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let kb = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { UInt64($0.split(separator: " ")[1]) } ?? 0
        let sizes = [f.home, "/tmp", "/var/tmp", "/dev/shm", "/run"].compactMap { p[$0].flatMap(UInt64.init) }
        #expect(sizes.count == 5, "\(r.stdout)")
        #expect(sizes.reduce(0, +) <= kb * 1024 / 4 + 5 * 4096, "\(sizes) against MemTotal \(kb) kB")
    }

    @Test func devIsReadOnlyExceptItsDevices() throws {
        let f = try Fixture()
        let r = try f.sh("""
            touch /dev/planted 2>/dev/null && echo DEV-WRITABLE
            mkdir /dev/dir 2>/dev/null && echo DEV-WRITABLE
            echo x > /dev/null && echo NULL-OK
            head -c 4 /dev/zero | wc -c
            head -c 4 /dev/urandom >/dev/null && echo URANDOM-OK
            echo x > /dev/shm/f && echo SHM-OK
            test -L /dev/fd && test -e /dev/ptmx && test -d /dev/pts && echo LINKS-OK
            """)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("DEV-WRITABLE"), "\(r.stdout)")
        for word in ["NULL-OK", "URANDOM-OK", "SHM-OK", "LINKS-OK"] { #expect(r.stdout.contains(word), "\(r.stdout)") }
    }

    /// A TUI needs its controlling terminal and new ptys: run on a real pty.
    @Test func terminalDevicesStillWork() throws {
        let f = try Fixture()
        let driver = #"""
        import os, pty, sys, select
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.argv[1], sys.argv[1:])
        out = b""
        while True:
            r, _, _ = select.select([fd], [], [], 30)
            if not r:
                break
            try:
                d = os.read(fd, 4096)
            except OSError:
                break
            if not d:
                break
            out += d
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(out.decode(errors="replace"))
        print("STATUS", os.waitstatus_to_exitcode(status))
        """#
        let inner = #"""
        import os, pty
        fd = os.open("/dev/tty", os.O_RDWR)
        os.write(fd, b"TTY-WRITE-OK\n")
        print("STDIN", os.ttyname(0))
        m, s = pty.openpty()
        os.write(m, b"hello\n")
        print("NEWPTY", os.ttyname(s), os.read(s, 6))
        """#
        try f.write(f.root + "/driver.py", driver)
        try f.write(f.project + "/inner.py", inner)
        let r = try runProgram("/usr/bin/python3", [f.root + "/driver.py", Agentpen.binary, "--", "/usr/bin/python3", f.project + "/inner.py"],
                               env: Agentpen.environment(home: f.home), cwd: f.project, timeout: 60)
        #expect(r.stdout.contains("TTY-WRITE-OK"), "\(r.stdout)")
        #expect(r.stdout.contains("STDIN /dev/"), "\(r.stdout)")
        #expect(r.stdout.contains("NEWPTY /dev/pts/"), "\(r.stdout)")
        #expect(r.stdout.contains("b'hello\\n'"), "\(r.stdout)")
        #expect(r.stdout.contains("STATUS 0"), "\(r.stdout)")
    }

    /// Dotfiles managed with stow: ~/.ssh is a link into ~/dotfiles, which also
    /// looks like an install prefix (bin/ and lib/). Binding that prefix would
    /// carry the key in; the bind is narrowed to the program and its lib.
    @Test func installTreeHoldingCredentialsIsNarrowed() throws {
        let f = try Fixture()
        let dots = f.home + "/dotfiles"
        try FileManager.default.removeItem(atPath: f.home + "/.ssh")
        try f.write(dots + "/ssh/id_ed25519", "SECRET-SSH-KEY")
        try FileManager.default.createSymbolicLink(atPath: f.home + "/.ssh", withDestinationPath: "dotfiles/ssh")
        try f.write(dots + "/lib/agent-data.txt", "agent-lib-data")
        try f.write(dots + "/bin/dots-agent", """
            #!/bin/sh
            cat \(dots)/lib/agent-data.txt
            cat \(dots)/ssh/id_ed25519 2>/dev/null
            cat $HOME/.ssh/id_ed25519 2>/dev/null
            echo AGENT-RAN
            """, mode: 0o755)
        let r = try f.agentpen(["dots-agent"], path: "\(dots)/bin:/usr/bin:/bin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("AGENT-RAN"), "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("agent-lib-data"), "\(r.stdout)")
        #expect(!r.stdout.contains("SECRET"), "the key was readable: \(r.stdout)")
        let dry = try f.agentpen(["--dry-run", "dots-agent"], path: "\(dots)/bin:/usr/bin:/bin")
        #expect(dry.stdout.contains("\(f.home)/.ssh"), "the narrowing is not explained: \(dry.stdout)")
    }

    /// An agent installed inside a credential store itself cannot be bound at all.
    @Test func installTreeInsideACredentialStoreIsRefused() throws {
        let f = try Fixture()
        let prefix = f.home + "/.aws/tools"
        try f.write(prefix + "/lib/x.txt", "x")
        try f.write(prefix + "/bin/aws-agent", "#!/bin/sh\ncat $HOME/.aws/credentials\necho AGENT-RAN\n", mode: 0o755)
        let r = try f.agentpen(["aws-agent"], path: "\(prefix)/bin:/usr/bin:/bin")
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(!r.stdout.contains("SECRET"))
        #expect(!r.stdout.contains("AGENT-RAN"))
        #expect(r.stderr.contains("\(f.home)/.aws"), "\(r.stderr)")
    }
}

/// cgroup limits apply only in a delegated cgroup v2 subtree. On a host
/// without one (CI: root, or a user switched to with setpriv) --check must
/// say so with the reason, and an explicit limit is refused rather than
/// silently dropped; where they apply, the sandbox runs inside them.
@Suite struct CgroupLimitTests {
    @Test func checkSaysWhetherTheyApplyAndRunsAgree() throws {
        let f = try Fixture()
        let check = try f.agentpen(["--check"], timeout: 120)
        let row = check.stdout.split(separator: "\n").first { $0.contains("cgroup limits") }.map(String.init)
        #expect(row != nil, "no cgroup row in --check: \(check.stdout)")
        guard let row else { return }
        let unified = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
        if !unified { #expect(row.contains("not applied: no unified cgroup v2"), "\(row)") }
        if getuid() == 0 { #expect(row.contains("not applied"), "\(row)") }
        if row.contains("not applied") {
            #expect(row.hasPrefix("  degraded"), "\(row)")
            let asked = try f.agentpen(["--memory-max", "1G", "--", "/bin/true"])
            #expect(asked.status == 2, "\(asked.status) \(asked.stderr)")
            #expect(asked.stderr.contains("cannot apply the cgroup limits"), "\(asked.stderr)")
            let plain = try f.sh("echo RAN")
            #expect(plain.status == 0 && plain.stdout.contains("RAN"), "\(plain.stderr)")
        } else {
            // Applied: the agent sits in agentpen-PID with the limit asked for.
            let r = try f.agentpen(["--tasks-max", "300", "--", "/bin/sh", "-c", "grep ^0:: /proc/self/cgroup"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("agentpen-"), "\(r.stdout)")
        }
    }
}
