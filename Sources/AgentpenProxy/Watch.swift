import AgentpenSystem
import Dispatch
import Synchronization

/// Readiness of one descriptor for reading or for writing, reported by
/// `EventLoop` to a handler on `queue`, or (a watch made `on:` a loop, for
/// what lives on that loop) on the loop's own thread, with no hand-over. Born disabled; enabled and disabled any
/// number of times; cancelled once. While enabled the handler runs each time
/// the descriptor is ready (level-triggered: again after it returned, as long
/// as it stays ready), never twice at once, and never after `cancel`. A
/// hang-up or an error counts as ready both ways, so the handler meets it on
/// its next read or write.
///
/// `cancel` takes the descriptor out of the loop before it returns, so the
/// owner may close it or hand it on right after; `onCancel` and the group's
/// leave still run afterwards on `queue`, after any report already queued
/// (which finds the watch cancelled and does nothing). A watch made with
/// `owning:` holds the descriptor itself and closes it then, after `onCancel`.
/// A watch on a loop is made, switched and cancelled on the loop's thread only;
/// `onCancel` then runs there too, later, after the current handler.
/// `enable`, `disable` and `cancel` of a watch on a queue may be called from any thread; off `queue`,
/// the handler may be running at that moment, so close the descriptor in
/// `onCancel` then, not right after `cancel`. Sendable without `@unchecked`:
/// the switchable state lives in the loop's Mutex, `cancelled` is atomic, the
/// rest is immutable.
public final class Watch: Sendable {
    let fd: Int32
    let interest: EventLoop.Interest
    /// nil: the handler runs on `loop`'s thread.
    let queue: DispatchQueue?
    private let handler: @Sendable () -> Void
    private let onCancel: (@Sendable () -> Void)?
    private let group: DispatchGroup?
    private let cancelled = Atomic<Bool>(false)
    private let loop: EventLoop
    /// `owning:`'s descriptor, closed once the watch is cancelled.
    private let owned: Mutex<Descriptor?>

    /// `group` is entered now and left once the watch is cancelled; `onCancel`
    /// runs then too (e.g. to close the descriptor), on `queue`.
    init(_ fd: Int32, _ interest: EventLoop.Interest, queue: DispatchQueue?, group: DispatchGroup?,
         loop: EventLoop = .shared, owning: consuming Descriptor? = nil, onCancel: (@Sendable () -> Void)? = nil,
         handler: @escaping @Sendable () -> Void) {
        self.fd = fd
        owned = Mutex(owning)
        self.interest = interest
        self.queue = queue
        self.group = group
        self.onCancel = onCancel
        self.handler = handler
        self.loop = loop
        group?.enter()
        loop.add(self)
    }

    /// Watches `socket` and owns it: it is closed once the watch is cancelled.
    public static func read(owning socket: consuming Descriptor, queue: DispatchQueue, group: DispatchGroup?,
                            onCancel: (@Sendable () -> Void)? = nil, handler: @escaping @Sendable () -> Void) -> Watch {
        let fd = socket.raw
        return Watch(fd, .read, queue: queue, group: group, owning: socket, onCancel: onCancel, handler: handler)
    }

    public static func read(_ fd: Int32, queue: DispatchQueue, group: DispatchGroup?, onCancel: (@Sendable () -> Void)? = nil,
                     handler: @escaping @Sendable () -> Void) -> Watch {
        Watch(fd, .read, queue: queue, group: group, onCancel: onCancel, handler: handler)
    }

    public static func write(_ fd: Int32, queue: DispatchQueue, group: DispatchGroup?, onCancel: (@Sendable () -> Void)? = nil,
                      handler: @escaping @Sendable () -> Void) -> Watch {
        Watch(fd, .write, queue: queue, group: group, onCancel: onCancel, handler: handler)
    }

    /// Watches `socket` on `loop`'s thread and owns it: closed once the watch is cancelled.
    static func read(owning socket: consuming Descriptor, on loop: EventLoop, handler: @escaping @Sendable () -> Void) -> Watch {
        loop.preconditionOnThread()
        let fd = socket.raw
        return Watch(fd, .read, queue: nil, group: nil, loop: loop, owning: socket, handler: handler)
    }

    /// A watch whose handler runs on `loop`'s thread (where its owner lives).
    static func read(_ fd: Int32, on loop: EventLoop, handler: @escaping @Sendable () -> Void) -> Watch {
        loop.preconditionOnThread()
        return Watch(fd, .read, queue: nil, group: nil, loop: loop, handler: handler)
    }

    static func write(_ fd: Int32, on loop: EventLoop, handler: @escaping @Sendable () -> Void) -> Watch {
        loop.preconditionOnThread()
        return Watch(fd, .write, queue: nil, group: nil, loop: loop, handler: handler)
    }

    public func set(_ on: Bool) { on ? enable() : disable() }

    public func enable() {
        guard !cancelled.load(ordering: .relaxed) else { return }
        loop.setEnabled(self, true)
    }

    public func disable() {
        guard !cancelled.load(ordering: .relaxed) else { return }
        loop.setEnabled(self, false)
    }

    public func cancel() {
        guard !cancelled.exchange(true, ordering: .relaxed) else { return }
        loop.remove(self)
        let after: @Sendable () -> Void = { [self] in
            onCancel?()
            owned.withLock { $0 = nil }
            group?.leave()
        }
        if let queue { queue.async(execute: after) } else { loop.async(after) }
    }

    /// A report from the loop, on `queue` (or the loop's thread).
    func fire() {
        if let queue { dispatchPrecondition(condition: .onQueue(queue)) } else { loop.preconditionOnThread() }
        guard !cancelled.load(ordering: .relaxed), loop.mayRun(self) else { return }
        handler()
        loop.ran(self)
    }
}
