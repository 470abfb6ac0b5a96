import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import Dispatch
import Glibc
import Synchronization

/// Reports each open of a secret decoy (`SecretDecoys`) as a `secret-read`
/// event, for the run's whole life: a read source on the inotify descriptor,
/// then, at the end, one last read of what the kernel queued before the
/// sandbox ended. Bounded: the first `perPath` opens of a path are one event
/// each; the rest are counted into one event (its `attempts`) at the end.
/// `@unchecked Sendable`: `source` is set once in `init` (Dispatch sources are
/// thread-safe); the counts live in `state`'s Mutex.
final class SecretWatch: @unchecked Sendable {
    static let perPath = 20
    private let files: DecoyFiles
    private let events: any EventSink
    private let queue = DispatchQueue(label: "agentpen.decoys")
    private let source: any DispatchSourceRead
    /// Signalled by the source's cancel handler: only then is the inotify
    /// descriptor unregistered, and `files` may close it.
    private let cancelled = DispatchSemaphore(value: 0)
    private struct State {
        var opens: [String: Int] = [:]
        var overflowed = false
        var stopped = false
    }
    private let state = Mutex(State())
    /// `sandboxEnded()` has run (held while it runs).
    private let ended = Mutex(false)

    init(_ files: DecoyFiles, events: any EventSink) {
        self.files = files
        self.events = events
        source = DispatchSource.makeReadSource(fileDescriptor: files.fd, queue: queue)
        source.setEventHandler { [weak self] in self?.drain() }
        source.setCancelHandler { [cancelled] in cancelled.signal() }
        source.activate()
    }

    /// On `queue` only.
    private func drain() {
        let batch = files.read()
        guard !batch.empty else { return }
        let report = state.withLock { s -> [Event] in
            guard !s.stopped else { return [] }
            if batch.overflowed { s.overflowed = true }
            var out: [Event] = []
            for d in batch.opened {
                s.opens[d.path, default: 0] += 1
                if s.opens[d.path]! <= Self.perPath { out.append(Event(.secretRead, subject: d.path, reason: SecretDecoys.reason)) }
            }
            return out
        }
        report.forEach { events.record($0) }
    }

    /// As soon as the sandbox ended (nothing inside can open a decoy any more):
    /// the opens still queued are read and reported, the read source stops,
    /// the watches are removed (the kernel frees them in the background while
    /// the run's end goes on, `DecoyFiles.removeWatches`), and what the queue
    /// holds after that is read once more: the IN_IGNORED of each removed
    /// watch, which is no open, and any open that came in between. Once only;
    /// from any thread but `queue` (the refused-syscall thread calls it when
    /// the agent's last process has exited, the run's end again): a second
    /// caller returns once the first has done all of it.
    func sandboxEnded() {
        ended.withLock { done in
            guard !done else { return }
            done = true
            queue.sync { drain() }
            source.cancel()
            cancelled.wait()
            files.removeWatches()
            queue.sync { drain() }
        }
    }

    /// Before the run-end event (after `sandboxEnded()`, which it runs if
    /// nothing did): the counts beyond the first events. Nothing is read after.
    func finish() {
        sandboxEnded()
        let (opens, overflowed) = state.withLock { s -> ([String: Int], Bool) in
            s.stopped = true
            return (s.opens, s.overflowed)
        }
        for (path, n) in opens.sorted(by: { $0.key < $1.key }) where n > Self.perPath {
            events.record(Event(.secretRead, subject: path, reason: SecretDecoys.reason + "; opened \(n - Self.perPath) more times",
                                details: ["attempts": String(n - Self.perPath)]))
        }
        if overflowed {
            events.record(Event(.failure, subject: "secret decoys", reason: "more opens than inotify could queue: some secret-read events are missing"))
        }
    }
}
