/// The seccomp policy as data: which syscalls fail and how. The kernel edge
/// turns this into a libseccomp filter by syscall name, so the same policy
/// holds on x86_64 and aarch64 (names a architecture lacks are skipped).
public enum SyscallPolicy {
    public enum Action: Sendable, Equatable {
        case errno(Int32)
    }

    /// A condition on one argument: `(arg & mask) == value`.
    public struct ArgMatch: Sendable, Equatable {
        public var index: UInt32
        public var mask: UInt64
        public var value: UInt64
    }

    public struct Rule: Sendable, Equatable {
        public var syscall: String
        public var action: Action
        /// All must hold; empty means always.
        public var args: [ArgMatch] = []
    }

    public static let EPERM: Int32 = 1
    public static let ENOSYS: Int32 = 38

    /// Always refused with EPERM.
    public static let denied: [String] = [
        // process inspection and injection
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
        // kernel attack surface
        "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
        "keyctl", "add_key", "request_key",
        // the whole mount API
        "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
        "fsmount", "fspick", "mount_setattr",
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

    static let TIOCSTI: UInt64 = 0x5412
    static let TIOCLINUX: UInt64 = 0x541C

    public static var rules: [Rule] {
        var r = denied.map { Rule(syscall: $0, action: .errno(EPERM)) }
        for flag in namespaceFlags {
            r.append(Rule(syscall: "unshare", action: .errno(EPERM), args: [ArgMatch(index: 0, mask: flag, value: flag)]))
            // clone(flags, ...) has flags first on every architecture we support.
            r.append(Rule(syscall: "clone", action: .errno(EPERM), args: [ArgMatch(index: 0, mask: flag, value: flag)]))
        }
        // Keystroke injection into the terminal the agent shares with the user.
        for request in [TIOCSTI, TIOCLINUX] {
            r.append(Rule(syscall: "ioctl", action: .errno(EPERM),
                          args: [ArgMatch(index: 1, mask: 0xFFFF_FFFF, value: request)]))
        }
        // clone3 passes flags in memory that seccomp cannot read: make libc fall back to clone.
        r.append(Rule(syscall: "clone3", action: .errno(ENOSYS)))
        return r
    }
}
