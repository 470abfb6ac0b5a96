import AgentpenEvents
import AgentpenKernel
import Foundation
import Glibc
import Testing

/// A process's comm is the sandbox's text: `ProcessIdentity` keeps it as the
/// process set it, and it is escaped once, where it is printed. (Escaped at
/// read time as well, a live line showed `evil\\x1b[31m`.)
@Suite struct ProcessIdentityTests {
    @Test func theCommIsKeptAsSetAndEscapedOnceWhenPrinted() throws {
        // This thread's name (/proc/TID/comm is the thread's), restored after.
        // (no await here: the test stays on this thread.)
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")   // "PID/task/TID"
        let tid = try #require(link.split(separator: "/").last.flatMap { Int32($0) })
        let path = "/proc/thread-self/comm"
        let saved = try String(contentsOfFile: path, encoding: .utf8)
        defer { try? saved.write(toFile: path, atomically: false, encoding: .utf8) }
        try "evil\u{1b}[31mX".write(toFile: path, atomically: false, encoding: .utf8)

        let process = ProcessIdentity.read(tid)
        #expect(process.comm == "evil\u{1b}[31mX")
        var tally = SyscallTally()
        let noted = tally.note("ptrace", errno: "EPERM", pid: tid, process: process)
        let event = try #require(noted)
        let line: TerminalText = "blocked \(event.subject): \(event.reason)"
        #expect(line.rendered.contains(#"to evil\x1b[31mX (pid "#), "\(line.rendered)")
        #expect(!line.rendered.contains(#"\\"#), "escaped twice: \(line.rendered)")
    }
}
