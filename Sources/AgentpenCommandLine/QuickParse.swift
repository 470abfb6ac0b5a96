/// The run's argv in its plain form, read without swift-argument-parser: each
/// option of ours as its own word followed by its value, flags alone, then
/// COMMAND from the first word that is not an option. That is how agents are
/// started (`agentpen claude`, `agentpen --allow example.com codex`), and the
/// library spent ~9 M instructions (~3 ms, a fifth of agentpen's own work before
/// the sandbox starts) building its definitions by reflection on every run.
///
/// Anything else is left to the library, which stays the one grammar: this
/// returns nil for an option it does not know (`--log=FILE`, `-Cdir`, a typo), a
/// value that starts with `-` or is missing, and an option or flag given twice,
/// so that every error message and every unusual form is the library's.
/// QuickParseTests hold the two to the same result on every argv they both take
/// and this table to the library's own list of names.
extension RunValues {
    enum Slot {
        case value(WritableKeyPath<RunValues, String?>)
        case list(WritableKeyPath<RunValues, [String]>)
        case flag(WritableKeyPath<RunValues, Bool>)
    }

    /// Every name of RunArguments, with where its value goes.
    static func slot(_ word: String) -> Slot? {
        switch word {
        case "--agent": .value(\.agent)
        case "-C", "--project": .value(\.project)
        case "--env": .list(\.env)
        case "--mount": .list(\.mount)
        case "--mount-rw": .list(\.mountRW)
        case "--allow": .list(\.allow)
        case "--allow-private": .list(\.allowPrivate)
        case "--allow-host-port": .list(\.allowHostPort)
        case "--publish": .list(\.publish)
        case "--hop": .value(\.hop)
        case "--ask": .flag(\.ask)
        case "--audit": .flag(\.audit)
        case "--allow-parent-git": .flag(\.allowParentGit)
        case "--ro-config": .flag(\.readOnlyConfig)
        case "--profile": .value(\.profile)
        case "--quiet": .flag(\.quiet)
        case "--log": .value(\.log)
        case "--tmpfs-size": .value(\.tmpfsSize)
        case "--memory-max": .value(\.memoryMax)
        case "--cpus": .value(\.cpus)
        case "--tasks-max": .value(\.tasksMax)
        case "--no-cgroup": .flag(\.noCgroup)
        case "--check": .flag(\.check)
        case "--dry-run": .flag(\.dryRun)
        case "--version": .flag(\.version)
        case "-h", "--help": .flag(\.help)
        default: nil
        }
    }

    /// The names `slot` knows, for the test that compares them with the library's.
    static let quickNames = ["--agent", "-C", "--project", "--env", "--mount", "--mount-rw", "--allow", "--allow-private",
                             "--allow-host-port", "--publish", "--hop", "--ask", "--audit", "--allow-parent-git",
                             "--ro-config", "--profile", "--quiet", "--log", "--tmpfs-size", "--memory-max", "--cpus",
                             "--tasks-max", "--no-cgroup", "--check", "--dry-run", "--version", "-h", "--help"]

    /// The values and COMMAND (a leading `--` kept, as the library keeps it), or
    /// nil: then the library parses.
    static func quickParse(_ args: [String]) -> (values: RunValues, command: [String])? {
        var v = RunValues()
        var i = 0
        while i < args.count {
            let word = args[i]
            guard word.hasPrefix("-"), word != "-" else { return (v, Array(args[i...])) }   // COMMAND
            if word == "--" { return (v, Array(args[i...])) }
            guard let slot = slot(word) else { return nil }
            i += 1
            switch slot {
            case .flag(let key):
                if v[keyPath: key] { return nil }
                v[keyPath: key] = true
            case .value(let key):
                guard i < args.count, !args[i].hasPrefix("-"), v[keyPath: key] == nil else { return nil }
                v[keyPath: key] = args[i]
                i += 1
            case .list(let key):
                guard i < args.count, !args[i].hasPrefix("-") else { return nil }
                v[keyPath: key].append(args[i])
                i += 1
            }
        }
        return (v, [])
    }
}
