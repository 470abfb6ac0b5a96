import AgentpenEvents
import Testing

/// Refused syscalls are counted, not logged one by one: the first call of each
/// (syscall, pid) is an event, the rest arrive as counts at the end, and the
/// number of entries is bounded.
@Suite struct SyscallTallyTests {
    static func process(_ pid: Int32) -> SyscallTally.Process { .init(pid: pid, comm: "c\(pid)", exe: "/bin/x") }

    @Test func firstCallIsAnEventTheRestACount() {
        var t = SyscallTally()
        #expect(t.isNew("ptrace", pid: 7))
        let first = t.note("ptrace", errno: "EPERM", pid: 7, process: Self.process(7))
        #expect(first?.kind == .syscallRefused && first?.subject == "ptrace" && first?.details["pid"] == "7"
                && first?.details["comm"] == "c7" && first?.details["attempts"] == "1")
        for _ in 0..<99_999 {
            #expect(!t.isNew("ptrace", pid: 7))
            #expect(t.note("ptrace", errno: "EPERM", pid: 7, process: nil) == nil)
        }
        let rest = t.flush()
        #expect(rest.count == 1 && rest[0].details["attempts"] == "99999" && rest[0].details["pid"] == "7")
        #expect(t.flush().isEmpty, "counted once")
    }

    @Test func entriesAreBounded() {
        var t = SyscallTally()
        var events = 0
        for pid in Int32(1)...Int32(SyscallTally.entryLimit + 500) {
            let p = t.isNew("keyctl", pid: pid) ? Self.process(pid) : nil
            if t.note("keyctl", errno: "EPERM", pid: pid, process: p) != nil { events += 1 }
        }
        #expect(events == SyscallTally.entryLimit)
        let rest = t.flush()
        #expect(rest.count == 1 && rest[0].details["attempts"] == "500" && rest[0].details["pid"] == nil, "\(rest)")
    }

    /// The summary counts what each event stands for.
    @Test func theSummaryCountsOccurrences() {
        let log = EventLog()
        var t = SyscallTally()
        _ = t.note("mount", errno: "EPERM", pid: 3, process: Self.process(3)).map(log.record)
        for _ in 0..<4 { _ = t.note("mount", errno: "EPERM", pid: 3, process: nil) }
        t.flush().forEach(log.record)
        #expect(log.summary()?.description.contains("syscall-refused mount ×5") == true, "\(String(describing: log.summary()))")
    }
}
