import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy

/// `--dry-run`: the whole plan, every argv, mount, variable and rule, nothing started.
enum DryRun {
    static func quote(_ s: String) -> String {
        let safe = s.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:@%+,".contains($0) }
        return safe && !s.isEmpty ? s : "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    /// Every value below comes through TerminalText's interpolation: project
    /// paths, the command, variables and generated files are escaped, so none
    /// can carry a control sequence or a line of its own to the terminal.
    static func print(_ p: Prepared) {
        var plan = p.plan
        // The session's binds, as a run adds them once its session exists
        // (main.swift): its view, then the decoys at the secret paths left free.
        let session = Session.plannedPath(p)
        var decoys: [SecretDecoys.Decoy] = []
        if let session {
            plan.addSessionView(hostDir: Session.viewPath(session))
            decoys = SecretDecoys.plan(plan.bwrap, home: p.facts.home)
            plan.addSecretDecoys(decoys, hostDir: Session.decoyPath(session))
        }
        var out: TerminalText = "# agentpen dry run: nothing was started\n"
        out += "project: \(p.project)\n"
        out += "command: \(plan.command.map(quote).joined(separator: " "))\n"
        out += "preset: \(p.preset?.name ?? "(none)")\n"
        out += "\n## configuration (flags > trusted project > profile > global > presets)\n"
        for line in p.config.report { out += "  \(line)\n" }
        out += "\n## what is visible\n"
        for n in plan.notes { out += "  \(n)\n" }
        for prep in plan.createBeforeRun { out += "  created before the run: \(prep)\n" }
        if let session { out += "  session: \(session) (a run's ID is its own; none where the sandbox could see it)\n" }
        if !decoys.isEmpty {
            out += "  empty read-only decoys (files of the session; each open is a secret-read event): "
                + "\(decoys.map(\.path).joined(separator: " "))\n"
        }
        out += "\n## host programs (system directories or AGENTPEN_*, never PATH)\n"
        for program in HostPrograms.Program.allCases { out += "  \(p.programs.describe(program))\n" }
        out += "  environment of the namespace helper, pasta and nft: "
            + HostPrograms.environment.map { "\($0.name)=\($0.value)" }.joined(separator: " ") + " (bubblewrap gets the one below)\n"
        out += "\n## network\n"
        out += Network.describe(p).map { "  \($0)\n" }.joined()
        out += "\n## environment (everything else is removed)\n"
        for v in plan.env { out += "  \(v.name)=\(EnvPolicy.displayValue(name: v.name, value: v.value))\n" }
        out += "\n## generated files\n"
        for f in plan.dataFiles {
            out += "  \(f.path) (fd \(f.fd)):\n"
            for line in f.content.split(separator: "\n") { out += "    \(line)\n" }
        }
        for c in plan.fileCopies {
            out += "  \(c.path) (fd \(c.fd)): a copy of the host's \(c.source), read-only\n"
        }
        out += "\n## seccomp (fd \(plan.seccompFD)); every other syscall allowed, foreign architectures killed\n"
        out += "## (bubblewrap loads the first rules; the exec helper the rest, each call answered and reported by agentpen, fd \(plan.syscallNotifyFD))\n"
        for r in SyscallPolicy.rules {
            let cond = r.args.map(\.description)
            let action: String
            switch r.action { case .errno(let e): action = e == SyscallPolicy.EPERM ? "EPERM" : e == SyscallPolicy.ENOSYS ? "ENOSYS" : e == SyscallPolicy.EAFNOSUPPORT ? "EAFNOSUPPORT" : "errno \(e)" }
            out += "  \(r.syscall)\(cond.isEmpty ? "" : " if " + cond.joined(separator: " and ")) -> \(action)\n"
        }
        out += "\n## Landlock: writes only beneath\n"
        for w in plan.writable { out += "  \(w)\n" }
        out += "\n## bubblewrap\n"
        out += "  \(quote(p.programs.path(.bwrap) ?? "bwrap")) --json-status-fd \(SandboxPlan.bwrapStatusFD) \\\n"
        for option in BwrapArgument.options(plan.bwrapArguments) {
            out += "    \(option.map(quote).joined(separator: " ")) \\\n"
        }
        out += "    -- \(plan.innerCommand.map(quote).joined(separator: " "))\n"
        out.write(to: 1)
    }
}
