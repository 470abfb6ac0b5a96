import AgentpenPolicy
import CSeccomp
import Glibc

/// Turns `SyscallPolicy` into a BPF program with libseccomp, by syscall name,
/// for the native architecture only: a syscall made through another ABI
/// (i386 via int 0x80, x32) kills the process.
public enum SeccompFilter {
    /// The compiled program in a memfd, ready for `bwrap --seccomp FD`.
    public static func exportToMemoryFile(_ rules: [SyscallPolicy.Rule] = SyscallPolicy.rules) throws(SystemError) -> Int32 {
        guard let ctx = seccomp_init(UInt32(SCMP_ACT_ALLOW)) else { throw SystemError("seccomp_init", errno: ENOMEM) }
        defer { seccomp_release(ctx) }
        // Foreign ABIs are not in the filter, so libseccomp applies the bad-arch action.
        let badArch = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, UInt32(SCMP_ACT_KILL_PROCESS))
        if badArch < 0 { throw SystemError("seccomp_attr_set", "ACT_BADARCH", result: Int(badArch)) }
        for rule in rules {
            let nr = seccomp_syscall_resolve_name(rule.syscall)
            if nr == __NR_SCMP_ERROR { continue }   // not a syscall libseccomp knows on this architecture
            let action: UInt32
            switch rule.action { case .errno(let e): action = 0x0005_0000 | UInt32(e) }
            var cmps = rule.args.map {
                scmp_arg_cmp(arg: $0.index, op: SCMP_CMP_MASKED_EQ, datum_a: $0.mask, datum_b: $0.value)
            }
            let rc = cmps.withUnsafeMutableBufferPointer {
                seccomp_rule_add_array(ctx, action, nr, UInt32($0.count), $0.baseAddress)
            }
            if rc < 0 { throw SystemError("seccomp_rule_add", rule.syscall, result: Int(rc)) }
        }
        let fd = try memoryFile("agentpen-seccomp", [])
        let rc = seccomp_export_bpf(ctx, fd)
        if rc < 0 { close(fd); throw SystemError("seccomp_export_bpf", result: Int(rc)) }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    /// The libseccomp version, for --check.
    public static var libraryVersion: String {
        guard let v = seccomp_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.micro)"
    }
}
