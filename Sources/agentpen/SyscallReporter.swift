import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import Glibc
import Synchronization

/// agentpen's side of the refused-syscall filter: a socket pair whose sandbox
/// end reaches the exec helper (bubblewrap passes it on like the cgroup
/// descriptor), the listener the helper sends back, and one thread that
/// answers every notified call with the policy's errno (never "continue") and
/// counts it (`SyscallTally`) into the run's events.
///
/// If this thread stops answering, a waiting call waits (it never runs); once
/// the listener is closed, the kernel fails every notified call with ENOSYS.
final class SyscallReporter: Sendable {
    /// The number of the helper's end, lent to the spawn at
    /// `SandboxPlan.syscallNotifyFD`; valid until `start`.
    let sandboxEnd: Int32
    /// The pair's ends, owned here: the sandbox's until `start`, the host's
    /// until the answering thread ends.
    private let sandboxSide: Mutex<Descriptor?>
    private let hostSide: Mutex<Descriptor?>
    private let tally = Mutex(SyscallTally())
    private let done = DispatchGroup()
    private let events: any EventSink
    /// Called (on the answering thread) once no process uses the filter any
    /// more: the agent and everything it started have exited, so nothing
    /// inside can act again (only bubblewrap's own init may still be ending).
    private let onSandboxGone: (@Sendable () -> Void)?

    init(events: any EventSink, onSandboxGone: (@Sendable () -> Void)? = nil) throws(Failure) {
        self.onSandboxGone = onSandboxGone
        let pair: Descriptor.SocketPair
        do { pair = try Descriptor.socketPair() } catch { throw .internalError("cannot create the syscall report socket") }
        sandboxEnd = pair.second.raw
        sandboxSide = Mutex(pair.second)
        hostSide = Mutex(pair.first)
        self.events = events
    }

    /// After the spawn: drops agentpen's copy of the sandbox end (so that the
    /// socket ends when the sandbox has it no more) and starts answering.
    func start() throws(Failure) {
        sandboxSide.withLock { $0 = nil }
        // The exec helper's program, compiled here while bubblewrap sets the
        // sandbox up (not on the agent's path), sealed, and queued on the socket
        // for the helper to load. Without it the helper stops the run (125).
        do {
            let program = Descriptor(try SeccompFilter.exportNotifying())
            guard let hostEnd = hostSide.withLock({ $0?.raw }) else { throw SystemError("the syscall report socket", errno: EBADF) }
            try SyscallListener.sendProgram(program.raw, over: hostEnd)
            program.close()
        } catch {
            throw .internalError("cannot hand the syscall filter to the sandbox: \(error)")
        }
        let table: [Int32: String]
        do { table = try SeccompFilter.numberTable() } catch { throw .internalError("\(error)") }
        // Per number: the name and only its rules, so an answer is a short scan.
        var rules: [Int32: [SyscallPolicy.Rule]] = [:]
        for (nr, name) in table { rules[nr] = SyscallPolicy.reportedRules.filter { $0.syscall == name } }
        let native = SeccompFilter.nativeAuditArch
        let errnoNames: [Int32: String] = [SyscallPolicy.EPERM: "EPERM", SyscallPolicy.EAFNOSUPPORT: "EAFNOSUPPORT",
                                            SyscallPolicy.ENOSYS: "ENOSYS"]
        done.enter()
        DispatchQueue.global().async { [self, rules] in
            defer { hostSide.withLock { $0 = nil }; done.leave() }
            var watched = DescriptorList()
            guard let hostEnd = hostSide.withLock({ $0?.raw }),
                  let listener = SyscallListener.receive(over: hostEnd, extras: &watched) else { return }
            // The sandbox's own mounts, to learn which files the run writes
            // (RunWatch); the agent starts once this answer is sent.
            if !watched.isEmpty {
                RunWatch.markSandbox(watched.raw)
                watched.closeAll()
                SyscallListener.acknowledge(over: hostEnd)
            }
            answering: while true {
                switch listener.waitForCall() {
                case .call: break
                case .noProcessLeft: onSandboxGone?(); break answering
                case .failed: break answering
                }
                guard let call = listener.receive() else { continue }
                let name = call.arch == native ? table[call.number] : nil
                let errno = name.map { SyscallPolicy.answer($0, args: call.args, rules: rules[call.number] ?? []) }
                    ?? SyscallPolicy.EPERM
                let label = name ?? "syscall \(call.number)"
                // Read the process only for a new entry, before answering: while
                // the call waits on us, the pid is certainly the caller's.
                let process = tally.withLock { $0.isNew(label, pid: call.pid) } ? ProcessIdentity.read(call.pid) : nil
                let alive = listener.refuse(call.id, errno: errno)
                let event = tally.withLock {
                    $0.note(label, errno: errnoNames[errno] ?? "errno \(errno)", pid: call.pid,
                            process: alive ? process : process.map { SyscallTally.Process(pid: $0.pid, comm: "(exited)", exe: "(exited)") })
                }
                if let event { events.record(event) }
            }
        }
    }

    /// After the sandbox ended: waits (briefly) for the last calls, then
    /// records the counts not yet in an event.
    func finish() {
        _ = done.wait(timeout: .now() + 2)
        for event in tally.withLock({ $0.flush() }) { events.record(event) }
    }
}
