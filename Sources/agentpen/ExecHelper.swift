import AgentpenCommandLine
import AgentpenEvents
import AgentpenKernel
import CShim
import Glibc

/// `agentpen __exec [--cgroup FD] [--gate FD] --syscall-notify FD --rw PATH... -- COMMAND...` (ExecArguments), run by
/// bubblewrap inside the sandbox as the last step before the agent: still single-threaded, it sets
/// rlimits and Landlock on itself, restores Ctrl-C for the agent, loads the notifying seccomp filter
/// agentpen compiled and sent (a sealed memfd), hands its listener to agentpen, waits at the direct
/// hop's gate (last, so that all of this overlaps the firewall's load), and execs the agent.
enum ExecHelper {
    static func main(_ args: ExecArguments) -> Never {
        let writable = args.writable
        // Into the run's cgroup (its limits) before anything else starts; the
        // descriptor goes with it, so the agent never holds it.
        if let fd = args.cgroupFD {
            let procs = Descriptor(fd)
            let e = Cgroup.enter(procs.raw)
            procs.close()
            if e != 0 { fail(125, "cannot enter the run's cgroup: \(String(cString: strerror(e))); --no-cgroup runs without its limits") }
        }
        let command = args.command
        guard !command.isEmpty else { fail(125, "internal: no command") }
        // No core dumps (they would carry secrets out of memory); bounded processes and files.
        // A limit that cannot be set stops the run: the agent must not start without it.
        setLimit(Int32(RLIMIT_CORE.rawValue), "RLIMIT_CORE", 0)
        setLimit(6 /* RLIMIT_NPROC, hidden by Glibc's module */, "RLIMIT_NPROC", 4096)
        setLimit(Int32(RLIMIT_NOFILE.rawValue), "RLIMIT_NOFILE", 65536)

        do {
            _ = try Landlock.restrictWrites(to: writable)
        } catch {
            // Missing or disabled in the kernel: the mount layout still confines
            // writes; --check reports this host as degraded.
            if error.errno == ENOSYS || error.errno == EOPNOTSUPP {
                warn("Landlock unavailable (\(error)); writes are confined by the mount layout only")
            } else {
                fail(125, "cannot apply Landlock: \(error)")
            }
        }

        // agentpen and bubblewrap ignore Ctrl-C so that it reaches the agent alone.
        signal(SIGINT, SIG_DFL)
        signal(SIGQUIT, SIG_DFL)

        // Last: the refused set, as a filter whose listener agentpen holds (it
        // answers each call with the policy's errno and reports it). Without
        // it the agent does not start. From here on no listener can be
        // created inside, so none can stand in front of agentpen's.
        guard let notifyFD = args.notifyFD else { fail(125, "internal: no --syscall-notify descriptor") }
        // The directories whose mounts (this sandbox's own) agentpen marks to
        // learn which files the run writes; one it cannot open is left out
        // (the audit then only knows less, and reports more).
        var watched = DescriptorList(taking: args.watch.map { open($0, O_RDONLY | AP_O_DIRECTORY | O_CLOEXEC) }.filter { $0 >= 0 })
        do {
            // agentpen compiled the program while bubblewrap worked, and sealed
            // it: loaded as it is (a program that cannot be loaded stops here).
            let program = try SyscallListener.receiveProgram(over: notifyFD)
            let listener = Descriptor(try SeccompFilter.loadNotifying(program: program.raw))    // sent, then ours closed
            program.close()
            try SyscallListener.send(listener.raw, over: notifyFD, with: watched.raw)
        } catch {
            fail(125, "cannot install the syscall filter: \(error); the agent was not started")
        }
        let sentDirectories = !watched.isEmpty
        watched.closeAll()
        // With directories sent, agentpen answers once its marks are in
        // place: the agent starts after them (or without them if agentpen
        // could not place them; it then knows less and reports more).
        if sentDirectories { SyscallListener.awaitAcknowledgement(over: notifyFD) }
        Descriptor(notifyFD).close()    // inherited from agentpen; not passed to the agent
        // The direct hop starts bubblewrap while the firewall loads: the agent waits
        // here, last, for the namespace helper's one byte (the firewall loaded and
        // read back, the sockets checked by agentpen), so that everything above
        // (none of it the agent's, none of it touching the network) overlaps the
        // firewall's load. End of file (the helper failed or died): the agent never
        // starts. Silently: the helper said why, or agentpen reports how it ended;
        // a second message here would only repeat it.
        if let fd = args.gateFD, !NetHelper.waitFor(Descriptor(fd)) { exit(125) }
        let cArgs = command.map { strdup($0) } + [nil]
        execv(command[0], cArgs)
        let e = errno
        fail(e == ENOENT ? 127 : 126, "\(command[0]): \(String(cString: strerror(e)))")
    }

    private static func setLimit(_ resource: Int32, _ name: String, _ cap: rlim_t) {
        var current = rlimit()
        guard getrlimit(resource, &current) == 0 else {
            fail(125, "cannot read the \(name) limit: \(String(cString: strerror(errno))); the agent was not started")
        }
        let value = min(current.rlim_max, cap)
        var limit = rlimit(rlim_cur: value, rlim_max: value)
        guard setrlimit(resource, &limit) == 0 else {
            fail(125, "cannot set the \(name) limit to \(value): \(String(cString: strerror(errno))); the agent was not started")
        }
    }

    private static func warn(_ message: TerminalText) {
        TerminalText.printError(message)
    }

    private static func fail(_ code: Int32, _ message: TerminalText) -> Never {
        warn(message)
        exit(code)
    }
}
