import AgentpenPolicy

/// The internal entry points' argv (`__exec`, `__netns`), parsed by hand:
/// agentpen writes them itself (SandboxPlan's exec helper argv, NetworkedRun's
/// helper argv), no user types them, and they run on every start (`__exec`
/// inside the sandbox just before the agent, `__netns` on the host), where
/// swift-argument-parser spent ~7.5 M instructions (~1.5-2 ms) each time.
///
/// Only the forms agentpen writes are taken: `--name VALUE` as two words (the
/// value is the next word whatever it looks like), flags alone, then `--` and
/// the command, whose words are never looked at. Anything else fails closed
/// (exit 125, the command never runs): an unknown option (`--name=VALUE`
/// included), a missing value, a number that is not plain decimal digits in
/// range, an option that takes one value given twice, a word before `--`, no
/// `--`, no command.
enum HelperArgv {
    enum Kind {
        /// Takes the next word; `repeats`: each occurrence appends.
        case value(repeats: Bool)
        case flag
    }

    /// Arrays, not dictionaries or sets: the first Dictionary<String, …> or
    /// Set<String> a process makes has the Swift runtime scan every protocol
    /// conformance record of the binary (Hashable), ~0.25 M instructions each,
    /// and these parsers run at every start. A handful of words needs no hashing.
    struct Parsed {
        /// Each option given, with its values in order.
        var values: [(name: String, words: [String])] = []
        var flags: [String] = []
        var command: [String] = []

        func one(_ name: String) -> String? { all(name).first }
        func all(_ name: String) -> [String] { values.first { $0.name == name }?.words ?? [] }
    }

    struct Failure: Error {
        var message: String
    }

    /// `args` without the entry point's name.
    static func parse(_ args: [String], _ options: [(name: String, kind: Kind)]) throws(Failure) -> Parsed {
        var p = Parsed()
        var i = 0
        while i < args.count {
            let word = args[i]
            i += 1
            if word == "--" {
                p.command = Array(args[i...])
                guard !p.command.isEmpty else { throw Failure(message: "no command after --") }
                return p
            }
            guard let kind = options.first(where: { $0.name == word })?.kind else {
                throw Failure(message: word.hasPrefix("-") ? "unknown option \(word.debugDescription)"
                                                           : "unexpected \(word.debugDescription) before --")
            }
            switch kind {
            case .flag:
                guard !p.flags.contains(word) else { throw Failure(message: "\(word) given twice") }
                p.flags.append(word)
            case .value(let repeats):
                guard i < args.count else { throw Failure(message: "\(word) without its value") }
                if let at = p.values.firstIndex(where: { $0.name == word }) {
                    guard repeats else { throw Failure(message: "\(word) given twice") }
                    p.values[at].words.append(args[i])
                } else {
                    p.values.append((word, [args[i]]))
                }
                i += 1
            }
        }
        throw Failure(message: "no -- before the command")
    }

    /// Plain decimal digits (no sign, no space, no base prefix) that fit `T`.
    static func number<T: FixedWidthInteger>(_ word: String, _ option: String, as: T.Type = T.self) throws(Failure) -> T {
        guard !word.isEmpty, word.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let n = T(word, radix: 10), n >= 0 else {
            throw Failure(message: "\(option) \(word.debugDescription) is not a number")
        }
        return n
    }
}

extension ExecArguments {
    static let options: [(name: String, kind: HelperArgv.Kind)] = [
        ("--rw", .value(repeats: true)), ("--watch", .value(repeats: true)),
        ("--cgroup", .value(repeats: false)), ("--syscall-notify", .value(repeats: false)), ("--gate", .value(repeats: false)),
    ]

    /// `__exec`'s argv without its name (see `HelperArgv`).
    static func parse(_ args: [String]) throws(HelperArgv.Failure) -> ExecArguments {
        let p = try HelperArgv.parse(args, options)
        func fd(_ option: String) throws(HelperArgv.Failure) -> Int32? {
            guard let w = p.one(option) else { return nil }
            return try HelperArgv.number(w, option)
        }
        return ExecArguments(writable: p.all("--rw"), cgroupFD: try fd("--cgroup"), notifyFD: try fd("--syscall-notify"),
                             watch: p.all("--watch"), gateFD: try fd("--gate"), command: p.command)
    }
}

extension NetArguments {
    static let options: [(name: String, kind: HelperArgv.Kind)] = [
        ("--proxy-port", .value(repeats: false)), ("--hop", .value(repeats: false)), ("--nft", .value(repeats: false)),
        ("--host", .value(repeats: true)), ("--fd", .value(repeats: true)), ("--host-port", .value(repeats: true)),
        ("--serve-sockets", .flag),
    ]

    /// `__netns`'s argv without its name (see `HelperArgv`); the hop must be
    /// known, nft an absolute path, each host a pattern `--allow` takes.
    static func parse(_ args: [String]) throws(HelperArgv.Failure) -> NetArguments {
        let p = try HelperArgv.parse(args, options)
        var a = NetArguments()
        if let w = p.one("--proxy-port") { a.proxyPort = try HelperArgv.number(w, "--proxy-port") }
        if let w = p.one("--hop") {
            guard let hop = NetworkPlan.Hop(rawValue: w) else { throw HelperArgv.Failure(message: "--hop \(w.debugDescription) is no hop") }
            a.hop = hop
        }
        a.nft = p.one("--nft") ?? ""
        guard a.nft.hasPrefix("/") else { throw HelperArgv.Failure(message: "--nft \(a.nft.debugDescription) is not an absolute path") }
        var list = Allowlist()
        for h in p.all("--host") {
            guard let pattern = try? HostPattern(h) else { throw HelperArgv.Failure(message: "--host \(h.debugDescription) is no host pattern") }
            list.add(pattern)
        }
        a.hosts = list.patterns
        for w in p.all("--fd") { a.passFDs.append(try HelperArgv.number(w, "--fd")) }
        for w in p.all("--host-port") { a.hostPorts.append(try HelperArgv.number(w, "--host-port")) }
        a.serveSockets = p.flags.contains("--serve-sockets")
        a.bwrap = p.command
        return a
    }
}
