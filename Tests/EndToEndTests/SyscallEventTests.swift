import Foundation
import Testing

/// Refused syscalls become events (issue 13, "Syscall events"): each refusal
/// fails exactly as before, and the run's log, live lines and summary name the
/// call and the process, counted per call so a loop cannot flood them.
@Suite struct SyscallEventTests {
    /// The `syscall-refused` events of a --log file.
    static func syscallEvents(_ log: String) -> [[String: Any]] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }.filter { $0["kind"] as? String == "syscall-refused" }
    }

    static func details(_ e: [String: Any]) -> [String: String] { e["details"] as? [String: String] ?? [:] }

    /// How many calls the events for `name` account for.
    static func count(_ events: [[String: Any]], _ name: String) -> Int {
        events.filter { $0["subject"] as? String == name }.reduce(0) { $0 + (Int(details($1)["attempts"] ?? "") ?? 0) }
    }

    /// The probe names itself with an escape sequence: the host must not print it raw.
    static let loopScript = HardeningTests.prelude + #"""
    import sys
    N = int(sys.argv[1])
    libc.prctl(15, b"probe\x1b[31mX", 0, 0, 0)   # PR_SET_NAME
    print("innerpid=%d" % os.getpid())
    nr = {"ptrace": 101, "keyctl": 250, "unshare": 272, "mount": 165} if os.uname().machine == "x86_64" \
        else {"ptrace": 117, "keyctl": 219, "unshare": 97, "mount": 40}
    calls = {
        "ptrace": (nr["ptrace"], 16, 1, 0, 0),             # PTRACE_ATTACH to pid 1
        "keyctl": (nr["keyctl"], 0, -3, 0),                # KEYCTL_GET_KEYRING_ID session
        "unshare": (nr["unshare"], 0x10000000),            # CLONE_NEWUSER
        "mount": (nr["mount"], b"none", b"/tmp", b"tmpfs", 0, 0),
    }
    for name, (n, *args) in calls.items():
        seen = {}
        for i in range(N):
            ctypes.set_errno(0)
            rc = libc.syscall(ctypes.c_long(n), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
            e = "OK" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
            seen[e] = seen.get(e, 0) + 1
        print(name + "=" + ",".join("%s:%d" % kv for kv in sorted(seen.items())))
    """#

    /// Offline, and with a network (the namespace helper passes the socket on).
    @Test(arguments: [[], ["--allow", "unused.test"]])
    func refusedCallsAreEventsNamingTheProcess(_ network: [String]) throws {
        let f = try Fixture()
        let log = f.root + "/events.jsonl"
        let n = 7
        let (r, p) = try HardeningTests.python(f, Self.loopScript, flags: network + ["--log", log], args: [String(n)])
        #expect(r.status == 0, "\(r.status) \(r.stderr)")
        for name in ["ptrace", "keyctl", "unshare", "mount"] {
            #expect(p[name] == "EPERM:\(n)", "\(name): \(p[name] ?? "nothing") \(r.stderr)")
        }
        let events = Self.syscallEvents(log)
        let python = URL(fileURLWithPath: "/usr/bin/python3").resolvingSymlinksInPath().path
        for name in ["ptrace", "keyctl", "unshare", "mount"] {
            let mine = events.filter { $0["subject"] as? String == name }
            #expect(!mine.isEmpty, "no event for \(name): \(events)")
            #expect(Self.count(events, name) == n, "\(name): \(mine)")
            for e in mine {
                let d = Self.details(e)
                #expect(d["errno"] == "EPERM", "\(d)")
                #expect(d["exe"] == python, "\(d)")
                // The comm as the process set it; the log's JSON holds the ESC as \u001b.
                #expect(d["comm"] == "probe\u{1b}[31mX", "\(d)")
                let pid = Int(d["pid"] ?? "") ?? 0
                #expect(pid > 0 && String(pid) != p["innerpid"], "the pid is the host's: \(d) inner \(p["innerpid"] ?? "?")")
            }
        }
        // Live lines (stderr is a pipe here) and the summary name each call; nothing raw.
        for name in ["ptrace", "keyctl", "unshare", "mount"] {
            #expect(r.stderr.contains("syscall-refused \(name) ×\(n)"), "summary: \(r.stderr)")
            #expect(r.stderr.contains("blocked \(name):"), "live line: \(r.stderr)")
        }
        // Escaped once, where it is printed: `\x1b`, not `\\x1b` (escaped again).
        #expect(r.stderr.contains(#"to probe\x1b[31mX (pid "#), "live line: \(r.stderr)")
        #expect(!r.stderr.contains(#"\\x1b"#), "escaped twice: \(r.stderr)")
        #expect(!r.stderr.contains("\u{1b}"), "\(r.stderr)")
    }

    /// 100000 refusals: every one fails as before, the run ends, and the log holds
    /// the call once (its first sighting) plus its count, not a line per call.
    @Test func aLoopOfRefusalsIsOneCountedEntry() throws {
        let f = try Fixture()
        let log = f.root + "/events.jsonl"
        let script = HardeningTests.prelude + #"""
        n = 250 if os.uname().machine == "x86_64" else 219
        eperm = 0
        for i in range(100000):
            ctypes.set_errno(0)
            if libc.syscall(ctypes.c_long(n), ctypes.c_long(0), ctypes.c_long(-3), ctypes.c_long(0)) < 0 \
                    and ctypes.get_errno() == errno.EPERM:
                eperm += 1
        print("eperm=%d" % eperm)
        """#
        let (r, p) = try HardeningTests.python(f, script, flags: ["--log", log])
        #expect(r.status == 0, "\(r.status) \(r.stderr)")
        #expect(p["eperm"] == "100000", "\(p) \(r.stderr)")
        let events = Self.syscallEvents(log).filter { $0["subject"] as? String == "keyctl" }
        #expect(Self.count(events, "keyctl") == 100000, "\(events)")
        #expect(events.count <= 2, "one entry and its count, not a line per call: \(events.count)")
        #expect(r.stderr.contains("syscall-refused keyctl ×100000"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").filter { $0.contains("keyctl") }.count <= 3, "\(r.stderr)")
    }

    /// The agent cannot put a listener of its own in front of agentpen's: with
    /// stacked filters the newest notifying one wins, and its holder could let
    /// the call through (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The kernel refuses a
    /// second listener (EBUSY) only while agentpen's exists; the filter refuses
    /// always. A NULL program shows the filter answered (the kernel says EFAULT).
    @Test func theSandboxCannotOpenAListener() throws {
        let f = try Fixture()
        let script = HardeningTests.prelude + #"""
        n = 317 if os.uname().machine == "x86_64" else 277
        raw("listener", n, 1, 8, 0)     # SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER
        raw("plain", n, 1, 0, 0)        # no listener: the kernel's own answer
        """#
        let (r, p) = try HardeningTests.python(f, script)
        #expect(r.status == 0, "\(r.status) \(r.stderr)")
        #expect(p["listener"] == "EPERM", "\(p)")
        #expect(p["plain"] == "EFAULT", "\(p)")
    }

    // Fail closed without the listener: AgentpenKernelTests.NotifyingProgramTests
    // (the exec helper run directly needs the sealed program agentpen sends first).
}
