import CShim
import Glibc

/// Landlock write confinement: the calling thread (and what it execs) may
/// write only beneath the given paths. Applied by the single-threaded exec
/// helper inside the sandbox, after bubblewrap has set no_new_privs.
public enum Landlock {
    // Filesystem access rights (uapi linux/landlock.h), by the ABI that added them.
    static let writeFile: UInt64 = 1 << 1
    static let removeDir: UInt64 = 1 << 4
    static let removeFile: UInt64 = 1 << 5
    static let makeChar: UInt64 = 1 << 6
    static let makeDir: UInt64 = 1 << 7
    static let makeReg: UInt64 = 1 << 8
    static let makeSock: UInt64 = 1 << 9
    static let makeFifo: UInt64 = 1 << 10
    static let makeBlock: UInt64 = 1 << 11
    static let makeSym: UInt64 = 1 << 12
    static let refer: UInt64 = 1 << 13        // ABI 2
    static let truncate: UInt64 = 1 << 14     // ABI 3
    static let ioctlDev: UInt64 = 1 << 15     // ABI 5
    static let scopeAbstractUnixSocket: UInt64 = 1 << 0   // ABI 6
    static let scopeSignal: UInt64 = 1 << 1               // ABI 6
    /// Rights that make sense on a single file (the rest need a directory).
    static let fileRights: UInt64 = writeFile | truncate | ioctlDev

    /// The kernel's Landlock ABI version, or nil with the reason.
    public static func abi() -> Result<Int32, SystemError> {
        let v = ap_landlock_abi()
        return v > 0 ? .success(v) : .failure(SystemError("landlock_create_ruleset", "version", result: Int(v)))
    }

    /// Write rights handled at `abi`.
    public static func handledWrites(abi: Int32) -> UInt64 {
        var r = writeFile | removeDir | removeFile | makeChar | makeDir | makeReg | makeSock | makeFifo | makeBlock | makeSym
        if abi >= 2 { r |= refer }
        if abi >= 3 { r |= truncate }
        if abi >= 5 { r |= ioctlDev }
        return r
    }

    public struct Applied: Sendable {
        public var abi: Int32
        public var scoped: Bool
    }

    /// Restricts writes to `writable` (paths that do not exist are skipped).
    /// From ABI 6 also scopes abstract unix sockets and signals to the sandbox.
    public static func restrictWrites(to writable: [String]) throws(SystemError) -> Applied {
        let abi: Int32
        switch Self.abi() {
        case .success(let v): abi = v
        case .failure(let e): throw e
        }
        let handled = handledWrites(abi: abi)
        var attr = ap_landlock_ruleset_attr(handled_access_fs: handled, handled_access_net: 0, scoped: 0)
        var size = 8
        if abi >= 6 {
            attr.scoped = scopeAbstractUnixSocket | scopeSignal
            size = MemoryLayout<ap_landlock_ruleset_attr>.size
        }
        let ruleset = ap_landlock_create_ruleset(&attr, size)
        guard ruleset >= 0 else { throw SystemError("landlock_create_ruleset", result: Int(ruleset)) }
        let rules = Descriptor(ruleset)
        for path in writable {
            let fd = open(path, Int32(AP_O_PATH) | O_CLOEXEC)
            if fd < 0 { continue }
            let file = Descriptor(fd)
            var st = stat()
            fstat(file.raw, &st)
            let rights = (st.st_mode & S_IFMT) == S_IFDIR ? handled : handled & fileRights
            let rc = ap_landlock_add_path_rule(rules.raw, rights, file.raw)
            guard rc == 0 else { throw SystemError("landlock_add_rule", path, result: Int(rc)) }
        }
        let rc = ap_landlock_restrict_self(rules.raw)
        guard rc == 0 else { throw SystemError("landlock_restrict_self", result: Int(rc)) }
        return Applied(abi: abi, scoped: abi >= 6)
    }
}
