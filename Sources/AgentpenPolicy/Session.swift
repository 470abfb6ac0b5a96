/// Sessions (issue 13): each run's directory under `XDGPaths.sessions`, named
/// by its ID, holding `events.jsonl`, the control socket and the directory the
/// sandbox sees read-only at `SessionPolicy.insideDir`. The decisions about
/// them, as plain values.
public enum SessionPolicy {
    /// Sessions kept at most (the newest); older ones are removed when a run starts.
    public static let maxKept = 50
    /// Sessions older than this (by the time in their ID) are removed.
    public static let maxAgeSeconds: Int64 = 30 * 86_400

    /// Where the sandbox finds this session's refusals: a directory agentpen
    /// rewrites on the host, bound read-only.
    public static let insideDir = "/run/agentpen/session"
    public static let refusalsFile = insideDir + "/refusals"
    /// The variable that names `refusalsFile` inside.
    public static let refusalsVariable = "AGENTPEN_REFUSALS"
    /// The host-side subdirectory of the session bound there (nothing else of the
    /// session directory is visible inside).
    public static let viewDirName = "view"
    public static let eventsName = "events.jsonl"
    public static let controlName = "control"
    public static let refusalsName = "refusals"

    /// `YYYYMMDD-HHMMSS-PID` in UTC: names sort by start time.
    public static func makeID(epochSeconds: Int64, pid: Int32) -> String {
        let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let secs = epochSeconds - days * 86_400
        let (y, m, d) = civil(days)
        return pad(y, 4) + pad(m, 2) + pad(d, 2) + "-" + pad(secs / 3600, 2) + pad(secs / 60 % 60, 2)
            + pad(secs % 60, 2) + "-" + String(pid)
    }

    /// Whether `text` is a session ID (and so a safe single path component).
    public static func isValidID(_ text: String) -> Bool {
        // By bytes: ASCII digits only (a Character range also held digits with
        // combining marks), and without splitting into Substrings (prune asks of
        // every entry of the sessions directory, 20 k instructions each).
        let b = Array(text.utf8)
        guard b.count >= 17, b.count <= 26, b[8] == UInt8(ascii: "-"), b[15] == UInt8(ascii: "-") else { return false }
        return b.indices.allSatisfy { $0 == 8 || $0 == 15 || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[$0]) }
    }

    /// The start time of an ID, seconds since the epoch (UTC), or nil.
    public static func startTime(ofID id: String) -> Int64? {
        guard isValidID(id) else { return nil }
        let u = Array(id.utf8).map { Int64($0) - 48 }
        func num(_ r: Range<Int>) -> Int64 { r.reduce(0) { $0 * 10 + u[$1] } }
        let y = num(0..<4), m = num(4..<6), d = num(6..<8), hh = num(9..<11), mm = num(11..<13), ss = num(13..<15)
        guard (1...12).contains(m), (1...31).contains(d), hh < 24, mm < 60, ss < 61 else { return nil }
        return daysFromCivil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss
    }

    /// The entries of the sessions directory to remove: names that are IDs,
    /// older than `maxAge`, or beyond the `keep` newest. Names that are not IDs
    /// are left alone (agentpen did not make them). The caller still spares a
    /// session whose run is alive.
    public static func prune(_ names: [String], now: Int64, keep: Int = maxKept,
                             maxAge: Int64 = maxAgeSeconds) -> [String] {
        let ids = names.compactMap { n in startTime(ofID: n).map { (n, $0) } }
            .sorted { ($0.1, $0.0) > ($1.1, $1.0) }
        var out: [String] = []
        for (i, e) in ids.enumerated() where i >= keep || now - e.1 > maxAge { out.append(e.0) }
        return out
    }

    /// The newest of `names` that is an ID.
    public static func newest(_ names: [String]) -> String? {
        names.compactMap { n in startTime(ofID: n).map { (n, $0) } }.max { ($0.1, $0.0) < ($1.1, $1.0) }?.0
    }

    // Howard Hinnant's civil-from-days and days-from-civil.
    static func civil(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

/// The flag that would have let a refused name through, as the deciding code
/// writes it into the event (`details["permit"]`) and `agentpen suggest` and the
/// refusals file read it back. Only a name `--allow` would accept gets one: an
/// IP literal, a localhost name or a malformed name (chosen inside) gets none.
public enum Permit {
    public static func allow(_ name: String) -> String? {
        (try? HostPattern(name)).map { "--allow " + $0.description }
    }

    public static func allowPrivate(_ name: String) -> String? {
        (try? HostPattern(name)).map { "--allow-private " + $0.description }
    }

    /// A permit read back from an event: the pattern it names, validated again
    /// (the file is agentpen's, but the name in it came from the sandbox).
    public static func parse(_ permit: String) -> HostPattern? {
        let parts = permit.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        switch parts[0] {
        case "--allow": return try? HostPattern(String(parts[1]))
        case "--allow-private": return try? HostPattern(String(parts[1]), allowsPrivateUpstream: true)
        default: return nil
        }
    }

    /// What `agentpen suggest` prints for the permits a session's refusals
    /// carried: the flags (one line) and the preset-format config lines. A host
    /// asked for both ways keeps `--allow-private` only.
    public static func suggestion(_ permits: [String]) -> (flags: String, config: [String])? {
        var list = Allowlist()
        for p in permits { if let h = parse(p) { list.add(h) } }
        guard !list.isEmpty else { return nil }
        let flags = list.patterns.map { ($0.allowsPrivateUpstream ? "--allow-private " : "--allow ") + $0.description }
        let config = list.patterns.map { "host " + $0.description + ($0.allowsPrivateUpstream ? "   # private upstream: use --allow-private" : "") }
        return (flags.joined(separator: " "), config)
    }
}

extension SandboxPlan {
    /// The host paths the sandbox can see: the source of every bind, read-only or
    /// read-write.
    public var hostVisible: [String] {
        var out: [String] = []
        for a in bwrap {
            switch a {
            case .bind(let source, _, _), .bindOpened(let source, _):
                if !out.contains(source) { out.append(source) }
            default: continue
            }
        }
        return out
    }

    /// Binds the session's view directory read-only at `SessionPolicy.insideDir`
    /// and names its refusals file in the sandbox's environment.
    public mutating func addSessionView(hostDir: String) {
        bwrap.append(.bind(source: hostDir, destination: SessionPolicy.insideDir, readOnly: true))
        env.append(EnvironmentVariable(SessionPolicy.refusalsVariable, SessionPolicy.refusalsFile))
        notes.append("session refusals read-only at \(SessionPolicy.refusalsFile) ($\(SessionPolicy.refusalsVariable))")
    }
}
