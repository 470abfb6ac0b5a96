import AgentpenKernel
import AgentpenPolicy
import Glibc

/// --check rows for issue 7's resource bounds and filter facts.
enum Resources {
    /// bubblewrap's `--size` (each tmpfs bounded) is required: the plan always
    /// passes it, so a bubblewrap without it fails to start the sandbox (fail
    /// closed) and this row says why. bubblewrap 0.8, which the plan already
    /// needs for --disable-userns, has it.
    static func checkRows(bwrap: String?) -> [Check.Row] {
        var rows: [Check.Row] = []
        if let bwrap {
            let help = Spawn.run([bwrap, "--help"]).output
            let memory = Host.memoryTotal
            if help.contains("--size") {
                let detail: String
                if let total = try? TmpfsBudget.total(TmpfsBudget.defaultRequest, memoryTotal: memory) {
                    detail = "each tmpfs bounded: \(TmpfsBudget.describe(total)) in all by default (25% of \(TmpfsBudget.describe(memory)) RAM; --tmpfs-size)"
                } else {
                    detail = "each tmpfs bounded (--tmpfs-size)"
                }
                rows.append(Check.Row(layer: "tmpfs bounds", state: .ok, detail: detail))
            } else {
                rows.append(Check.Row(layer: "tmpfs bounds", state: .missing,
                                      detail: "\(bwrap) has no --size: tmpfs mounts cannot be bounded, runs are refused",
                                      fix: "install bubblewrap 0.8 or newer"))
            }
        }
        rows.append(cgroupRow(CgroupPlan.decide(default: Cgroup.facts(uid: getuid()), uid: getuid(),
                                                 memoryTotal: Host.memoryTotal)))
        let raw = SeccompFilter.rawNumbered
        if !raw.isEmpty {
            rows.append(Check.Row(layer: "seccomp numbers", state: .ok,
                                  detail: "libseccomp \(SeccompFilter.libraryVersion) cannot name \(raw.joined(separator: ", ")): filtered by raw number"))
        }
        return rows
    }

    /// Whether the default cgroup limits apply on this host, and why not.
    static func cgroupRow(_ decision: CgroupPlan.Decision) -> Check.Row {
        switch decision {
        case .apply(let dir, let writes, let skipped):
            return Check.Row(layer: "cgroup limits", state: .ok,
                             detail: "applied in \(dir): " + writes.map { "\($0.file) \($0.value)" }.joined(separator: ", ")
                                 + skipped.map { "; not: \($0)" }.joined())
        case .notApplied(let why):
            return Check.Row(layer: "cgroup limits", state: .degraded, detail: "not applied: \(why)",
                             fix: "run agentpen in a systemd user session with cgroup v2 (a desktop terminal), or under systemd-run --user --scope")
        }
    }
}
