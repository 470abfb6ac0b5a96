import AgentpenPolicy
import Glibc

/// The host side of `SecretDecoys`: the empty files in the session's owner-only
/// `decoys` directory and one inotify descriptor watching each for IN_OPEN.
/// Only IN_OPEN: a read of an empty file returns no bytes, for which the kernel
/// sends no IN_ACCESS. Opens for writing fail on the read-only bind before any
/// event; `stat` and `ls` make none.
public final class DecoyFiles: Sendable {
    /// The inotify descriptor (nonblocking, close-on-exec), closed with this
    /// object or when the process exits; `removeWatches()` first makes that
    /// close cheap.
    private let inotify: Descriptor
    public var fd: Int32 { inotify.raw }
    /// Watch descriptor to the decoy it watches.
    public let watches: [Int32: SecretDecoys.Decoy]
    public static let dirName = "decoys"

    /// Creates `decoys/` in the session directory `dir` (0700; it must be new),
    /// an empty 0600 file per decoy (opened without following symlinks), and the
    /// watches. Nil when any step fails: no decoy is planted then.
    public static func create(sessionDir dir: Int32, _ decoys: [SecretDecoys.Decoy]) -> DecoyFiles? {
        guard !decoys.isEmpty, mkdirat(dir, dirName, 0o700) == 0 else { return nil }
        guard let directory = Descriptor.open(at: dir, dirName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) else { return nil }
        let d = directory.raw
        let rawInotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard rawInotify >= 0 else { return nil }
        let inotify = Descriptor(rawInotify)    // an early return closes it
        var watches: [Int32: SecretDecoys.Decoy] = [:]
        for decoy in decoys {
            guard let f = Descriptor.open(at: d, decoy.fileName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode: 0o600)
            else { return nil }
            f.close()
            let wd = inotify_add_watch(inotify.raw, "/proc/self/fd/\(d)/\(decoy.fileName)", UInt32(IN_OPEN | IN_DONT_FOLLOW))
            guard wd >= 0 else { return nil }
            watches[wd] = decoy
        }
        return DecoyFiles(inotify: inotify, watches: watches)
    }

    private init(inotify: consuming Descriptor, watches: [Int32: SecretDecoys.Decoy]) {
        self.inotify = inotify
        self.watches = watches
    }

    /// Removes every watch: called once nothing can open a decoy any more (the
    /// sandbox ended) and what was queued before has been read. The kernel
    /// queues an IN_IGNORED per watch (never read as an open: `read()` takes
    /// IN_OPEN only; opens queued earlier stay queued) and frees the marks
    /// after an SRCU grace period, in the background. Closing the descriptor
    /// with the watches still on waits for that grace period instead
    /// (`fsnotify_destroy_group`: ~10-15 ms with 15 watches at the end of
    /// every run), so the watches go as early as possible and the descriptor
    /// is closed last, when the process exits.
    public func removeWatches() {
        for wd in watches.keys { _ = inotify_rm_watch(fd, wd) }
    }

    /// What one read of the descriptor brought: the decoys opened, in order
    /// (one entry per open the kernel reported; it merges identical events that
    /// follow each other unread), and whether the queue overflowed (opens lost).
    public struct Batch {
        public var opened: [SecretDecoys.Decoy] = []
        public var overflowed = false
        public var empty: Bool { opened.isEmpty && !overflowed }
    }

    /// Everything queued now (nonblocking; empty when nothing is).
    public func read() -> Batch {
        var batch = Batch()
        var buf = [UInt8](repeating: 0, count: 16 * 1024)
        let header = MemoryLayout<inotify_event>.size
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            var i = 0
            while i + header <= n {
                let (wd, mask, len) = buf.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    let e = raw.loadUnaligned(fromByteOffset: i, as: inotify_event.self)
                    return (e.wd, e.mask, Int(e.len))
                }
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { batch.overflowed = true }
                if mask & UInt32(IN_OPEN) != 0, let d = watches[wd] { batch.opened.append(d) }
                i += header + len
            }
        }
        return batch
    }
}
