import AgentpenSystem
import Dispatch
import Glibc
import Testing
@testable import AgentpenProxy

/// The catch-all stops its listeners draining: a connection the agent made just
/// before it ended can still wait in the kernel's queue, unaccepted, when the run
/// ends; it is a refused flow and must be reported like the others (seen missing
/// from NetworkTests.StartupGate's events under load before the drain).
@Suite struct ListenerDrainTests {
    /// Connections queued in the kernel when the listener stops: a draining stop
    /// accepts every one (more than one accept batch of 64), a plain stop none (the
    /// control, so that the test can fail).
    @Test func aDrainingStopAcceptsEveryQueuedConnectionAPlainStopNone() throws {
        for draining in [true, false] {
            let loop = EventLoop.shared
            let accepted = Locked(0)
            let l = try Listener(address: .loopbackV4, port: 0, loop: loop) { c, _, _ in
                accepted.withLock { $0 += 1 }
                c.close()
            }
            // Never started: nothing is accepted before the stop, so what waits is
            // exactly what these clients made (each connect returns once queued).
            let clients = try (0..<70).map { _ in try Net.connect(l.port) }
            l.stop(draining: draining)
            // The stop is posted to the loop: what is posted after it runs after it.
            let stopped = DispatchSemaphore(value: 0)
            loop.async { stopped.signal() }
            stopped.wait()
            #expect(accepted.withLock { $0 } == (draining ? 70 : 0), "draining: \(draining)")
            for c in clients { close(c) }
        }
    }
}
