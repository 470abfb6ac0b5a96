import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import CShim
import Glibc

/// `agentpen allow HOST [--once|--session|--save agent|project|--deny] [--session-id ID]`:
/// sends the decision to the session's control socket and prints the run's
/// answer. The socket lives in the owner-only session directory, which the
/// sandbox cannot see; the run also checks the peer's uid.
enum AllowClient {
    static func main(_ command: ControlCommand, session: String?) -> Never {
        let found = SessionLookup.find(session)
        let id = found.id
        guard let control = SessionStore.connect(dir: found.dir.raw) else {
            printError("session \(id) is not running (its control socket does not answer); nothing to decide")
            exit(2)
        }
        let fd = control.raw
        let line = Array(command.line.utf8)
        guard line.withUnsafeBytes({ ap_send_nosignal(fd, $0.baseAddress, $0.count) }) == line.count else {
            printError("session \(id): cannot send the decision: \(String(cString: strerror(errno)))")
            exit(125)
        }
        // Event lines (JSON) may come first; the answer is the first "ok" or "error" line.
        var pending: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        var total = 0
        while total < 16 << 20 {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, 30_000)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { break }
            let n = recv(fd, &buf, buf.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            total += n
            pending += buf[0..<n]
            while let nl = pending.firstIndex(of: 0x0a) {
                let text = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                if text.hasPrefix("ok ") {
                    printError("session \(id): \(String(text.dropFirst(3)))")
                    exit(0)
                }
                if text.hasPrefix("error ") {
                    printError("session \(id): \(String(text.dropFirst(6)))")
                    exit(2)
                }
            }
        }
        printError("session \(id) gave no answer (it may have ended)")
        exit(125)
    }
}
