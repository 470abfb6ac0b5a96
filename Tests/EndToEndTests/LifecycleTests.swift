import Foundation
import Testing

/// Nothing agentpen started may outlive it, however it ends; Ctrl-C is the agent's.
@Suite struct LifecycleTests {
    /// A `sleep` whose argument no other process on the machine has.
    static func marker() -> String { "1000.\(Int.random(in: 100_000...999_999))" }

    /// agentpen in a process group of its own (as a shell job would be), so a
    /// terminal's Ctrl-C can be imitated by signalling the group. posix_spawn and
    /// waitpid directly: the test must see the exit status itself.
    static func start(_ f: Fixture, _ script: String) throws -> pid_t {
        try spawn([Agentpen.binary, "-C", f.project, "--", "/bin/sh", "-c", script],
                  env: f.environment(), stdout: "/dev/null")
    }

    /// The shell-style exit status, or nil when it did not exit in time (then killed).
    static func finish(_ pid: pid_t, within seconds: Double) -> Int32? {
        var status: Int32 = 0
        let exited = waitUntil(seconds) { waitpid(pid, &status, WNOHANG) == pid }
        guard exited else {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            return nil
        }
        let sig = status & 0x7f
        return sig == 0 ? (status >> 8) & 0xff : 128 + sig
    }

    @Test func backgroundProcessesDieWithTheAgent() throws {
        let f = try Fixture()
        let m = Self.marker()
        let r = try f.sh("sleep \(m) & sleep \(m) & echo started")
        #expect(r.stdout.contains("started"))
        #expect(waitUntil(30) { processes(running: ["sleep", m]).isEmpty }, "left running: \(processes(running: ["sleep", m]))")
    }

    @Test(arguments: [SIGTERM, SIGHUP, SIGINT, SIGKILL])
    func nothingIsLeftAfterASignal(_ sig: Int32) throws {
        let f = try Fixture()
        let m = Self.marker()
        // Before agentpen starts: what it writes while it runs counts too.
        let leftovers = Leftovers(f)
        let pid = try Self.start(f, "sleep \(m) & sleep \(m); echo done")
        var reaped = false
        defer { if !reaped { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) } }
        #expect(waitUntil(20) { processes(running: ["sleep", m]).count == 2 }, "sandbox did not start")
        if sig == SIGINT {
            // Ctrl-C: the terminal signals the whole foreground process group.
            kill(-pid, SIGINT)
        } else {
            kill(pid, sig)
        }
        let status = Self.finish(pid, within: 30)
        reaped = true
        #expect(status != nil, "agentpen did not exit after signal \(sig)")
        if sig == SIGINT {
            // The agent's shell got Ctrl-C; agentpen passed its status on.
            #expect(status == 130, "status \(String(describing: status))")
        } else {
            #expect(status == 128 + sig, "status \(String(describing: status))")
        }
        #expect(waitUntil(30) { processes(running: ["sleep", m]).isEmpty }, "left running after signal \(sig)")
        #expect(leftovers.fresh().isEmpty, "left behind: \(leftovers.fresh())")
    }
}

/// Terminal behaviour, driven through a real pseudo-terminal.
@Suite struct TerminalTests {
    /// Runs agentpen on a pty; types Ctrl-C and resizes the window once the agent is
    /// ready, each step only after the agent reported the one before (events, not
    /// time). The waits are bounded only against a hang (60 s each, monotonic clock).
    static let driver = #"""
    import os, pty, sys, time, select, struct, fcntl, termios
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.argv[1], sys.argv[1:])
    out = b""
    def pump(until, timeout=60):
        global out
        end = time.monotonic() + timeout
        while until not in out:
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    d = os.read(fd, 4096)
                except OSError:
                    return
                if not d:
                    return
                out += d
    pump(b"READY")
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))
    pump(b"SIZE 77x33")
    os.write(fd, b"\x03")
    pump(b"GOT-SIGINT")
    os.write(fd, b"quit\n")
    pump(b"BYE")
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.decode(errors="replace"))
    print("STATUS", os.waitstatus_to_exitcode(status))
    """#

    /// The stand-in agent. Its handlers only set a flag; Python's wakeup descriptor
    /// wakes the main loop, which alone writes (a handler that writes while the
    /// main flow is inside print raises "reentrant call inside BufferedWriter").
    /// It waits for the driver's events without a deadline of its own: the
    /// driver's bounded waits and the test's timeout end a hung run.
    static let agent = #"""
    import os, signal, sys, select
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)
    got = set()
    signal.signal(signal.SIGWINCH, lambda *a: got.add("winch"))
    signal.signal(signal.SIGINT, lambda *a: got.add("int"))
    def say(text):
        os.write(1, text.encode() + b"\n")
    say("ISATTY %s %s" % (os.isatty(0), os.isatty(1)))
    say("READY")
    while True:
        ready, _, _ = select.select([0, r], [], [])
        if r in ready:
            os.read(r, 100)
        if "winch" in got:
            got.discard("winch")
            say("SIZE %dx%d" % tuple(os.get_terminal_size(0)))
        if "int" in got:
            got.discard("int")
            say("GOT-SIGINT")
        if 0 in ready:
            data = os.read(0, 100)
            if b"quit" in data:
                say("BYE")
                sys.exit(0)
            if not data:
                sys.exit(3)
    """#

    /// Offline, and with the network stack (helper, pasta) between agentpen and the agent.
    @Test(arguments: [[], ["--allow", "unused.test"]])
    func ctrlCAndWindowSizeReachTheAgent(_ flags: [String]) throws {
        let f = try Fixture()
        try f.write(f.project + "/agent.py", Self.agent)
        try f.write(f.root + "/driver.py", Self.driver)
        let r = try runProgram("/usr/bin/python3", [f.root + "/driver.py", Agentpen.binary] + flags + ["--", "/usr/bin/python3", f.project + "/agent.py"],
                               env: f.environment(), cwd: f.project, timeout: 300)
        #expect(r.stdout.contains("ISATTY True True"), "\(r.stdout)")
        #expect(r.stdout.contains("SIZE 77x33"), "window size did not reach the agent: \(r.stdout)")
        #expect(r.stdout.contains("GOT-SIGINT"), "Ctrl-C did not reach the agent: \(r.stdout)")
        #expect(r.stdout.contains("BYE"), "agent did not survive Ctrl-C: \(r.stdout)")
        #expect(r.stdout.contains("STATUS 0"), "\(r.stdout)")
    }
}
