/// What the planner may ask about the host's files. The kernel edge answers for
/// real; tests answer from a dictionary. Read-only: planning changes nothing.
public protocol FileSystemView: Sendable {
    func kind(_ path: String) -> FileKind
    /// The target of a symlink, as stored (may be relative).
    func readLink(_ path: String) -> String?
    /// The first bytes of a file (enough for a `#!` line).
    func head(_ path: String, bytes: Int) -> [UInt8]
    func isExecutable(_ path: String) -> Bool
    /// Whether agentpen may open the file for reading (its permissions, not its kind).
    func isReadable(_ path: String) -> Bool
    /// The names in a directory (empty when it cannot be read).
    func list(_ directory: String) -> [String]
}

public enum FileKind: Sendable, Equatable {
    case missing, directory, file, symlink, other
}

public enum Paths {
    /// Joins and normalizes `.`/`..`/duplicate slashes lexically.
    public static func normalize(_ path: String) -> String {
        // Most paths arrive normalized already; a run asks thousands of times
        // (WritableSet, isWithin), and splitting and joining each showed in profiles.
        if isNormalized(path) { return path }
        var out: [Substring] = []
        for part in components(path) {
            if part == "." { continue }
            if part == ".." { if !out.isEmpty { out.removeLast() }; continue }
            out.append(part)
        }
        return "/" + out.joined(separator: "/")
    }

    /// Whether `normalize` would return `path` unchanged: absolute, and no empty,
    /// `.` or `..` component (so no doubled or trailing slash but in "/" itself).
    static func isNormalized(_ path: String) -> Bool {
        // A native String's bytes in place (its UTF-8 iterator cost ~1 000 instructions
        // a path, 1.6 M per start); a bridged one, were there any, is walked as before.
        path.utf8.withContiguousStorageIfAvailable(isNormalized) ?? isNormalized(path.utf8)
    }

    private static func isNormalized<Bytes: Sequence<UInt8>>(_ path: Bytes) -> Bool {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        var bytes = path.makeIterator()
        guard bytes.next() == slash else { return false }
        var length = 0, onlyDots = true, components = 0
        func ok() -> Bool { length > 0 && !(onlyDots && length <= 2) }
        while let c = bytes.next() {
            if c == slash {
                guard ok() else { return false }
                components += 1
                length = 0
                onlyDots = true
            } else {
                length += 1
                if c != dot { onlyDots = false }
            }
        }
        return ok() || (components == 0 && length == 0)   // "/" itself
    }

    public static func join(_ base: String, _ rel: String) -> String {
        rel.hasPrefix("/") ? normalize(rel) : normalize(base + "/" + rel)
    }

    public static func parent(_ path: String) -> String {
        let n = normalize(path)
        guard let slash = n.lastIndex(of: "/"), n != "/" else { return "/" }
        return slash == n.startIndex ? "/" : String(n[..<slash])
    }

    public static func basename(_ path: String) -> String {
        String(components(normalize(path)).last ?? "")
    }

    /// The non-empty components between slashes, split by bytes (String.split
    /// by Character cost ~8 k instructions a path: it walks grapheme clusters).
    static func components(_ path: String) -> [Substring] {
        path.utf8.split(separator: UInt8(ascii: "/")).map { Substring($0) }
    }

    /// `path` equals `base` or lies beneath it.
    public static func isWithin(_ path: String, _ base: String) -> Bool {
        let p = normalize(path), b = normalize(base)
        return b == "/" || p == b || p.hasPrefix(b + "/")
    }

    /// Resolves every symlink in `path` (like realpath), through `fs`. Nil when
    /// a component is missing or the chain loops.
    public static func resolve(_ path: String, in fs: any FileSystemView) -> String? {
        // The components still to walk, the next one last (a plan resolves a hundred
        // paths at start-up: popping from the end and joining as it goes, each
        // costs a fifth of what splitting into Strings and removeFirst did).
        var pending = components(normalize(path)).reversed() as [Substring]
        var done = "/"
        var hops = 0
        while let part = pending.popLast() {
            // `done` is normalized and `part` a plain component: so is the join.
            let candidate = done == "/" ? "/" + part : done + "/" + part
            switch fs.kind(candidate) {
            case .missing: return nil
            case .symlink:
                hops += 1
                guard hops < 40, let target = fs.readLink(candidate) else { return nil }
                pending.append(contentsOf: components(join(done, target)).reversed())
                done = "/"
            default:
                done = candidate
            }
        }
        return done
    }

    /// The chain of symlinks from `path` to its final target: each link's path
    /// and stored target, then the resolved final file.
    public static func linkChain(_ path: String, in fs: any FileSystemView) -> (links: [(path: String, target: String)], final: String)? {
        var links: [(String, String)] = []
        var current = normalize(path)
        for _ in 0..<40 {
            // Resolve the directory part fully; only the last component's link is recorded.
            guard let dir = resolve(parent(current), in: fs) else { return nil }
            let here = join(dir, basename(current))
            if fs.kind(here) == .symlink, let target = fs.readLink(here) {
                links.append((here, target))
                current = join(dir, target)
            } else {
                guard fs.kind(here) != .missing else { return nil }
                return (links, here)
            }
        }
        return nil
    }
}
