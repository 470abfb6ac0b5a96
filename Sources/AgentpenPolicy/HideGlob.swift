/// `hide = [".env", "*.pem", "secrets/*.key"]`: project paths masked for the
/// agent. A pattern is relative to the project root and matched one path
/// component at a time (`*` and `?` never cross a `/`; `[abc]`, `[a-z]`,
/// `[!a]` classes), so expanding it lists only the directories it names: no
/// walk of the project at start-up. `*.pem` is the project root's `.pem`
/// files; `config/*.pem` those in `config/`.
public enum HideGlob {
    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The pattern, checked: relative, no `..` or `.` component, not empty.
    public static func validate(_ pattern: String) throws(Invalid) -> String {
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: false)
        guard !pattern.isEmpty, !pattern.hasPrefix("/"), !parts.contains(where: { $0.isEmpty || $0 == ".." || $0 == "." }) else {
            throw Invalid(message: "\(pattern.debugDescription): a path relative to the project root, without '..', '.' or empty components")
        }
        guard parts.count <= 16, pattern.utf8.count <= 1024, parts.allSatisfy({ $0.utf8.count <= 255 }) else {
            throw Invalid(message: "\(pattern.debugDescription): too long")
        }
        for p in parts { _ = try components(String(p)) }
        return pattern
    }

    enum Token: Equatable { case literal(Character), any, star, set([ClosedRange<Character>], negated: Bool) }

    static func components(_ p: String) throws(Invalid) -> [Token] {
        var out: [Token] = []
        var chars = Array(p)[...]
        while let c = chars.popFirst() {
            switch c {
            case "*": if out.last != .star { out.append(.star) }
            case "?": out.append(.any)
            case "[":
                var negated = false
                if chars.first == "!" || chars.first == "^" { negated = true; chars.removeFirst() }
                var ranges: [ClosedRange<Character>] = []
                var closed = false
                var first = true
                while let d = chars.popFirst() {
                    if d == "]" && !first { closed = true; break }
                    first = false
                    if chars.count >= 2, chars.first == "-", chars.dropFirst().first != "]" {
                        chars.removeFirst()
                        let hi = chars.removeFirst()
                        guard d <= hi else { throw Invalid(message: "\(p.debugDescription): bad range \(d)-\(hi)") }
                        ranges.append(d...hi)
                    } else { ranges.append(d...d) }
                }
                guard closed else { throw Invalid(message: "\(p.debugDescription): '[' without ']'") }
                out.append(.set(ranges, negated: negated))
            case "\\":
                guard let n = chars.popFirst() else { throw Invalid(message: "\(p.debugDescription): ends in '\\'") }
                out.append(.literal(n))
            default: out.append(.literal(c))
            }
        }
        return out
    }

    /// Whether one path component `name` matches one pattern component. A
    /// leading `*` or `?` matches a leading dot too (`*.pem` hides `.x.pem`):
    /// hiding errs on the side of hiding.
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        guard let tokens = try? components(pattern) else { return false }
        let n = Array(name)
        // Linear-time wildcard match (one backtrack point per star).
        var ti = 0, ni = 0, starT = -1, starN = 0
        func one(_ t: Token, _ c: Character) -> Bool {
            switch t {
            case .literal(let l): l == c
            case .any: true
            case .star: false
            case .set(let r, let neg): r.contains { $0.contains(c) } != neg
            }
        }
        while ni < n.count {
            if ti < tokens.count, tokens[ti] == .star { starT = ti; starN = ni; ti += 1 }
            else if ti < tokens.count, one(tokens[ti], n[ni]) { ti += 1; ni += 1 }
            else if starT >= 0 { ti = starT + 1; starN += 1; ni = starN }
            else { return false }
        }
        while ti < tokens.count, tokens[ti] == .star { ti += 1 }
        return ti == tokens.count
    }

    public static func hasMagic(_ component: String) -> Bool { component.contains { "*?[\\".contains($0) } }

    /// At most this many directories are listed to expand every pattern of a
    /// run (`*/*/*/…` must not become a walk of the project at start-up).
    public static let listingLimit = 64

    public struct TooBroad: Error, Equatable { public var pattern: String }

    /// The project paths `patterns` name today, through `fs`: each pattern
    /// component lists only the directory it is in. A symlink is never
    /// followed (a match that is a symlink is hidden as itself; a symlink on
    /// the way stops that branch). At most `limit` paths; more than
    /// `listingLimit` directory listings throws.
    public static func expand(_ patterns: [String], project: String, fs: any FileSystemView,
                              limit: Int = 4096) throws(TooBroad) -> [String] {
        var found: [String] = []
        var listings = 0
        for pattern in patterns {
            var current = [project]
            let parts = pattern.split(separator: "/").map(String.init)
            for (i, part) in parts.enumerated() {
                let last = i == parts.count - 1
                var next: [String] = []
                for dir in current {
                    let magic = hasMagic(part)
                    if magic { listings += 1; if listings > listingLimit { throw TooBroad(pattern: pattern) } }
                    let names = magic ? fs.list(dir).filter { matches(part, $0) }.sorted()
                        : (fs.kind(Paths.join(dir, part)) == .missing ? [] : [part])
                    for name in names where name != "." && name != ".." {
                        let p = dir + "/" + name
                        let k = fs.kind(p)
                        if last { if k != .missing { next.append(p) } }
                        else if k == .directory { next.append(p) }
                    }
                }
                current = next
            }
            for p in current where !found.contains(p) && found.count < limit { found.append(p) }
        }
        return found
    }
}
