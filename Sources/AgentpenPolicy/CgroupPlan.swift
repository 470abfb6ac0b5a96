/// Memory, CPU and task limits for the run, where the user has a delegated
/// cgroup v2 subtree (a systemd user session delegates user@UID.service and
/// everything below it to the user). agentpen creates a child cgroup in the
/// nearest delegated ancestor of its own cgroup, writes the limits there, and
/// the exec helper moves itself (and so the agent and all it starts) into it
/// through a descriptor of the child's cgroup.procs opened on the host. No
/// program is run for this (no systemd-run): a few writes, well under 1 ms.
public enum CgroupPlan {
    /// A limit as asked on the command line.
    public enum Limit<Value: Sendable & Equatable>: Sendable, Equatable {
        case `default`, none, set(Value)
    }

    public struct Limits: Sendable, Equatable {
        /// memory.max; default 75% of RAM (the desktop keeps a quarter).
        public var memory: Limit<TmpfsBudget.Request> = .default
        /// cpu.max in thousandths of a CPU; default none (only cpu.weight 50:
        /// under contention the agent yields to the desktop, idle CPUs are its).
        public var milliCPUs: Limit<UInt64> = .default
        /// pids.max; default 4096 (the exec helper's RLIMIT_NPROC, per run).
        public var tasks: Limit<UInt64> = .default
        public init() {}

        var anyExplicit: Bool { memory.isSet || milliCPUs.isSet || tasks.isSet }
        var allNone: Bool { memory == .none && milliCPUs == .none && tasks == .none }
    }

    public static let defaultMemoryPercent: UInt64 = 75
    public static let defaultTasks: UInt64 = 4096
    public static let cpuWeight = "50"
    static let cpuPeriod: UInt64 = 100_000

    /// What the kernel edge found, for the decision (the seam for tests).
    public struct Facts: Sendable, Equatable {
        /// Where cgroup2 is mounted, normally /sys/fs/cgroup.
        public var mountPoint: String
        /// Whether `mountPoint` is the unified cgroup v2 hierarchy (not v1 or hybrid).
        public var unified: Bool
        /// This process's cgroup (the "0::" line of /proc/self/cgroup), nil if none.
        public var ownPath: String?
        /// The ancestors of `ownPath`, its parent first, up to the hierarchy root.
        public var ancestors: [Level]
        public var pid: Int32

        public struct Level: Sendable, Equatable {
            /// Relative to the mount point, e.g. /user.slice/user-1000.slice/user@1000.service.
            public var path: String
            /// The directory and its cgroup.procs belong to the user and are writable.
            public var delegated: Bool
            /// Controllers enabled for its children (cgroup.subtree_control).
            public var subtreeControl: [String]
            public init(path: String, delegated: Bool, subtreeControl: [String]) {
                self.path = path; self.delegated = delegated; self.subtreeControl = subtreeControl
            }
        }

        public init(mountPoint: String, unified: Bool, ownPath: String?, ancestors: [Level], pid: Int32) {
            self.mountPoint = mountPoint; self.unified = unified; self.ownPath = ownPath
            self.ancestors = ancestors; self.pid = pid
        }
    }

    public struct Write: Sendable, Equatable {
        public var file: String
        public var value: String
        public init(file: String, value: String) { self.file = file; self.value = value }
    }

    public enum Decision: Sendable, Equatable {
        /// Create `directory` (absolute), write `writes` into it; `skipped` says
        /// which defaults could not apply and why.
        case apply(directory: String, writes: [Write], skipped: [String])
        case notApplied(String)
    }

    public struct RefusedLimit: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The decision for `limits` on a host described by `facts` (nil: no
    /// cgroup2 at all). An explicit limit that cannot be applied is refused;
    /// defaults that cannot apply are only reported.
    public static func decide(_ limits: Limits, facts: Facts?, uid: UInt32,
                              memoryTotal: UInt64) throws(RefusedLimit) -> Decision {
        func notApplied(_ why: String) throws(RefusedLimit) -> Decision {
            if limits.anyExplicit { throw RefusedLimit(message: "cannot apply the cgroup limits asked for: \(why)") }
            return .notApplied(why)
        }
        if limits.allNone { return .notApplied("no limits asked for (all set to none)") }
        guard let facts, facts.unified else {
            return try notApplied("no unified cgroup v2 hierarchy at \(facts?.mountPoint ?? "/sys/fs/cgroup") (cgroup v1 or a hybrid layout)")
        }
        if uid == 0 {
            return try notApplied("running as root: agentpen creates no cgroups in the system's own tree; run it under a delegated scope of a user session")
        }
        guard let own = facts.ownPath else { return try notApplied("this process is in no cgroup v2") }
        // The nearest delegated ancestor with controllers for its children. The
        // walk stops at the first ancestor that is not ours: moving a process
        // needs write access to the common ancestor of source and destination.
        var chosen: Facts.Level?
        for level in facts.ancestors {
            guard level.delegated else { break }
            if !level.subtreeControl.filter({ ["memory", "pids", "cpu"].contains($0) }).isEmpty { chosen = level; break }
        }
        guard let parent = chosen else {
            let delegated = facts.ancestors.prefix { $0.delegated }
            if delegated.isEmpty {
                return try notApplied("no delegated cgroup: \(own) and its parents are not yours (a systemd user session delegates user@\(uid).service; start agentpen from a desktop terminal or under `systemd-run --user --scope`)")
            }
            return try notApplied("the delegated cgroup \(delegated.last!.path) enables none of memory, pids, cpu for its children")
        }
        let enabled = Set(parent.subtreeControl)
        var writes: [Write] = []
        var skipped: [String] = []
        func missing(_ controller: String, _ explicit: Bool) throws(RefusedLimit) {
            let why = "the \(controller) controller is not enabled in \(parent.path)"
            if explicit { throw RefusedLimit(message: "cannot apply the \(controller) limit asked for: \(why)") }
            skipped.append(why)
        }
        switch limits.memory {
        case .none: break
        case .default, .set:
            if !enabled.contains("memory") { try missing("memory", limits.memory.isSet); break }
            if case .set(let request) = limits.memory {
                do { writes.append(Write(file: "memory.max", value: String(try TmpfsBudget.total(request, memoryTotal: memoryTotal, flag: "--memory-max")))) }
                catch { throw RefusedLimit(message: error.message) }
            } else if memoryTotal > 0 {
                writes.append(Write(file: "memory.max", value: String(memoryTotal / 100 * defaultMemoryPercent)))
            } else {
                skipped.append("memory: the machine's memory is unknown")
            }
        }
        switch limits.tasks {
        case .none: break
        case .default, .set:
            if !enabled.contains("pids") { try missing("pids", limits.tasks.isSet); break }
            if case .set(let n) = limits.tasks { writes.append(Write(file: "pids.max", value: String(n))) }
            else { writes.append(Write(file: "pids.max", value: String(defaultTasks))) }
        }
        switch limits.milliCPUs {
        case .none: break
        case .default, .set:
            if !enabled.contains("cpu") { try missing("cpu", limits.milliCPUs.isSet); break }
            writes.append(Write(file: "cpu.weight", value: cpuWeight))
            if case .set(let m) = limits.milliCPUs {
                writes.append(Write(file: "cpu.max", value: "\(m * cpuPeriod / 1000) \(cpuPeriod)"))
            }
        }
        if writes.isEmpty { return try notApplied(skipped.joined(separator: "; ")) }
        let directory = Paths.normalize(facts.mountPoint + "/" + parent.path + "/agentpen-\(facts.pid)")
        return .apply(directory: directory, writes: writes, skipped: skipped)
    }

    /// The decision for the default limits (for --check); never throws.
    public static func decide(default facts: Facts?, uid: UInt32, memoryTotal: UInt64) -> Decision {
        (try? decide(Limits(), facts: facts, uid: uid, memoryTotal: memoryTotal)) ?? .notApplied("internal")
    }

    /// `--cpus 1.5` → 1500; whole or up to three decimals, above zero.
    public static func parseCPUs(_ text: String) -> UInt64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = UInt64(parts[0]), whole < 1 << 20 else { return nil }
        var milli = whole * 1000
        if parts.count == 2 {
            guard (1...3).contains(parts[1].count), let frac = UInt64(parts[1]) else { return nil }
            milli += frac * [100, 10, 1][parts[1].count - 1]
        }
        return milli > 0 ? milli : nil
    }
}

extension CgroupPlan.Limit {
    var isSet: Bool { if case .set = self { return true } else { return false } }
}
