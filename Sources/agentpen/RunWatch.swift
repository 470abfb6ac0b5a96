import AgentpenKernel
import AgentpenPolicy
import CShim
import Dispatch
import Glibc
import Synchronization

/// The run's ledger (RunLedger) kept up to date while the sandbox runs: one
/// thread reads the fanotify group and appends to the ledger file, so that
/// another run auditing meanwhile sees what this run wrote so far. Created
/// before the sandbox starts (only where the kernel gives agentpen a group);
/// the marks are placed when the exec helper sends the sandbox's directories
/// (`markSandbox`), before the agent starts.
final class RunWatch: Sendable {
    private let ledger: Mutex<RunLedger?>
    private let group: Int32
    private let stop: (read: Int32, write: Int32)
    private let done = DispatchGroup()
    private let marks = Mutex<[Int32]>([])

    /// The run's watch, for the syscall reporter that receives the directories.
    private static let current = Mutex<RunWatch?>(nil)

    /// Nil when the kernel gives no group (`reason` says why) or the registry has no ledger file.
    static func start(registry: RunRegistry?) -> (watch: RunWatch?, reason: String?) {
        let group = RunLedger.openGroup()
        guard group >= 0 else {
            return (nil, "fanotify_init: \(String(cString: strerror(-group))) (a mount mark needs CAP_SYS_ADMIN over the project's filesystem)")
        }
        guard let registry, let file = registry.createLedger() else { close(group); return (nil, "no run registry") }
        var pipe: [Int32] = [0, 0]
        guard ap_pipe2(&pipe, AP_O_CLOEXEC) == 0 else { close(group); close(file); return (nil, "pipe failed") }
        let watch = RunWatch(group: group, file: file, stop: (pipe[0], pipe[1]))
        current.withLock { $0 = watch }
        return (watch, nil)
    }

    private init(group: Int32, file: Int32, stop: (read: Int32, write: Int32)) {
        self.ledger = Mutex(RunLedger(group: group, file: file))
        self.group = group
        self.stop = stop
        done.enter()
        DispatchQueue.global().async { [self] in
            defer { done.leave() }
            while self.ledger.withLock({ $0?.wait(stop: stop.read) ?? false }) {
                self.ledger.withLock { $0?.drain() }
            }
        }
    }

    /// Marks the mounts of the directories the exec helper opened inside the
    /// sandbox (the caller closes them). Results go to --log via `finish`.
    static func markSandbox(_ dirFDs: [Int32]) {
        guard let watch = current.withLock({ $0 }) else { return }
        let results = dirFDs.map { ap_fanotify_mark_mount(watch.group, $0) }
        watch.marks.withLock { $0 += results }
    }

    /// After the sandbox ended: the last events read, the thread stopped, the
    /// ledger closed. What this run wrote, and a note for --log when the
    /// ledger is not complete.
    func finish() -> (wrote: Set<PersistenceWalk.FileID>, note: String?) {
        var byte: UInt8 = 1
        _ = write(stop.write, &byte, 1)
        done.wait()
        Self.current.withLock { $0 = nil }
        close(stop.read); close(stop.write)
        let marks = marks.withLock { $0 }
        return ledger.withLock { l -> (Set<PersistenceWalk.FileID>, String?) in
            guard let l else { return ([], nil) }
            l.drain()
            l.close()
            var note: String?
            if marks.isEmpty { note = "no mount was marked (the exec helper sent none)" }
            else if let bad = marks.first(where: { $0 != 0 }) { note = "fanotify_mark: \(String(cString: strerror(-bad)))" }
            else if l.incomplete { note = "events were lost (queue overflow)" }
            return (l.wrote, note)
        }
    }
}
