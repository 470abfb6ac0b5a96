/// What an agent needs beyond the bare sandbox: hosts, environment variables and
/// config paths. Presets are data (`allowlists/NAME.preset`, embedded at build):
///
///     # comment
///     host api.example.com        reachable host (wildcards allowed)
///     env EXAMPLE_API_KEY         passed from the caller's environment when set
///     setenv NAME=VALUE           set inside (a leading ~ is the home directory)
///     rw ~/.example               mounted read-write (created when missing)
///     ro ~/.example.toml          mounted read-only (skipped when missing)
///     endpoint EXAMPLE_BASE_URL   when the caller sets it, its URL's host is allowed too
///     arg --example=value         given to the agent before the caller's arguments
///                                 (only when the command is the preset's agent)
///     credential ~/.example/auth  the login file in an rw path: the one file the
///                                 paranoid profile copies back from its throwaway copy
public struct Preset: Sendable, Equatable {
    public var name: String
    public var hosts: [HostPattern] = []
    public var env: [String] = []
    public var setenv: [EnvironmentVariable] = []
    public var readWrite: [String] = []
    public var readOnly: [String] = []
    public var args: [String] = []
    /// Variables naming the agent's API endpoint (also passed through, like `env`).
    public var endpoints: [String] = []
    /// Login files inside `readWrite` paths (`credential`).
    public var credentials: [String] = []

    public init(name: String) { self.name = name }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var preset: String
        public var line: Int
        public var message: String
        public var description: String { "preset \(preset), line \(line): \(message)" }
    }

    public init(name: String, text: String) throws(ParseError) {
        self.name = name
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                .trimmingWhitespace()
            if line.isEmpty { continue }
            let parts = line.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
            func fail(_ m: String) -> ParseError { ParseError(preset: name, line: index + 1, message: m) }
            guard parts.count == 2 else { throw fail("expected 'KEYWORD VALUE', got \(line.debugDescription)") }
            let value = String(parts[1]).trimmingWhitespace()
            switch parts[0] {
            case "host":
                do { hosts.append(try HostPattern(value)) } catch { throw fail(error.description) }
            case "env":
                guard EnvPolicy.isValidName(value) else { throw fail("bad variable name \(value.debugDescription)") }
                env.append(value)
            case "setenv":
                guard let eq = value.firstIndex(of: "="), EnvPolicy.isValidName(String(value[..<eq])) else {
                    throw fail("setenv needs NAME=VALUE")
                }
                setenv.append(EnvironmentVariable(String(value[..<eq]), String(value[value.index(after: eq)...])))
            case "arg":
                args.append(value)
            case "endpoint":
                guard EnvPolicy.isValidName(value) else { throw fail("bad variable name \(value.debugDescription)") }
                endpoints.append(value)
                if !env.contains(value) { env.append(value) }
            case "credential":
                guard value.hasPrefix("~/"), !value.split(separator: "/").contains("..") else { throw fail("credential must be a ~/ path without '..'") }
                credentials.append(value)
            case "rw", "ro":
                guard value.hasPrefix("~/") || value.hasPrefix("/") else { throw fail("path must start with ~/ or /") }
                guard !value.split(separator: "/").contains("..") else { throw fail("'..' is not allowed in paths") }
                if parts[0] == "rw" { readWrite.append(value) } else { readOnly.append(value) }
            default:
                throw fail("unknown keyword \(parts[0].debugDescription)")
            }
        }
    }

    /// The hosts of the endpoints the caller set (`ANTHROPIC_BASE_URL=https://h:8443/v1`
    /// → h). Only the caller's environment counts, never a file the sandbox can write.
    /// A value that is not an http(s) URL with a valid host name is an error.
    public func endpointHosts(caller: [String: String]) throws(ParseError) -> [HostPattern] {
        var out: [HostPattern] = []
        for name in endpoints {
            guard let url = caller[name], !url.isEmpty else { continue }
            func fail() -> ParseError {
                ParseError(preset: self.name, line: 0,
                           message: "\(name)=\(url.debugDescription) is not an https:// URL with a host name")
            }
            let lower = url.lowercased()
            guard let scheme = ["https://", "http://"].first(where: { lower.hasPrefix($0) }) else { throw fail() }
            var rest = url.dropFirst(scheme.count)
            rest = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
            if let colon = rest.firstIndex(of: ":") { rest = rest[..<colon] }
            guard !rest.isEmpty, !rest.hasPrefix("*"), let h = try? HostPattern(String(rest)) else { throw fail() }
            if !out.contains(h) { out.append(h) }
        }
        return out
    }

    /// The shipped presets, by agent name.
    public static func builtin(_ name: String) -> Preset? {
        guard let text = embeddedPresets[name] else { return nil }
        // The build embeds files that the unit tests parse; a broken one is a bug.
        return try! Preset(name: name, text: text)
    }

    public static var builtinNames: [String] { embeddedPresets.keys.sorted() }
}

public extension StringProtocol {
    /// Without leading and trailing white space (spaces, tabs, CR, LF).
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}

/// Expands a leading `~` to `home`.
public func expandTilde(_ path: String, home: String) -> String {
    if path == "~" { return home }
    if path.hasPrefix("~/") { return home + path.dropFirst(1) }
    return path
}
