import AgentpenPolicy
import ArgumentParser

/// agentpen's own subcommands: a first argument with one of these names is a
/// subcommand, never a program to run (`agentpen -- NAME` runs the program).
public enum Subcommand: String, CaseIterable, Sendable {
    case allow, apply, completions, config, `init`, review, selftest, suggest, trust, watch

    public static let reserved = allCases
    /// Those that do something today; the rest answer "not available yet".
    public var isAvailable: Bool {
        [.allow, .completions, .config, .trust, .`init`, .review, .apply, .watch, .suggest, .selftest].contains(self)
    }
}

/// The shells `agentpen completions` writes a script for.
public enum Shell: String, CaseIterable, Sendable, ExpressibleByArgument {
    case bash, zsh, fish
}

/// `agentpen completions bash|zsh|fish`: the script, generated from the grammar.
struct CompletionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "completions", abstract: Help.completionsAbstract, helpNames: [.long, .short])
    @Argument(help: "bash, zsh or fish") var shell: Shell
}

/// `agentpen selftest`: the escape cases against this host's sandbox. No arguments.
struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest", abstract: Help.selftestAbstract, helpNames: [.long, .short])
}

/// `agentpen config [OPTIONS] [COMMAND [ARGS...]]`: the effective
/// configuration of that run, each value with the file and key (or flag) it
/// came from. The same options as a run.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: Help.configAbstract, helpNames: [])
    @OptionGroup var arguments: RunArguments
    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp(Help.command, valueName: "COMMAND"))
    var command: [String] = []
}

/// `agentpen trust [-C DIR]` and `agentpen init [-C DIR]`: the project's `.agentpen.toml`.
struct ProjectFileArguments: ParsableArguments {
    @Option(name: [.customShort("C"), .long], parsing: .unconditional,
            help: ArgumentHelp(Help.project.argumentHelp, valueName: "DIR"), completion: .directory)
    var project: String?
}

struct TrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "trust", abstract: Help.trustAbstract, helpNames: [.long, .short])
    @OptionGroup var arguments: ProjectFileArguments
}

struct ReviewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "review", abstract: Help.reviewAbstract, helpNames: [.long, .short])
    @OptionGroup var arguments: ProjectFileArguments
}

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "apply", abstract: Help.applyAbstract, helpNames: [.long, .short])
    @OptionGroup var arguments: ProjectFileArguments
}

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: Help.initAbstract, helpNames: [.long, .short])
    @OptionGroup var arguments: ProjectFileArguments
}

/// `agentpen watch [--json] [--all | SESSION...]`: follow a session (the newest
/// by default), several, or every running one.
struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: Help.watchAbstract, helpNames: [.long, .short])
    @Flag(help: "stream the session's events as JSON lines (for scripts)") var json = false
    @Flag(help: "follow every running session, and each one that starts meanwhile, until none runs") var all = false
    @Argument(help: "session IDs (default: the newest); several are followed together") var sessions: [String] = []

    func validate() throws {
        if all && !sessions.isEmpty { throw ValidationError("--all follows every running session; name no session with it") }
    }
}

/// `agentpen suggest [SESSION]`: the flags and config lines a session's refusals call for.
struct SuggestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suggest", abstract: Help.suggestAbstract, helpNames: [.long, .short])
    @Argument(help: "a session ID (default: the newest)") var session: String?
}

/// `agentpen allow HOST [--once | --session | --save agent|project | --deny] [--session-id ID]`:
/// the decision about connections a `--ask` run holds for HOST.
struct AllowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allow", abstract: Help.allowAbstract, helpNames: [.long, .short])
    @Argument(help: "the host a held connection is for") var host: String
    @Flag(help: "this connection only (the default)") var once = false
    @Flag(help: "every connection to HOST for the rest of the session") var session = false
    @Option(help: ArgumentHelp("also for later runs: of this agent or in this project (saved in allowed.toml beside your config)",
                               valueName: "agent|project"), completion: .list(["agent", "project"]))
    var save: String?
    @Flag(help: "refuse the held connection") var deny = false
    @Option(name: .customLong("session-id"), help: ArgumentHelp("the session (default: the newest)", valueName: "ID"))
    var sessionID: String?
}

/// The tree the completion scripts are generated from: the run's options and
/// the subcommands (not COMMAND, so the first word offers the subcommands; nor
/// the helper entry points).
struct AgentpenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentpen",
        abstract: "Runs COMMAND confined.",
        subcommands: [CompletionsCommand.self] + Subcommand.reserved.filter { $0 != .completions }.map(reservedType),
        helpNames: [])
    @OptionGroup var arguments: RunArguments

    /// One command type per reserved name (ArgumentParser names commands by type):
    /// the real command where there is one.
    static func reservedType(_ s: Subcommand) -> ParsableCommand.Type {
        switch s {
        case .allow: AllowCommand.self
        case .apply: ApplyCommand.self
        case .completions: CompletionsCommand.self
        case .config: ConfigCommand.self
        case .`init`: InitCommand.self
        case .review: ReviewCommand.self
        case .selftest: SelftestCommand.self
        case .suggest: SuggestCommand.self
        case .trust: TrustCommand.self
        case .watch: WatchCommand.self
        }
    }
}

protocol ReservedName { static var name: Subcommand { get } }

/// A reserved word whose subcommand is not built yet. It takes any arguments
/// (so completions and help list it); `Invocation` answers "not available yet".
struct Reserved<N: ReservedName>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: N.name.rawValue, abstract: Help.reservedAbstract)
    }
    @Argument(parsing: .captureForPassthrough) var rest: [String] = []
}

extension Shell {
    /// The completion script for this shell. ArgumentParser offers a `help`
    /// subcommand in every tree with subcommands; agentpen has none (the first
    /// word `help` names a program), so that offer is taken out.
    public var completionScript: String {
        let kind: CompletionShell = switch self {
        case .bash: .bash
        case .zsh: .zsh
        case .fish: .fish
        }
        let script = AgentpenCommand.completionScript(for: kind)
        let lines = script.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line -> Substring? in
            switch self {
            case .bash:
                guard line.contains("compgen -W '"), line.contains(" help' -- ") else { return line }
                return Substring(line.split(separator: " help' -- ", maxSplits: 1).joined(separator: "' -- "))
            case .zsh:
                return line.contains("'help:Show subcommand help information.'") ? nil : line
            case .fish:
                return line.contains("-fa 'help' -d 'Show subcommand help information.'") ? nil : line
            }
        }
        return lines.joined(separator: "\n")
    }
}
