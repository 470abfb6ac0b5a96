import AgentpenKernel
import AgentpenPolicy
import Glibc
import Testing

/// The kernel edge compiles the whole policy, and refuses to compile a filter
/// that would leave a policy call out.
@Suite struct SeccompFilterTests {
    @Test func thePolicyCompilesHere() throws {
        let fd = try SeccompFilter.exportToMemoryFile()
        var st = stat()
        #expect(fstat(fd, &st) == 0 && st.st_size > 0)
        close(fd)
        #expect(SeccompFilter.nativeArchitecture != nil)
    }

    @Test func aCallNobodyCanNameStopsTheFilter() {
        var rules = SyscallPolicy.rules
        rules.append(contentsOf: SyscallPolicy.rules.prefix(1).map { r in
            var r = r
            r.syscall = "agentpen_no_such_call"
            return r
        })
        #expect {
            let fd = try SeccompFilter.exportToMemoryFile(rules)
            close(fd)
        } throws: { error in
            "\(error)".contains("agentpen_no_such_call")
        }
    }
}
