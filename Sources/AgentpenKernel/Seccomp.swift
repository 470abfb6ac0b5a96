import AgentpenPolicy
import CSeccomp
import Glibc

/// Turns `SyscallPolicy` into a BPF program with libseccomp, by syscall name
/// (or by raw number where libseccomp is too old to name a call), for the
/// native architecture only: a syscall made through another ABI (i386 via
/// int 0x80, x32) kills the process.
public enum SeccompFilter {
    /// The compiled program in a memfd, ready for `bwrap --seccomp FD`.
    public static func exportToMemoryFile(_ rules: [SyscallPolicy.Rule] = SyscallPolicy.rules) throws(SystemError) -> Int32 {
        guard let ctx = seccomp_init(UInt32(SCMP_ACT_ALLOW)) else { throw SystemError("seccomp_init", errno: ENOMEM) }
        defer { seccomp_release(ctx) }
        // Foreign ABIs are not in the filter, so libseccomp applies the bad-arch action.
        let badArch = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, UInt32(SCMP_ACT_KILL_PROCESS))
        if badArch < 0 { throw SystemError("seccomp_attr_set", "ACT_BADARCH", result: Int(badArch)) }
        let arch = nativeArchitecture
        for rule in rules {
            let resolution: SyscallPolicy.Resolution
            do {
                resolution = try SyscallPolicy.resolve(rule.syscall, libseccompNumber: seccomp_syscall_resolve_name(rule.syscall),
                                                       arch: arch)
            } catch {
                // Fail closed: a filter without one of the policy's calls is not the policy.
                throw SystemError("libseccomp cannot name policy syscall", "\(error.syscall) (update libseccomp)", errno: ENOSYS)
            }
            let action: UInt32
            switch rule.action { case .errno(let e): action = 0x0005_0000 | UInt32(e) }
            var cmps = rule.args.map { m -> scmp_arg_cmp in
                switch m.comparison {
                case .maskedEqual: return scmp_arg_cmp(arg: m.index, op: SCMP_CMP_MASKED_EQ, datum_a: m.mask, datum_b: m.value)
                case .notEqual: return scmp_arg_cmp(arg: m.index, op: SCMP_CMP_NE, datum_a: m.value, datum_b: 0)
                case .greaterOrEqual: return scmp_arg_cmp(arg: m.index, op: SCMP_CMP_GE, datum_a: m.value, datum_b: 0)
                }
            }
            let rc: Int32
            switch resolution {
            case .absent: continue
            case .number(let nr):
                rc = cmps.withUnsafeMutableBufferPointer { seccomp_rule_add_array(ctx, action, nr, UInt32($0.count), $0.baseAddress) }
            case .raw(let nr):
                // Exactly this number on the native architecture: no rewriting by name tables.
                rc = cmps.withUnsafeMutableBufferPointer { seccomp_rule_add_exact_array(ctx, action, nr, UInt32($0.count), $0.baseAddress) }
            }
            if rc < 0 { throw SystemError("seccomp_rule_add", rule.syscall, result: Int(rc)) }
        }
        let program = Descriptor(try memoryFile("agentpen-seccomp", []))
        let rc = seccomp_export_bpf(ctx, program.raw)
        if rc < 0 { throw SystemError("seccomp_export_bpf", result: Int(rc)) }
        lseek(program.raw, 0, SEEK_SET)
        return program.take()
    }

    /// The architecture libseccomp builds for, if it is one the policy has raw numbers for.
    public static var nativeArchitecture: SyscallPolicy.Architecture? {
        switch seccomp_arch_native() {
        case 0xC000_003E: return .x86_64    // SCMP_ARCH_X86_64 (AUDIT_ARCH_X86_64)
        case 0xC000_00B7: return .aarch64   // SCMP_ARCH_AARCH64 (AUDIT_ARCH_AARCH64)
        default: return nil
        }
    }

    /// Policy calls that went in by raw number because libseccomp could not name them (for --check).
    public static var rawNumbered: [String] {
        let arch = nativeArchitecture
        return Set(SyscallPolicy.rules.map(\.syscall)).sorted().filter {
            (try? SyscallPolicy.resolve($0, libseccompNumber: seccomp_syscall_resolve_name($0), arch: arch))
                .map { if case .raw = $0 { return true } else { return false } } ?? false
        }
    }

    /// The libseccomp version, for --check.
    public static var libraryVersion: String {
        guard let v = seccomp_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.micro)"
    }
}
