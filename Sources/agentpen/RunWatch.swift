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
    /// The ledger's group, for marks (the ledger owns it).
    private let group: Int32
    /// Written once by `finish` to stop the thread; closed by `finish` after the thread ended.
    private let stop: Mutex<Descriptor.Pipe?>
    private let done = DispatchGroup()
    private let marks = Mutex<[Int32]>([])

    /// The run's watch, for the syscall reporter that receives the directories.
    private static let current = Mutex<RunWatch?>(nil)

    /// Nil when the kernel gives no group (`reason` says why) or the registry has no ledger file.
    static func start(registry: RunRegistry?) -> (watch: RunWatch?, reason: String?) {
        let rawGroup = RunLedger.openGroup()
        guard rawGroup >= 0 else {
            return (nil, "fanotify_init: \(String(cString: strerror(-rawGroup))) (a mount mark needs CAP_SYS_ADMIN over the project's filesystem)")
        }
        let group = Descriptor(rawGroup)
        // Each early return closes what was opened so far.
        guard let registry, let file = registry.createLedger() else { return (nil, "no run registry") }
        guard let stop = try? Descriptor.pipe() else { return (nil, "pipe failed") }
        let watch = RunWatch(group: group, file: file, stop: stop)
        current.withLock { $0 = watch }
        return (watch, nil)
    }

    private init(group: consuming Descriptor, file: consuming Descriptor, stop: consuming Descriptor.Pipe) {
        self.group = group.raw
        let stopRead = stop.read.raw    // open until `finish`, which waits for the thread first
        self.ledger = Mutex(RunLedger(group: group, file: file))
        self.stop = Mutex(stop)
        done.enter()
        DispatchQueue.global().async { [self] in
            defer { done.leave() }
            while self.ledger.withLock({ $0?.wait(stop: stopRead) ?? false }) {
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
        stop.withLock { p in if let w = p?.write.raw { _ = write(w, &byte, 1) } }
        done.wait()
        Self.current.withLock { $0 = nil }
        stop.withLock { $0 = nil }    // closes both ends
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
