import AgentpenPolicy
import ArgumentParser

/// The options of `agentpen [OPTIONS] [--] [COMMAND [ARGS...]]`. Values
/// are taken as given (`.unconditional`: `--log -x` names the file "-x", as it
/// always did) and checked afterwards by `options(command:)`, whose messages name the flag.
struct RunArguments: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp(Help.agent.argumentHelp, valueName: "NAME"),
            completion: .list(Preset.builtinNames))
    var agent: String?
    @Option(name: [.customShort("C"), .long], parsing: .unconditional,
            help: ArgumentHelp(Help.project.argumentHelp, valueName: "DIR"), completion: .directory)
    var project: String?
    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp(Help.env.argumentHelp, valueName: "VAR"))
    var env: [String] = []
    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp(Help.mount.argumentHelp, valueName: "PATH"),
            completion: .file())
    var mount: [String] = []
    @Option(name: .customLong("mount-rw"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp(Help.mountRW.argumentHelp, valueName: "PATH"), completion: .file())
    var mountRW: [String] = []
    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp(Help.allow.argumentHelp, valueName: "HOST"))
    var allow: [String] = []
    @Option(name: .customLong("allow-private"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp(Help.allowPrivate.argumentHelp, valueName: "HOST"))
    var allowPrivate: [String] = []
    @Option(name: .customLong("allow-host-port"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp(Help.allowHostPort.argumentHelp, valueName: "PORT"))
    var allowHostPort: [String] = []
    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp(Help.publish.argumentHelp, valueName: "PORT"))
    var publish: [String] = []
    @Option(parsing: .unconditional, help: ArgumentHelp(Help.hop.argumentHelp, valueName: "HOP"),
            completion: .list(["direct", "pasta"]))
    var hop: String?
    @Flag(help: ArgumentHelp(Help.ask.argumentHelp))
    var ask = false
    @Flag(help: ArgumentHelp(Help.audit.argumentHelp))
    var audit = false
    @Flag(name: .customLong("allow-parent-git"), help: ArgumentHelp(Help.allowParentGit.argumentHelp))
    var allowParentGit = false
    @Flag(name: .customLong("ro-config"), help: ArgumentHelp(Help.roConfig.argumentHelp))
    var readOnlyConfig = false
    @Option(parsing: .unconditional, help: ArgumentHelp(Help.profile.argumentHelp, valueName: "NAME"))
    var profile: String?
    @Flag(help: ArgumentHelp(Help.quiet.argumentHelp))
    var quiet = false
    @Option(parsing: .unconditional, help: ArgumentHelp(Help.log.argumentHelp, valueName: "FILE"), completion: .file())
    var log: String?
    @Option(name: .customLong("tmpfs-size"), parsing: .unconditional,
            help: ArgumentHelp(Help.tmpfsSize.argumentHelp, valueName: "SIZE"))
    var tmpfsSize: String?
    @Option(name: .customLong("memory-max"), parsing: .unconditional,
            help: ArgumentHelp(Help.memoryMax.argumentHelp, valueName: "SIZE"))
    var memoryMax: String?
    @Option(parsing: .unconditional, help: ArgumentHelp(Help.cpus.argumentHelp, valueName: "N"))
    var cpus: String?
    @Option(name: .customLong("tasks-max"), parsing: .unconditional,
            help: ArgumentHelp(Help.tasksMax.argumentHelp, valueName: "N"))
    var tasksMax: String?
    @Flag(name: .customLong("no-cgroup"), help: ArgumentHelp(Help.noCgroup.argumentHelp))
    var noCgroup = false
    @Flag(help: ArgumentHelp(Help.check.argumentHelp))
    var check = false
    @Flag(name: .customLong("dry-run"), help: ArgumentHelp(Help.dryRun.argumentHelp))
    var dryRun = false
    @Flag(help: ArgumentHelp(Help.version.argumentHelp))
    var version = false
    /// Our own flag, not the library's: a `--help` after COMMAND is COMMAND's.
    @Flag(name: [.short, .long], help: ArgumentHelp(Help.help.argumentHelp))
    var help = false
    /// What was given, as plain values.
    var values: RunValues {
        RunValues(agent: agent, project: project, env: env, mount: mount, mountRW: mountRW, allow: allow,
                  allowPrivate: allowPrivate, allowHostPort: allowHostPort, publish: publish, hop: hop, ask: ask,
                  audit: audit, allowParentGit: allowParentGit, readOnlyConfig: readOnlyConfig, profile: profile,
                  quiet: quiet, log: log, tmpfsSize: tmpfsSize, memoryMax: memoryMax, cpus: cpus, tasksMax: tasksMax,
                  noCgroup: noCgroup, check: check, dryRun: dryRun, version: version, help: help)
    }

    func options(command: [String]) throws(Options.UsageError) -> Options { try values.options(command: command) }
}

/// RunArguments' values as plain fields (no property wrappers): what
/// `options(command:)` checks, and what `quickParse` fills without the library.
struct RunValues: Equatable {
    var agent: String?
    var project: String?
    var env: [String] = []
    var mount: [String] = []
    var mountRW: [String] = []
    var allow: [String] = []
    var allowPrivate: [String] = []
    var allowHostPort: [String] = []
    var publish: [String] = []
    var hop: String?
    var ask = false
    var audit = false
    var allowParentGit = false
    var readOnlyConfig = false
    var profile: String?
    var quiet = false
    var log: String?
    var tmpfsSize: String?
    var memoryMax: String?
    var cpus: String?
    var tasksMax: String?
    var noCgroup = false
    var check = false
    var dryRun = false
    var version = false
    var help = false

    /// The plain value the planner consumes, or what was wrong, naming the flag.
    /// `command` is everything from the first word that was not one of ours.
    func options(command: [String]) throws(Options.UsageError) -> Options {
        func usage(_ m: String) -> Options.UsageError { Options.UsageError(message: m) }
        func host(_ text: String, privateOK: Bool) throws(Options.UsageError) -> HostPattern {
            do { return try HostPattern(text, allowsPrivateUpstream: privateOK) }
            catch { throw usage("refused host \(error.description)") }
        }
        var o = Options()
        // The first word that is not an option of ours starts COMMAND; `--` is
        // dropped, a word that looks like an option but is not ours is refused.
        if let first = command.first {
            if first == "--" { o.command = Array(command.dropFirst()) }
            else if first.hasPrefix("-") && first != "-" { throw usage("unknown option \(first)") }
            else { o.command = command }
        }
        o.agent = agent
        o.project = project
        for name in env {
            guard EnvPolicy.isValidName(name) else { throw usage("--env: bad variable name \(name.debugDescription)") }
            o.env.append(name)
        }
        o.mounts = mount
        o.mountsRW = mountRW
        for h in allow { o.allow.append(try host(h, privateOK: false)) }
        for h in allowPrivate { o.allow.append(try host(h, privateOK: true)) }
        func port(_ flag: String, _ v: String) throws(Options.UsageError) -> UInt16 {
            guard !v.isEmpty, v.count <= 5, v.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let p = UInt16(v), p > 0 else {
                throw usage("\(flag) \(v.debugDescription): a port number from 1 to 65535")
            }
            return p
        }
        for v in allowHostPort { let p = try port("--allow-host-port", v); if !o.hostPorts.contains(p) { o.hostPorts.append(p) } }
        for v in publish { let p = try port("--publish", v); if !o.publish.contains(p) { o.publish.append(p) } }
        if let h = hop {
            guard let parsed = NetworkPlan.Hop(option: h) else { throw usage("--hop \(h.debugDescription): direct or pasta") }
            o.hop = parsed
        }
        if ask && audit { throw usage("--ask and --audit cannot be combined (--audit lets every name through)") }
        o.ask = ask
        o.audit = audit
        o.allowParentGit = allowParentGit
        o.readOnlyConfig = readOnlyConfig
        o.profile = profile
        o.logPath = log
        o.quiet = quiet
        if let v = tmpfsSize {
            do { o.tmpfsSize = try TmpfsBudget.parse(v) } catch { throw usage(error.message) }
        }
        // --no-cgroup turns off every limit not given explicitly: a limit named
        // on the command line is what the user asked for, wherever it stands.
        if noCgroup {
            o.cgroupLimits.memory = .none; o.cgroupLimits.milliCPUs = .none; o.cgroupLimits.tasks = .none
        }
        if let v = memoryMax {
            if v == "none" { o.cgroupLimits.memory = .none } else {
                do { o.cgroupLimits.memory = .set(try TmpfsBudget.parse(v, flag: "--memory-max")) }
                catch { throw usage(error.message) }
            }
        }
        if let v = cpus {
            if v == "none" { o.cgroupLimits.milliCPUs = .none }
            else if let m = CgroupPlan.parseCPUs(v) { o.cgroupLimits.milliCPUs = .set(m) }
            else { throw usage("--cpus \(v.debugDescription): a number of CPUs such as 2 or 1.5, or none") }
        }
        if let v = tasksMax {
            if v == "none" { o.cgroupLimits.tasks = .none }
            else if let n = UInt64(v), n > 0, n < 1 << 22 { o.cgroupLimits.tasks = .set(n) }
            else { throw usage("--tasks-max \(v.debugDescription): a number of processes and threads, or none") }
        }
        // --help wins over everything, then --version; --check and --dry-run exclude each other.
        if help { o.mode = .help }
        else if version { o.mode = .version }
        else if check && dryRun { throw usage("--check and --dry-run cannot be combined") }
        else if check { o.mode = .check }
        else if dryRun { o.mode = .dryRun }
        return o
    }
}

/// The run itself, parsed on its own: no subcommand is looked for here (the
/// reserved words count only as the first argument, decided in `Invocation`),
/// and the library's own --help is off (ours is a flag like the others).
/// `_superCommandName` turns off the library's `--generate-completion-script`,
/// which it would otherwise take from anywhere in argv, COMMAND's arguments too
/// (`agentpen tool --generate-completion-script` must reach the tool).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agentpen", _superCommandName: "agentpen", helpNames: [])
    @OptionGroup var arguments: RunArguments
    /// Everything from the first word that is not one of ours: COMMAND and its
    /// arguments (a leading `--` included, an unknown option too: `options(command:)`
    /// sorts them). Not in the completion tree, where the first word offers the subcommands.
    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp(Help.command, valueName: "COMMAND"))
    var command: [String] = []

    func options() throws(Options.UsageError) -> Options { try arguments.options(command: command) }
}
