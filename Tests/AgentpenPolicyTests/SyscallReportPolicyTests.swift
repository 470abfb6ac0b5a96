import AgentpenPolicy
import Testing

/// The split of the seccomp policy into bubblewrap's filter and the reported
/// (notifying) one, and the errno agentpen answers a notified call with.
@Suite struct SyscallReportPolicyTests {
    @Test func bubblewrapKeepsOnlyClone3() {
        let first = SyscallPolicy.bubblewrapRules
        #expect(first.count == 1 && first[0].syscall == "clone3" && first[0].args.isEmpty
                && first[0].action == .errno(SyscallPolicy.ENOSYS))
        #expect(!SyscallPolicy.reportedRules.contains { $0.syscall == "clone3" }, "clone3 is never reported")
        #expect(SyscallPolicy.rules == SyscallPolicy.bubblewrapRules + SyscallPolicy.reportedRules)
        for name in SyscallPolicy.denied {
            #expect(SyscallPolicy.reportedRules.contains { $0.syscall == name && $0.args.isEmpty }, "\(name)")
        }
    }

    @Test func answersAreThePolicysErrno() {
        #expect(SyscallPolicy.answer("ptrace", args: [16, 1, 0, 0, 0, 0]) == SyscallPolicy.EPERM)
        #expect(SyscallPolicy.answer("unshare", args: [0x1000_0000, 0, 0, 0, 0, 0]) == SyscallPolicy.EPERM)
        // AF_VSOCK (40), AF_NETLINK with a protocol other than NETLINK_ROUTE, a family past AF_MAX.
        #expect(SyscallPolicy.answer("socket", args: [40, 1, 0, 0, 0, 0]) == SyscallPolicy.EAFNOSUPPORT)
        #expect(SyscallPolicy.answer("socket", args: [16, 3, 9, 0, 0, 0]) == SyscallPolicy.EAFNOSUPPORT)
        #expect(SyscallPolicy.answer("socketpair", args: [1 << 40, 1, 0, 0, 0, 0]) == SyscallPolicy.EAFNOSUPPORT)
        #expect(SyscallPolicy.answer("ioctl", args: [0, 0x5412, 0, 0, 0, 0]) == SyscallPolicy.EPERM)
        #expect(SyscallPolicy.answer("seccomp", args: [1, 8, 0, 0, 0, 0]) == SyscallPolicy.EPERM)
    }

    /// A notification no rule explains (arguments rewritten after the filter
    /// looked, a table out of step) is still refused: never allowed.
    @Test func anUnexplainedCallIsRefused() {
        #expect(SyscallPolicy.answer("socket", args: [2, 1, 0, 0, 0, 0]) == SyscallPolicy.EPERM)
        #expect(SyscallPolicy.answer("frobnicate", args: []) == SyscallPolicy.EPERM)
        #expect(SyscallPolicy.answer("unshare", args: []) == SyscallPolicy.EPERM)
    }

    /// Only a filter with a listener is refused: the agent may stack plain filters.
    @Test func onlyListenersAreRefused() {
        let seccomp = SyscallPolicy.reportedRules.filter { $0.syscall == "seccomp" }
        #expect(seccomp.count == 1)
        let holds = { (args: [UInt64]) in seccomp[0].args.allSatisfy { SyscallPolicy.holds($0, args) } }
        #expect(holds([1, 8, 0]) && holds([1, 8 | 1, 0]))
        #expect(!holds([1, 0, 0]) && !holds([1, 1, 0]) && !holds([0, 8, 0]) && !holds([2, 8, 0]))
    }
}
