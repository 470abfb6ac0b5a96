import AgentpenPolicy
import AgentpenSystem
import CSeccomp
import CShim
import Glibc

/// Turns `SyscallPolicy` into a BPF program with libseccomp, by syscall name
/// (or by raw number where libseccomp is too old to name a call), for the
/// native architecture only: a syscall made through another ABI (i386 via
/// int 0x80, x32) kills the process.
public enum SeccompFilter {
    /// The compiled first filter in a memfd, ready for `bwrap --seccomp FD`.
    public static func exportToMemoryFile(_ rules: [SyscallPolicy.Rule] = SyscallPolicy.bubblewrapRules) throws(SystemError) -> Int32 {
        let ctx = try context(rules, notify: false)
        defer { seccomp_release(ctx) }
        let program = Descriptor(try memoryFile("agentpen-seccomp", []))
        let rc = seccomp_export_bpf(ctx, program.raw)
        if rc < 0 { throw SystemError("seccomp_export_bpf", result: Int(rc)) }
        lseek(program.raw, 0, SEEK_SET)
        return program.take()
    }

    /// The reported set compiled (by agentpen, while bubblewrap sets the sandbox
    /// up) as a filter whose every rule notifies, in a memfd sealed against every
    /// change before anyone else holds it: the exec helper loads it as it is
    /// (`loadNotifying(program:)`) instead of compiling it on the agent's path.
    public static func exportNotifying(_ rules: [SyscallPolicy.Rule] = SyscallPolicy.reportedRules) throws(SystemError) -> Int32 {
        let ctx = try context(rules, notify: true)
        defer { seccomp_release(ctx) }
        let created = ap_memfd_create("agentpen-notify-filter", UInt32(AP_MFD_CLOEXEC) | AP_MFD_ALLOW_SEALING)
        guard created >= 0 else { throw SystemError("memfd_create", "the notifying filter", result: Int(created)) }
        let program = Descriptor(created)
        let rc = seccomp_export_bpf(ctx, program.raw)
        if rc < 0 { throw SystemError("seccomp_export_bpf", result: Int(rc)) }
        let sealed = ap_memfd_seal_all(program.raw)
        if sealed < 0 { throw SystemError("F_ADD_SEALS", "the notifying filter", result: Int(sealed)) }
        return program.take()
    }

    /// The most a program may hold: BPF_MAXINSNS instructions of 8 bytes.
    static let maxProgramBytes = 4096 * 8

    /// Loads the program in `program` (`exportNotifying`'s memfd, received from
    /// agentpen) on the calling thread (the exec helper, single-threaded) and
    /// returns its listener (SECCOMP_FILTER_FLAG_NEW_LISTENER). Refused, and
    /// nothing loaded: a descriptor that is not sealed against every change, an
    /// empty or oversized program, one the kernel refuses.
    public static func loadNotifying(program: Int32) throws(SystemError) -> Int32 {
        let sealed = ap_memfd_sealed(program)
        if sealed < 0 { throw SystemError("F_GET_SEALS", "the notifying filter", result: Int(sealed)) }
        if sealed == 0 { throw SystemError("the notifying filter", "its descriptor is not sealed", errno: EPERM) }
        var st = stat()
        guard fstat(program, &st) == 0 else { throw SystemError("fstat", "the notifying filter", errno: errno) }
        let size = Int(st.st_size)
        guard size > 0, size <= maxProgramBytes, size % 8 == 0 else {
            throw SystemError("the notifying filter", "\(size) bytes is no program", errno: EINVAL)
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var got = 0
        while got < size {
            let n = bytes[got...].withUnsafeMutableBytes { pread(program, $0.baseAddress, $0.count, off_t(got)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SystemError("pread", "the notifying filter", errno: errno) }
            if n == 0 { throw SystemError("the notifying filter", "shorter than its size", errno: EIO) }
            got += n
        }
        let nnp = ap_set_no_new_privs()
        if nnp < 0 { throw SystemError("prctl(PR_SET_NO_NEW_PRIVS)", result: Int(nnp)) }
        let fd = bytes.withUnsafeBytes { ap_seccomp_load_listener($0.baseAddress, UInt32($0.count)) }
        if fd < 0 { throw SystemError("seccomp", "the notifying filter", result: Int(fd)) }
        return fd
    }

    /// For --check: the notifying filter compiles, and this kernel and
    /// libseccomp support user notification (API level 5 and up).
    public static func checkNotifying() throws(SystemError) {
        seccomp_release(try context(SyscallPolicy.reportedRules, notify: true))
        let level = seccomp_api_get()
        if level < 5 { throw SystemError("seccomp user notification", "API level \(level); needs Linux 5.0 and libseccomp 2.5", errno: ENOSYS) }
    }

    /// The number each policy call goes into the filter under, to name a
    /// notified call: the same resolution as the filter's.
    public static func numberTable(_ rules: [SyscallPolicy.Rule] = SyscallPolicy.reportedRules) throws(SystemError) -> [Int32: String] {
        var table: [Int32: String] = [:]
        for name in Set(rules.map(\.syscall)) {
            switch try resolution(name) {
            case .number(let nr), .raw(let nr): table[nr] = name
            case .absent: continue
            }
        }
        return table
    }

    /// The audit architecture value of the native ABI (seccomp_data.arch).
    public static var nativeAuditArch: UInt32 { seccomp_arch_native() }

    static func resolution(_ syscall: String) throws(SystemError) -> SyscallPolicy.Resolution {
        do {
            return try SyscallPolicy.resolve(syscall, libseccompNumber: seccomp_syscall_resolve_name(syscall),
                                             arch: nativeArchitecture)
        } catch {
            // Fail closed: a filter without one of the policy's calls is not the policy.
            throw SystemError("libseccomp cannot name policy syscall", "\(error.syscall) (update libseccomp)", errno: ENOSYS)
        }
    }

    /// A libseccomp context holding `rules`: each with its errno, or (`notify`)
    /// each as a notification for agentpen to answer.
    static func context(_ rules: [SyscallPolicy.Rule], notify: Bool) throws(SystemError) -> scmp_filter_ctx {
        guard let ctx = seccomp_init(UInt32(SCMP_ACT_ALLOW)) else { throw SystemError("seccomp_init", errno: ENOMEM) }
        do throws(SystemError) {
            // Foreign ABIs are not in the filter, so libseccomp applies the bad-arch action.
            let badArch = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, UInt32(SCMP_ACT_KILL_PROCESS))
            if badArch < 0 { throw SystemError("seccomp_attr_set", "ACT_BADARCH", result: Int(badArch)) }
            for rule in rules {
                let resolution = try resolution(rule.syscall)
                let action: UInt32
                switch rule.action { case .errno(let e): action = notify ? UInt32(SCMP_ACT_NOTIFY) : 0x0005_0000 | UInt32(e) }
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
        } catch {
            seccomp_release(ctx)
            throw error
        }
        return ctx
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
