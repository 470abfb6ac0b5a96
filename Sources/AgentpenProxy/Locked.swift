import Synchronization

/// A shareable reference to one `Mutex`. `Mutex` is noncopyable, so a value that
/// escaping closures on several queues must all reach (a test's collected bytes,
/// a flag) needs a class around it; a stored property of a class uses `Mutex`
/// directly instead. Invariant: `value` is only read or written inside
/// `withLock`. Sendable without `@unchecked`: its one stored property is a Mutex.
final class Locked<Value>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: sending Value) { mutex = Mutex(value) }

    func withLock<R>(_ body: (inout sending Value) throws -> sending R) rethrows -> sending R {
        try mutex.withLock(body)
    }
}
