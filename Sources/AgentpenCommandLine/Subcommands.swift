import AgentpenPolicy
import ArgumentParser

/// agentpen's own subcommands: a first argument with one of these names is a
/// subcommand, never a program to run (`agentpen -- NAME` runs the program).
public enum Subcommand: String, CaseIterable, Sendable {
    case allow, apply, completions, config, `init`, review, selftest, suggest, trust, watch

    public static let reserved = allCases
    /// Those that do something today; the rest answer "not available yet".
    public var isAvailable: Bool { self == .completions || self == .selftest }
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
        case .allow: Reserved<AllowName>.self
        case .apply: Reserved<ApplyName>.self
        case .completions: CompletionsCommand.self
        case .config: Reserved<ConfigName>.self
        case .`init`: Reserved<InitName>.self
        case .review: Reserved<ReviewName>.self
        case .selftest: SelftestCommand.self
        case .suggest: Reserved<SuggestName>.self
        case .trust: Reserved<TrustName>.self
        case .watch: Reserved<WatchName>.self
        }
    }
}

protocol ReservedName { static var name: Subcommand { get } }
enum AllowName: ReservedName { static let name = Subcommand.allow }
enum ApplyName: ReservedName { static let name = Subcommand.apply }
enum ConfigName: ReservedName { static let name = Subcommand.config }
enum InitName: ReservedName { static let name = Subcommand.`init` }
enum ReviewName: ReservedName { static let name = Subcommand.review }
enum SuggestName: ReservedName { static let name = Subcommand.suggest }
enum TrustName: ReservedName { static let name = Subcommand.trust }
enum WatchName: ReservedName { static let name = Subcommand.watch }

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
