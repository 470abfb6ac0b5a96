import AgentpenPolicy
import ArgumentParser

/// What this process was started to do, decided from argv alone. The executable
/// gives each case its own process setup (main.swift).
public enum Invocation: Sendable, Equatable {
    /// A run, --check, --dry-run, --help or --version (Options.mode says which).
    case agentpen(Options)
    /// `agentpen completions SHELL`.
    case completions(Shell)
    /// `agentpen selftest`.
    case selftest
    /// `agentpen config [OPTIONS] [COMMAND]`: the options of the run to describe.
    case config(Options)
    /// `agentpen trust [-C DIR]` (only `project` is set).
    case trust(Options)
    /// `agentpen init [-C DIR]` (only `project` is set).
    case initialize(Options)
    /// `agentpen review [-C DIR]`, `agentpen apply [-C DIR]`: the paranoid profile's copy.
    case review(Options)
    case apply(Options)
    /// Help of a subcommand (`agentpen completions --help`), printed as is.
    case subcommandHelp(String)
    /// `agentpen watch [--json] [--all | SESSION...]`.
    case watch(sessions: [String], all: Bool, json: Bool)
    /// `agentpen suggest [SESSION]`.
    case suggest(session: String?)
    /// `agentpen allow HOST [--once|--session|--save agent|project|--deny] [--session-id ID]`.
    case allow(ControlCommand, session: String?)
    /// A reserved subcommand not built yet: "not available yet", exit 2.
    case notAvailable(Subcommand)
    /// The internal entry points.
    case exec(ExecArguments)
    case netns(NetArguments)
    case probe([String])
    /// `agentpen __manual`: agentpen(1) as roff, for `make install`.
    case manual

    public struct Failure: Error, Equatable, CustomStringConvertible {
        public enum Kind: Sendable, Equatable {
            /// The user's command line is wrong: exit 2, with the usage.
            case usage
            /// An internal entry point got arguments agentpen did not write: exit 125.
            case helper
        }
        public var kind: Kind
        public var message: String
        /// Printed after the message: the whole --help for a run's usage error.
        public var usage: String?
        public init(kind: Kind, message: String, usage: String? = nil) {
            self.kind = kind; self.message = message; self.usage = usage
        }
        public var description: String { message }
        public var exitStatus: Int32 { kind == .usage ? 2 : 125 }
    }

    /// Parses argv without the program name. A reserved word is a subcommand
    /// only as the very first argument; after an option, a `--` or a COMMAND it
    /// is a program name like any other.
    public static func parse(_ args: [String]) throws(Failure) -> Invocation {
        if let s = args.first.flatMap(Subcommand.init(rawValue:)) {
            return try subcommand(s, Array(args.dropFirst()))
        }
        switch args.first {
        case "__exec"?:
            // Hand-parsed (HelperArgv): agentpen wrote these; anything else is 125.
            do throws(HelperArgv.Failure) { return .exec(try ExecArguments.parse(Array(args.dropFirst()))) }
            catch { throw Failure(kind: .helper, message: "internal: bad helper arguments: \(error.message)") }
        case "__netns"?:
            do throws(HelperArgv.Failure) { return .netns(try NetArguments.parse(Array(args.dropFirst()))) }
            catch { throw Failure(kind: .helper, message: "internal: bad network helper arguments: \(error.message)") }
        case "__manual"?:
            return .manual
        case "__probe"?:
            // Its words are checked by the probe itself (an unknown one exits 2).
            return .probe(Array(args.dropFirst()))
        default:
            do { return .agentpen(try Options.parse(args)) }
            catch { throw Failure(kind: .usage, message: error.message, usage: Options.usage) }
        }
    }

    static func subcommand(_ s: Subcommand, _ rest: [String]) throws(Failure) -> Invocation {
        guard s.isAvailable else { return .notAvailable(s) }
        func parse<C: ParsableCommand>(_ type: C.Type, usage: String) throws(Failure) -> C? {
            do { return try C.parse(rest) } catch {
                if C.exitCode(for: error) == .success { return nil }
                throw Failure(kind: .usage, message: "\(s.rawValue): \(C.message(for: error)); usage: \(usage)")
            }
        }
        switch s {
        case .config:
            let o: Options
            do { o = try Options.parse(rest) }
            catch { throw Failure(kind: .usage, message: "config: \(error.message); usage: agentpen config [OPTIONS] [COMMAND [ARGS...]]") }
            if o.mode == .help { return .subcommandHelp(Help.configUsage) }
            return .config(o)
        case .trust, .`init`, .review, .apply:
            let type: ParsableCommand.Type = switch s {
            case .trust: TrustCommand.self
            case .review: ReviewCommand.self
            case .apply: ApplyCommand.self
            default: InitCommand.self
            }
            do {
                var o = Options()
                switch s {
                case .trust: o.project = try TrustCommand.parse(rest).arguments.project; return .trust(o)
                case .review: o.project = try ReviewCommand.parse(rest).arguments.project; return .review(o)
                case .apply: o.project = try ApplyCommand.parse(rest).arguments.project; return .apply(o)
                default: o.project = try InitCommand.parse(rest).arguments.project; return .initialize(o)
                }
            } catch {
                if type.exitCode(for: error) == .success {
                    return .subcommandHelp(AgentpenCommand.helpMessage(for: type, columns: 80))
                }
                throw Failure(kind: .usage, message: "\(s.rawValue): \(type.message(for: error)); usage: agentpen \(s.rawValue) [-C DIR]")
            }
        case .watch:
            guard let c = try parse(WatchCommand.self, usage: "agentpen watch [--json] [--all | SESSION...]") else {
                return .subcommandHelp(AgentpenCommand.helpMessage(for: WatchCommand.self, columns: 80))
            }
            return .watch(sessions: c.sessions, all: c.all, json: c.json)
        case .suggest:
            guard let c = try parse(SuggestCommand.self, usage: "agentpen suggest [SESSION]") else {
                return .subcommandHelp(AgentpenCommand.helpMessage(for: SuggestCommand.self, columns: 80))
            }
            return .suggest(session: c.session)
        case .allow:
            let usage = "agentpen allow HOST [--once | --session | --save agent|project | --deny] [--session-id ID]"
            guard let c = try parse(AllowCommand.self, usage: usage) else {
                return .subcommandHelp(AgentpenCommand.helpMessage(for: AllowCommand.self, columns: 80))
            }
            func refuse(_ m: String) -> Failure { Failure(kind: .usage, message: "allow: \(m); usage: \(usage)") }
            var choices: [ApprovalChoice] = []
            if c.once { choices.append(.once) }
            if c.session { choices.append(.session) }
            if c.deny { choices.append(.deny) }
            if let s = c.save {
                switch s {
                case "agent": choices.append(.saveAgent)
                case "project": choices.append(.saveProject)
                default: throw refuse("--save \(s.debugDescription): agent or project")
                }
            }
            guard choices.count <= 1 else { throw refuse("choose one of --once, --session, --save, --deny") }
            if let id = c.sessionID, !SessionPolicy.isValidID(id) {
                throw refuse("--session-id \(id.debugDescription) is not a session ID (YYYYMMDD-HHMMSS-PID)")
            }
            let command = ControlCommand(host: c.host, choice: choices.first ?? .once)
            guard case .command(let parsed) = ControlCommand.parse(command.line.dropLast().description) else {
                throw refuse("\(c.host.debugDescription) is not a host name --allow would take (no wildcard, no port)")
            }
            return .allow(parsed, session: c.sessionID)
        case .selftest:
            do {
                _ = try SelftestCommand.parse(rest)
                return .selftest
            } catch {
                if SelftestCommand.exitCode(for: error) == .success {
                    return .subcommandHelp(AgentpenCommand.helpMessage(for: SelftestCommand.self, columns: 80))
                }
                throw Failure(kind: .usage, message: "selftest: \(SelftestCommand.message(for: error)); usage: agentpen selftest")
            }
        default: break
        }
        do {
            return .completions(try CompletionsCommand.parse(rest).shell)
        } catch {
            if CompletionsCommand.exitCode(for: error) == .success {
                return .subcommandHelp(AgentpenCommand.helpMessage(for: CompletionsCommand.self, columns: 80))
            }
            throw Failure(kind: .usage, message: "completions: \(CompletionsCommand.message(for: error)); usage: agentpen completions bash|zsh|fish")
        }
    }
}

extension Options {
    /// Parses the arguments of a run (argv without the program name) into the
    /// plain value the planner consumes. Options end at COMMAND.
    public static func parse(_ args: [String]) throws(Options.UsageError) -> Options {
        if let quick = RunValues.quickParse(args) { return try quick.values.options(command: quick.command) }
        let parsed: RunCommand
        do { parsed = try RunCommand.parse(args) }
        catch { throw UsageError(message: RunCommand.message(for: error)) }
        return try parsed.options()
    }
}
