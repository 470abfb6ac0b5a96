@testable import AgentpenCommandLine
import AgentpenPolicy
import Foundation
import Testing

/// RunValues.quickParse reads the plain argv without swift-argument-parser; the
/// library stays the grammar. These hold the two to the same Options (or the
/// same refusal) on every argv the quick path takes, the quick path to taking
/// the common ones, and its table to the library's list of names.
@Suite struct QuickParseTests {
    /// What the library makes of `args`: the Options, or the refusal's message.
    static func library(_ args: [String]) -> Result<Options, Options.UsageError> {
        do { return .success(try RunCommand.parse(args).options()) }
        catch let e as Options.UsageError { return .failure(e) }
        catch { return .failure(Options.UsageError(message: RunCommand.message(for: error))) }
    }

    static func quick(_ args: [String]) -> Result<Options, Options.UsageError>? {
        guard let q = RunValues.quickParse(args) else { return nil }
        do { return .success(try q.values.options(command: q.command)) }
        catch { return .failure(error) }
    }

    /// Values of every kind, including ones the checks refuse afterwards.
    static let values = ["claude", "x", "/tmp/p", "FOO", "BAD-NAME", "example.com", "*.example.com", "10.0.0.1",
                         "github.com:22", "11434", "0", "99999", "direct", "pasta", "nohop", "2G", "none", "1.5",
                         "64", "a b", "=x", "", "'", "\u{202e}"]

    static let commands: [[String]] = [[], ["claude"], ["--", "codex", "--help"], ["sh", "-c", "echo --ask"],
                                       ["-"], ["--", "--weird"], ["bash", "--"]]

    /// Every option of the library's with each value, flags alone and twice,
    /// pairs of options, and each followed by each command: every argv the quick
    /// path takes gives what the library gives.
    @Test func sameResultAsTheLibraryWheneverTaken() {
        var corpus: [[String]] = Self.commands
        for name in RunValues.quickNames {
            switch RunValues.slot(name)! {
            case .flag:
                corpus.append([name]); corpus.append([name, name])
            case .value, .list:
                for v in Self.values { corpus.append([name, v]) }
                corpus.append([name]); corpus.append([name, "x", name, "y"])
            }
        }
        // Each single with each command; pairs (a sample: each parse by the
        // library costs milliseconds in a debug build) with one command each.
        let singles = corpus
        let n = Self.commands.count
        corpus = singles.enumerated().map { i, argv in argv + Self.commands[i % n] }
        for (i, a) in singles.enumerated() where i % 9 == 0 {
            for (j, b) in singles.enumerated() where j % 61 == 0 { corpus.append(a + b + Self.commands[(i + j) % n]) }
        }
        var taken = 0
        for argv in corpus {
            guard let q = Self.quick(argv) else { continue }
            taken += 1
            let l = Self.library(argv)
            switch (q, l) {
            case (.success(let a), .success(let b)): #expect(a == b, "\(argv)")
            case (.failure(let a), .failure(let b)): #expect(a.message == b.message, "\(argv)")
            default: Issue.record("\(argv): quick \(q), library \(l)")
            }
        }
        #expect(corpus.count > 450)
        #expect(taken > corpus.count / 3, "the quick path took \(taken) of \(corpus.count)")
    }

    /// How agents are started: these must not fall back to the library.
    @Test func theCommonFormsAreTaken() {
        for argv in [["claude"], [], ["--allow", "example.com", "codex"], ["--agent", "aider", "--", "aider", "--yes"],
                     ["-C", "/tmp/p", "--mount", "/data", "--env", "FOO", "--quiet", "bash"], ["--dry-run", "--", "true"],
                     ["--allow-private", "db.internal:5432", "--publish", "3000", "--hop", "pasta", "sh"], ["--help"], ["--version"]] {
            #expect(RunValues.quickParse(argv) != nil, "\(argv)")
        }
        // Left to the library: its own forms and its errors.
        for argv in [["--log=/tmp/x"], ["-C/tmp"], ["--alow", "x"], ["--log"], ["--log", "-x"], ["--agent", "a", "--agent", "b"],
                     ["--ask", "--ask"], ["-hC", "/tmp"], ["--generate-completion-script", "bash"]] {
            #expect(RunValues.quickParse(argv) == nil, "\(argv)")
        }
    }

    /// The table names exactly the library's options (a new option of RunArguments
    /// must be added to it, or its first use would reach the library anyway).
    @Test func theTableIsTheLibrarysNames() throws {
        let dump = RunCommand._dumpHelp()
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [String: Any])
        let command = try #require(json["command"] as? [String: Any])
        let arguments = try #require(command["arguments"] as? [[String: Any]])
        var names: Set<String> = []
        for a in arguments {
            for n in (a["names"] as? [[String: Any]]) ?? [] {
                guard let kind = n["kind"] as? String, let name = n["name"] as? String else { continue }
                names.insert(kind == "short" ? "-" + name : "--" + name)
            }
        }
        #expect(names == Set(RunValues.quickNames), "library \(names.sorted()), quick \(RunValues.quickNames.sorted())")
        for n in RunValues.quickNames { #expect(RunValues.slot(n) != nil, "\(n)") }
    }
}
