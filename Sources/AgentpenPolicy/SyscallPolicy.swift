/// The seccomp policy as data: which syscalls fail and how. The kernel edge
/// turns this into a libseccomp filter by syscall name, so the same policy
/// holds on x86_64 and aarch64. A name libseccomp is too old to know goes in by
/// its raw number from `rawNumbers`; one that cannot go in at all stops the
/// run (`resolve`): a policy call is never silently left out.
public enum SyscallPolicy {
    public enum Action: Sendable, Equatable {
        case errno(Int32)
    }

    /// A condition on one argument: `(arg & mask) == value`, or for the other
    /// comparisons the whole 64-bit argument against `value` (mask unused).
    public struct ArgMatch: Sendable, Equatable, CustomStringConvertible {
        public enum Comparison: Sendable, Equatable { case maskedEqual, notEqual, greaterOrEqual }
        public var index: UInt32
        public var mask: UInt64
        public var value: UInt64
        public var comparison: Comparison = .maskedEqual

        public init(index: UInt32, mask: UInt64, value: UInt64) {
            self.index = index; self.mask = mask; self.value = value
        }
        public init(index: UInt32, _ comparison: Comparison, _ value: UInt64) {
            self.index = index; self.mask = UInt64.max; self.value = value; self.comparison = comparison
        }

        public var description: String {
            switch comparison {
            case .maskedEqual: return "arg\(index) & 0x\(String(mask, radix: 16)) == 0x\(String(value, radix: 16))"
            case .notEqual: return "arg\(index) != 0x\(String(value, radix: 16))"
            case .greaterOrEqual: return "arg\(index) >= 0x\(String(value, radix: 16))"
            }
        }
    }

    public struct Rule: Sendable, Equatable {
        public var syscall: String
        public var action: Action
        /// All must hold; empty means always.
        public var args: [ArgMatch] = []
    }

    public static let EPERM: Int32 = 1
    public static let ENOSYS: Int32 = 38
    public static let EAFNOSUPPORT: Int32 = 97

    /// Always refused with EPERM.
    public static let denied: [String] = [
        // process inspection and injection
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
        // kernel attack surface
        "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
        "keyctl", "add_key", "request_key",
        // the whole mount API
        "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
        "fsmount", "fspick", "mount_setattr", "open_tree_attr",
        // mount enumeration (6.8): the layout of the sandbox is nobody's business,
        // and these are the newest, least exercised parts of the mount code
        "listmount", "statmount",
        // namespace entry
        "setns",
        // the machine itself
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
        "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
        "lookup_dcookie", "vhangup", "nfsservctl", "uselib"
    ]

    /// CLONE_NEW* bits: unshare or clone with any of them fails with EPERM.
    public static let namespaceFlags: [UInt64] = [
        0x0002_0000, // CLONE_NEWNS
        0x0200_0000, // CLONE_NEWCGROUP
        0x0400_0000, // CLONE_NEWUTS
        0x0800_0000, // CLONE_NEWIPC
        0x1000_0000, // CLONE_NEWUSER
        0x2000_0000, // CLONE_NEWPID
        0x4000_0000, // CLONE_NEWNET
        0x0000_0080, // CLONE_NEWTIME
    ]

    // Not denied, on purpose (6.1–6.18 additions): mseal only restricts the
    // caller's own mappings (hardened runtimes use it; refusing it would break
    // them and protect nothing); the *xattrat calls, file_getattr/file_setattr,
    // cachestat, fchmodat2, futex_waitv and map_shadow_stack act on what the
    // caller can already reach through older calls; lsm_*_self_attr change only
    // the caller's own LSM label, which the LSM itself polices.

    /// Numbers of policy calls newer than some libseccomp that is still
    /// shipped (2.5.4 knows none of these), per architecture. Since 5.1 every
    /// architecture takes new calls from the same generic table
    /// (include/uapi/asm-generic/unistd.h, arch/x86/entry/syscalls/syscall_64.tbl),
    /// so x86_64 and aarch64 agree; the table keeps them apart anyway so that
    /// a future divergence is a one-line change.
    public static let rawNumbers: [String: [Architecture: Int32]] = [
        "statmount": [.x86_64: 457, .aarch64: 457],       // 6.8
        "listmount": [.x86_64: 458, .aarch64: 458],       // 6.8
        "open_tree_attr": [.x86_64: 467, .aarch64: 467],  // 6.15
    ]

    public enum Architecture: Sendable, Hashable { case x86_64, aarch64 }

    /// How one policy call goes into the filter.
    public enum Resolution: Sendable, Equatable {
        /// libseccomp named it: add it by this number.
        case number(Int32)
        /// libseccomp could not name it: add this raw number exactly.
        case raw(Int32)
        /// libseccomp knows the call but this architecture does not have it
        /// (a negative placeholder such as __PNR_stime): nothing to refuse.
        case absent
    }

    public struct UnresolvableSyscall: Error, Equatable, CustomStringConvertible {
        public var syscall: String
        public var description: String {
            "seccomp: libseccomp cannot name the policy syscall \(syscall) and agentpen has no number for it on this architecture; refusing to run with a filter that leaves it out (update libseccomp)"
        }
    }

    /// Decides how `syscall` enters the filter from what libseccomp answered
    /// (`seccomp_syscall_resolve_name`: the number, -1 for unknown, below -1
    /// for a call this architecture lacks). Nil `arch`: not one we have numbers for.
    public static func resolve(_ syscall: String, libseccompNumber: Int32,
                               arch: Architecture?) throws(UnresolvableSyscall) -> Resolution {
        if libseccompNumber >= 0 { return .number(libseccompNumber) }
        if libseccompNumber < -1 { return .absent }
        if let arch, let nr = rawNumbers[syscall]?[arch] { return .raw(nr) }
        throw UnresolvableSyscall(syscall: syscall)
    }

    static let TIOCSTI: UInt64 = 0x5412
    static let TIOCLINUX: UInt64 = 0x541C
    /// Attaching a line discipline loads and exercises rarely used kernel code
    /// (n_gsm, n_hdlc, slcan …), a steady source of privilege-escalation bugs.
    static let TIOCSETD: UInt64 = 0x5423

    /// Socket families the agent may create. Everything else (AF_PACKET,
    /// AF_VSOCK, which no network namespace separates and which reaches the
    /// hypervisor, AF_BLUETOOTH, AF_ALG, …) is refused.
    public static let AF_UNIX: UInt64 = 1, AF_INET: UInt64 = 2, AF_INET6: UInt64 = 10, AF_NETLINK: UInt64 = 16
    public static let allowedFamilies: [UInt64] = [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK]
    /// AF_MAX of Linux 6.18 (include/linux/socket.h: AF_MCTP 45 is the last,
    /// unchanged since 5.15). A family added later is still refused by the
    /// ">= AF_MAX" rule.
    public static let AF_MAX: UInt64 = 46
    /// The only netlink protocol: routes and addresses (getaddrinfo, `ip`).
    public static let NETLINK_ROUTE: UInt64 = 0

    /// Rules for socket(2) and socketpair(2), whose first argument is the
    /// family and third the protocol. libseccomp takes one comparison per
    /// argument per rule, so each refused family below AF_MAX is its own rule
    /// on the low 32 bits (the kernel reads an int), and one rule refuses
    /// every 64-bit value at or above AF_MAX, which also catches garbage in the
    /// upper half. The errno is the kernel's own for a family it was built
    /// without, so programs that probe (vsock, bluetooth) fall back quietly
    /// instead of treating a permission error as fatal.
    public static func socketRules(_ syscall: String) -> [Rule] {
        var r: [Rule] = []
        for family in 0..<AF_MAX where !allowedFamilies.contains(family) {
            r.append(Rule(syscall: syscall, action: .errno(EAFNOSUPPORT),
                          args: [ArgMatch(index: 0, mask: 0xFFFF_FFFF, value: family)]))
        }
        r.append(Rule(syscall: syscall, action: .errno(EAFNOSUPPORT), args: [ArgMatch(index: 0, .greaterOrEqual, AF_MAX)]))
        r.append(Rule(syscall: syscall, action: .errno(EAFNOSUPPORT),
                      args: [ArgMatch(index: 0, mask: 0xFFFF_FFFF, value: AF_NETLINK),
                             ArgMatch(index: 2, .notEqual, NETLINK_ROUTE)]))
        return r
    }

    /// The whole policy: bubblewrap's filter and the reported set.
    public static var rules: [Rule] { bubblewrapRules + reportedRules }

    /// The first filter, handed to bubblewrap (`--seccomp`): what must hold
    /// before the exec helper runs, and what is never reported. clone3 passes
    /// its flags in memory that seccomp cannot read: ENOSYS makes libc fall
    /// back to clone (glibc tries it for every thread, so it is not an event).
    /// Foreign ABIs are killed by this filter too (`SeccompFilter`).
    public static var bubblewrapRules: [Rule] {
        [Rule(syscall: "clone3", action: .errno(ENOSYS))]
    }

    public static let SECCOMP_SET_MODE_FILTER: UInt64 = 1
    public static let SECCOMP_FILTER_FLAG_NEW_LISTENER: UInt64 = 8

    /// The refused set, in the second filter the exec helper loads with a
    /// user-notification listener that agentpen answers with each rule's errno
    /// (`answer`). Stacked filters give a notification to the newest filter
    /// that notifies, and its listener may let the call through: so the
    /// sandbox may not create a listener of its own once this filter holds.
    public static var reportedRules: [Rule] {
        var r = denied.map { Rule(syscall: $0, action: .errno(EPERM)) }
        r.append(Rule(syscall: "seccomp", action: .errno(EPERM),
                      args: [ArgMatch(index: 0, mask: 0xFFFF_FFFF, value: SECCOMP_SET_MODE_FILTER),
                             ArgMatch(index: 1, mask: SECCOMP_FILTER_FLAG_NEW_LISTENER, value: SECCOMP_FILTER_FLAG_NEW_LISTENER)]))
        for flag in namespaceFlags {
            r.append(Rule(syscall: "unshare", action: .errno(EPERM), args: [ArgMatch(index: 0, mask: flag, value: flag)]))
            // clone(flags, ...) has flags first on every architecture we support.
            r.append(Rule(syscall: "clone", action: .errno(EPERM), args: [ArgMatch(index: 0, mask: flag, value: flag)]))
        }
        // Keystroke injection into the terminal the agent shares with the user, and line disciplines.
        for request in [TIOCSTI, TIOCLINUX, TIOCSETD] {
            r.append(Rule(syscall: "ioctl", action: .errno(EPERM),
                          args: [ArgMatch(index: 1, mask: 0xFFFF_FFFF, value: request)]))
        }
        r += socketRules("socket") + socketRules("socketpair")
        return r
    }

    /// Whether one argument condition holds for a call's arguments.
    public static func holds(_ m: ArgMatch, _ args: [UInt64]) -> Bool {
        guard Int(m.index) < args.count else { return false }
        let a = args[Int(m.index)]
        switch m.comparison {
        case .maskedEqual: return a & m.mask == m.value
        case .notEqual: return a != m.value
        case .greaterOrEqual: return a >= m.value
        }
    }

    /// The errno for a notified call (`syscall` as the filter's number table
    /// names it): the first reported rule for it whose conditions hold. A call
    /// no rule explains (the filter and this table disagree, or the arguments
    /// changed) is refused with EPERM: the answer never lets a call through.
    public static func answer(_ syscall: String, args: [UInt64], rules: [Rule] = reportedRules) -> Int32 {
        for rule in rules where rule.syscall == syscall && rule.args.allSatisfy({ holds($0, args) }) {
            switch rule.action { case .errno(let e): return e }
        }
        return EPERM
    }
}
