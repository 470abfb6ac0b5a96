import AgentpenSystem
import Dispatch
import Synchronization

/// Readiness of one descriptor for reading or for writing, reported by
/// `EventLoop` to a handler on `queue`. Born disabled; enabled and disabled any
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
/// `enable`, `disable` and `cancel` may be called from any thread; off `queue`,
/// the handler may be running at that moment, so close the descriptor in
/// `onCancel` then, not right after `cancel`. An `inline` watch's reports run
/// on the loop's own thread, inside `queue.sync` (so still on `queue`, and never
/// beside another block of it): no hand-over to a worker thread, which costs a
/// thread wake-up per report. Only for short handlers that never block or wait
/// for another queue (the relay's pumps, a dial's completion): while one runs,
/// the loop reports nothing else. Sendable without `@unchecked`:
/// the switchable state lives in the loop's Mutex, `cancelled` is atomic, the
/// rest is immutable.
public final class Watch: Sendable {
    let fd: Int32
    let interest: EventLoop.Interest
    let queue: DispatchQueue
    /// Reports run on the loop's thread (see above).
    let inline: Bool
    private let handler: @Sendable () -> Void
    private let onCancel: (@Sendable () -> Void)?
    private let group: DispatchGroup?
    private let cancelled = Atomic<Bool>(false)
    private let loop: EventLoop
    /// `owning:`'s descriptor, closed once the watch is cancelled.
    private let owned: Mutex<Descriptor?>

    /// `group` is entered now and left once the watch is cancelled; `onCancel`
    /// runs then too (e.g. to close the descriptor), on `queue`.
    init(_ fd: Int32, _ interest: EventLoop.Interest, queue: DispatchQueue, group: DispatchGroup?,
         loop: EventLoop = .shared, owning: consuming Descriptor? = nil, inline: Bool = false,
         onCancel: (@Sendable () -> Void)? = nil, handler: @escaping @Sendable () -> Void) {
        self.fd = fd
        self.inline = inline
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

    /// A watch whose reports run on the loop's thread (short, non-blocking handlers only).
    static func inline(_ fd: Int32, _ interest: EventLoop.Interest, queue: DispatchQueue, group: DispatchGroup?,
                       handler: @escaping @Sendable () -> Void) -> Watch {
        Watch(fd, interest, queue: queue, group: group, inline: true, handler: handler)
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
        queue.async { [self] in
            onCancel?()
            owned.withLock { $0 = nil }
            group?.leave()
        }
    }

    /// A report from the loop, on `queue`.
    func fire() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !cancelled.load(ordering: .relaxed), loop.mayRun(self) else { return }
        handler()
        loop.ran(self)
    }
}
