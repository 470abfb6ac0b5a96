import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
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
    /// The helper's end, passed to the spawn at `SandboxPlan.syscallNotifyFD`.
    let sandboxEnd: Int32
    private let hostEnd: Int32
    private let tally = Mutex(SyscallTally())
    private let done = DispatchGroup()
    private let events: any EventSink

    init(events: any EventSink) throws(Failure) {
        var pair: [Int32] = [0, 0]
        guard ap_socketpair_seqpacket(&pair) == 0 else { throw .internalError("cannot create the syscall report socket") }
        sandboxEnd = pair[1]
        hostEnd = pair[0]
        self.events = events
    }

    /// After the spawn: drops agentpen's copy of the sandbox end (so that the
    /// socket ends when the sandbox has it no more) and starts answering.
    func start() throws(Failure) {
        close(sandboxEnd)
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
            defer { close(hostEnd); done.leave() }
            var watched: [Int32] = []
            guard let listener = SyscallListener.receive(over: hostEnd, extras: &watched) else { return }
            // The sandbox's own mounts, to learn which files the run writes
            // (RunWatch); the agent starts once this answer is sent.
            if !watched.isEmpty {
                RunWatch.markSandbox(watched)
                watched.forEach { close($0) }
                SyscallListener.acknowledge(over: hostEnd)
            }
            while listener.waitForCall() {
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
