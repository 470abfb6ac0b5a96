/// The programs agentpen runs on the host side (outside bubblewrap), found once
/// at start by absolute path: in the system directories, or where the user's own
/// `AGENTPEN_BWRAP`, `AGENTPEN_PASTA`, `AGENTPEN_NFT` say. Never on PATH: the
/// caller's PATH routinely holds project directories (`.venv/bin`,
/// `node_modules/.bin`) that the sandbox writes, and a program found there would
/// run outside the sandbox. An override is refused when it is relative, or when it
/// (or any symlink on the way to it) lies in the home or anywhere the sandbox can write.
public struct HostPrograms: Sendable, Equatable {
    public enum Program: String, Sendable, CaseIterable {
        case bwrap, pasta, nft
        /// `--ask`'s desktop notification; optional (no notification without it).
        case notifySend = "notify-send"

        /// The variable that names this program's absolute path.
        public var variable: String { "AGENTPEN_" + String(rawValue.uppercased().map { $0 == "-" ? "_" : $0 }) }

        /// What to tell a user who lacks it.
        public var install: String {
            switch self {
            case .bwrap: return "bubblewrap (Debian/Ubuntu: apt install bubblewrap)"
            case .pasta: return "passt (Debian/Ubuntu: apt install passt)"
            case .nft: return "nftables (Debian/Ubuntu: apt install nftables)"
            case .notifySend: return "libnotify-bin (Debian/Ubuntu: apt install libnotify-bin)"
            }
        }
    }

    public enum Source: Sendable, Equatable {
        case systemDirectory(String)
        case variable(String)
    }

    public struct Found: Sendable, Equatable {
        /// The absolute path to execute (as found: pasta tells itself from passt by its name).
        public var path: String
        public var source: Source
    }

    /// Searched in this order. The NixOS system profile last.
    public static let systemDirectories = ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/run/current-system/sw/bin"]

    /// The whole environment of every host program agentpen starts other than
    /// bubblewrap (which gets the sandbox's): nothing of the caller's or the sandbox's.
    public static let environment: [EnvironmentVariable] = [
        EnvironmentVariable("PATH", "/usr/sbin:/usr/bin:/sbin:/bin:/run/current-system/sw/bin"),
        EnvironmentVariable("LC_ALL", "C"),
    ]

    public var found: [Program: Found] = [:]

    public init(found: [Program: Found] = [:]) { self.found = found }

    public func path(_ program: Program) -> String? { found[program]?.path }

    /// The one-line answer for `--check` and `--dry-run`.
    public func describe(_ program: Program) -> String {
        guard let f = found[program] else {
            if program == .notifySend { return "notify-send: not found (optional: --ask then shows no desktop notification)" }
            return "\(program.rawValue): not found in \(Self.systemDirectories.joined(separator: ", ")) (set \(program.variable))"
        }
        switch f.source {
        case .systemDirectory: return "\(program.rawValue): \(f.path) (system directory)"
        case .variable(let v): return "\(program.rawValue): \(f.path) (from \(v))"
        }
    }

    /// The refusal when a program is needed and missing.
    public static func missing(_ program: Program) -> String {
        "\(program.rawValue) not found in \(systemDirectories.joined(separator: ", ")): install \(program.install),"
            + " or set \(program.variable) to its absolute path"
    }

    public struct Refused: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Resolves every program. `env` is the caller's environment (only the
    /// AGENTPEN_* variables are read); `writable` the host paths the sandbox can write.
    public static func resolve(env: [String: String], home: String, writable: WritableSet,
                               fs: any FileSystemView) throws(Refused) -> HostPrograms {
        var out = HostPrograms()
        let homeSet = WritableSet(home == "/" ? [] : [home], fs: fs)
        for program in Program.allCases {
            if let value = env[program.variable], !value.isEmpty {
                out.found[program] = try override(program, value, home: homeSet, writable: writable, fs: fs)
                continue
            }
            for dir in systemDirectories {
                let candidate = dir + "/" + program.rawValue
                guard let real = Paths.resolve(candidate, in: fs), fs.kind(real) == .file,
                      fs.isExecutable(candidate) else { continue }
                if let w = writable.container(of: real) ?? writable.container(of: candidate) {
                    throw Refused(message: "refusing \(candidate): it lies in \(w), which the sandbox can write;"
                                  + " set \(program.variable) to a \(program.rawValue) outside it")
                }
                out.found[program] = Found(path: candidate, source: .systemDirectory(dir))
                break
            }
        }
        return out
    }

    private static func override(_ program: Program, _ value: String, home: WritableSet, writable: WritableSet,
                                 fs: any FileSystemView) throws(Refused) -> Found {
        let name = "\(program.variable)=\(value)"
        guard value.hasPrefix("/") else {
            throw Refused(message: "refusing \(name): not an absolute path; set it to the absolute path of \(program.rawValue)")
        }
        guard let chain = symlinkChain(value, fs: fs), fs.kind(chain.real) == .file, fs.isExecutable(value) else {
            throw Refused(message: "refusing \(name): no executable file there; set it to the absolute path of \(program.rawValue)")
        }
        // The path itself, each symlink on the way, and the file it ends at.
        for p in [Paths.normalize(value)] + chain.links + [chain.real] {
            if let w = writable.container(of: p) {
                throw Refused(message: "refusing \(name): \(p) lies in \(w), which the sandbox can write;"
                              + " point it at a \(program.rawValue) outside it")
            }
            if let h = home.container(of: p) {
                throw Refused(message: "refusing \(name): \(p) lies in your home (\(h)); point it at a \(program.rawValue) outside the home")
            }
        }
        return Found(path: Paths.normalize(value), source: .variable(program.variable))
    }

    /// Every symlink met while resolving `path` (directories on the way included)
    /// and the real path it ends at; nil when something is missing or loops.
    static func symlinkChain(_ path: String, fs: any FileSystemView) -> (links: [String], real: String)? {
        var pending = Paths.normalize(path).split(separator: "/").map(String.init)
        var done = "/"
        var links: [String] = []
        while !pending.isEmpty {
            let candidate = Paths.join(done, pending.removeFirst())
            switch fs.kind(candidate) {
            case .missing: return nil
            case .symlink:
                guard links.count < 40, let target = fs.readLink(candidate) else { return nil }
                links.append(candidate)
                pending = Paths.join(done, target).split(separator: "/").map(String.init) + pending
                done = "/"
            default:
                done = candidate
            }
        }
        return (links, done)
    }
}

/// Host paths the sandbox can write (the sources of its read-write binds), with
/// their symlinks resolved, and the question whether a path lies in one of them.
public struct WritableSet: Sendable, Equatable {
    public var paths: [String]

    public init(_ paths: [String], fs: any FileSystemView) {
        var out: [String] = []
        for p in paths where p.hasPrefix("/") {
            for q in [Paths.normalize(p), Paths.resolve(p, in: fs)].compactMap({ $0 }) where !out.contains(q) {
                out.append(q)
            }
        }
        self.paths = out
    }

    /// The writable path `path` lies in (or is), if any.
    public func container(of path: String) -> String? {
        paths.first { Paths.isWithin(path, $0) }
    }
}
