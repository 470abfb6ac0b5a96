import Dispatch

/// An inactive-at-birth Dispatch source that can be switched on and off any
/// number of times and cancelled in any state. Dispatch crashes when a suspended
/// or never-activated source is released, so the bookkeeping lives here.
/// Use only from the queue the source targets.
/// `@unchecked Sendable`: `started`/`active`/`cancelled` mirror the source's
/// Dispatch state and are owned by `queue`; every change asserts it runs there.
/// Invariant: resume/suspend calls stay balanced (Dispatch traps otherwise).
final class Watch: @unchecked Sendable {
    let source: any DispatchSourceProtocol
    private let queue: DispatchQueue
    private var started = false
    private(set) var active = false
    private var cancelled = false

    init(_ source: any DispatchSourceProtocol, queue: DispatchQueue, group: DispatchGroup?,
         handler: @escaping @Sendable () -> Void) {
        self.source = source
        self.queue = queue
        source.setEventHandler(handler: handler)
        if let group {
            group.enter()
            source.setCancelHandler { group.leave() }
        }
    }

    static func read(_ fd: Int32, queue: DispatchQueue, group: DispatchGroup?, handler: @escaping @Sendable () -> Void) -> Watch {
        Watch(DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue), queue: queue, group: group, handler: handler)
    }

    static func write(_ fd: Int32, queue: DispatchQueue, group: DispatchGroup?, handler: @escaping @Sendable () -> Void) -> Watch {
        Watch(DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue), queue: queue, group: group, handler: handler)
    }

    func set(_ on: Bool) { on ? enable() : disable() }

    func enable() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !active, !cancelled else { return }
        active = true
        if started { source.resume() } else { started = true; source.activate() }
    }

    func disable() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard active, !cancelled else { return }
        active = false
        source.suspend()
    }

    func cancel() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !cancelled else { return }
        cancelled = true
        source.cancel()
        // A cancelled source still needs to run (to call its cancel handler and be freed).
        if !active {
            if started { source.resume() } else { started = true; source.activate() }
        }
    }
}
