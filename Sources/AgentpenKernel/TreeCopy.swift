import AgentpenPolicy
import CShim
import Glibc

/// Copies and compares directory trees for the paranoid profile's throwaway
/// copies. Every name is opened relative to its parent's descriptor with
/// O_NOFOLLOW: a symlink is copied as a symlink (its target text), never
/// followed; FIFOs, sockets and devices are skipped (counted); set-id bits are
/// dropped; files are reflinked where the filesystem can. Bounded in depth and entries.
public enum TreeCopy {
    public struct Stats: Sendable, Equatable {
        public var files = 0, directories = 0, symlinks = 0, skipped = 0
        /// Files that share their blocks with the original (FICLONE).
        public var reflinked = 0
    }
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    static let maxDepth = 64
    static let maxEntries = 1_000_000
    static let dirFlags = O_RDONLY | AP_O_DIRECTORY | AP_O_NOFOLLOW | O_CLOEXEC | AP_O_NONBLOCK

    /// Copies the tree at `source` to `destination`, which must not exist (its parent must).
    public static func copy(_ source: String, to destination: String) throws(Failure) -> Stats {
        guard let srcDir = Descriptor.open(source, dirFlags) else {
            throw Failure(description: "cannot open \(source): \(String(cString: strerror(errno)))")
        }
        let src = srcDir.raw
        var st = stat()
        guard fstat(src, &st) == 0 else { throw Failure(description: "cannot stat \(source)") }
        guard mkdir(destination, 0o700) == 0 else {
            throw Failure(description: "cannot create \(destination): \(String(cString: strerror(errno)))")
        }
        guard let dstDir = Descriptor.open(destination, dirFlags) else { throw Failure(description: "cannot open \(destination)") }
        let dst = dstDir.raw
        var stats = Stats()
        try copyDir(src, dst, path: source, depth: 0, stats: &stats)
        fchmod(dst, mode_t(st.st_mode) & 0o777 | 0o700)
        return stats
    }

    /// The names in an open directory (the descriptor stays open).
    static func names(_ fd: Int32) -> [String] {
        let fd = dup(fd)
        guard fd >= 0 else { return [] }
        let copy = Descriptor(fd)
        guard let dir = fdopendir(copy.raw) else { return [] }
        _ = copy.take()    // the DIR stream owns it now: closedir closes it
        defer { closedir(dir) }
        var out: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafePointer(to: e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    static func copyDir(_ src: Int32, _ dst: Int32, path: String, depth: Int, stats: inout Stats) throws(Failure) {
        guard depth < maxDepth else { throw Failure(description: "\(path): nested deeper than \(maxDepth) directories") }
        for name in names(src) {
            guard stats.files + stats.directories + stats.symlinks + stats.skipped < maxEntries else {
                throw Failure(description: "more than \(maxEntries) entries under \(path)")
            }
            var st = stat()
            guard fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { stats.skipped += 1; continue }
            let mode = mode_t(st.st_mode) & 0o777
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                guard let s = Descriptor.open(at: src, name, dirFlags) else { stats.skipped += 1; continue }
                guard mkdirat(dst, name, 0o700) == 0 else { throw Failure(description: "cannot create \(name) in the copy of \(path)") }
                guard let d = Descriptor.open(at: dst, name, dirFlags) else { throw Failure(description: "cannot open the copy of \(path)/\(name)") }
                stats.directories += 1
                try copyDir(s.raw, d.raw, path: path + "/" + name, depth: depth + 1, stats: &stats)
                fchmod(d.raw, mode | 0o700)
            case S_IFREG:
                guard let s = Descriptor.open(at: src, name, O_RDONLY | AP_O_NOFOLLOW | O_CLOEXEC | AP_O_NONBLOCK) else {
                    stats.skipped += 1; continue
                }
                guard let d = Descriptor.open(at: dst, name, O_WRONLY | O_CREAT | O_EXCL | AP_O_NOFOLLOW | O_CLOEXEC, mode: mode | 0o600) else {
                    throw Failure(description: "cannot create the copy of \(path)/\(name)")
                }
                // A reflink where the filesystem can, else the bytes.
                if ap_ficlone(d.raw, s.raw) == 0 { stats.reflinked += 1 }
                else if !pump(s.raw, d.raw) { throw Failure(description: "cannot copy \(path)/\(name): \(String(cString: strerror(errno)))") }
                fchmod(d.raw, mode)
                stats.files += 1
            case S_IFLNK:
                guard let target = readLink(src, name), symlinkat(target, dst, name) == 0 else { stats.skipped += 1; continue }
                stats.symlinks += 1
            default:
                stats.skipped += 1
            }
        }
    }

    static func pump(_ from: Int32, _ to: Int32) -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(from, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return false }
            if n == 0 { return true }
            var off = 0
            while off < n {
                let w = buf[off..<n].withUnsafeBytes { write(to, $0.baseAddress, $0.count) }
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { return false }
                off += w
            }
        }
    }

    static func readLink(_ dir: Int32, _ name: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlinkat(dir, name, &buf, 4096)
        guard n >= 0 else { return nil }
        return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes the tree at `path` (never following a symlink out of it).
    public static func remove(_ path: String) {
        guard let fd = Descriptor.open(path, dirFlags) else { unlink(path); return }
        removeContents(fd.raw, depth: 0)
        fd.close()
        rmdir(path)
    }

    static func removeContents(_ fd: Int32, depth: Int) {
        guard depth < maxDepth else { return }
        for name in names(fd) {
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFDIR {
                if let d = Descriptor.open(at: fd, name, dirFlags) { fchmod(d.raw, 0o700); removeContents(d.raw, depth: depth + 1) }
                unlinkat(fd, name, AT_REMOVEDIR)
            } else {
                unlinkat(fd, name, 0)
            }
        }
    }
}

extension TreeCopy {
    /// One difference between a project and its throwaway copy, by path relative to both.
    public enum Change: Sendable, Equatable, CustomStringConvertible {
        case write(String), link(String), makeDirectory(String), remove(String)
        public var path: String {
            switch self { case .write(let p), .link(let p), .makeDirectory(let p), .remove(let p): p }
        }
        public var description: String {
            switch self {
            case .write(let p): "write \(p)"
            case .link(let p): "symlink \(p)"
            case .makeDirectory(let p): "mkdir \(p)"
            case .remove(let p): "remove \(p)"
            }
        }
    }

    /// What differs from `project` in `copy`, leaving out every `.git` (git's
    /// internals in a copy, a nested repository's too, are the agent's; their
    /// hooks and config must never reach the project).
    public static func changes(project: String, copy: String) throws(Failure) -> [Change] {
        guard let p = Descriptor.open(project, dirFlags), let c = Descriptor.open(copy, dirFlags) else {
            throw Failure(description: "cannot open \(project) or its copy")
        }
        var out: [Change] = []
        diff(p.raw, c.raw, prefix: "", depth: 0, into: &out)
        return out
    }

    static func kind(_ fd: Int32, _ name: String) -> stat? {
        var st = stat()
        return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    static func sameBytes(_ a: Int32, _ b: Int32, _ name: String) -> Bool {
        guard let fx = Descriptor.open(at: a, name, O_RDONLY | AP_O_NOFOLLOW | O_CLOEXEC | AP_O_NONBLOCK),
              let fy = Descriptor.open(at: b, name, O_RDONLY | AP_O_NOFOLLOW | O_CLOEXEC | AP_O_NONBLOCK) else { return false }
        let x = fx.raw, y = fy.raw
        var bx = [UInt8](repeating: 0, count: 65536), by = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(x, &bx, bx.count), m = read(y, &by, by.count)
            if n != m || n < 0 { return false }
            if n == 0 { return true }
            if bx[..<n] != by[..<m] { return false }
        }
    }

    static func diff(_ p: Int32, _ c: Int32, prefix: String, depth: Int, into out: inout [Change]) {
        guard depth < maxDepth else { return }
        let inCopy = names(c).sorted(), inProject = Set(names(p))
        for name in inCopy where name != ".git" {
            let rel = prefix + name
            guard let cs = kind(c, name) else { continue }
            let ps = kind(p, name)
            switch cs.st_mode & S_IFMT {
            case S_IFDIR:
                if let ps, ps.st_mode & S_IFMT == S_IFDIR {
                    if let pd = Descriptor.open(at: p, name, dirFlags), let cd = Descriptor.open(at: c, name, dirFlags) {
                        diff(pd.raw, cd.raw, prefix: rel + "/", depth: depth + 1, into: &out)
                    }
                } else {
                    if ps != nil { out.append(.remove(rel)) }
                    out.append(.makeDirectory(rel))
                    if let cd = Descriptor.open(at: c, name, dirFlags) { addAll(cd.raw, prefix: rel + "/", depth: depth + 1, into: &out) }
                }
            case S_IFREG:
                if let ps, ps.st_mode & S_IFMT == S_IFREG, ps.st_size == cs.st_size, sameBytes(p, c, name) { continue }
                if let ps, ps.st_mode & S_IFMT == S_IFDIR { out.append(.remove(rel)) }
                out.append(.write(rel))
            case S_IFLNK:
                if let ps, ps.st_mode & S_IFMT == S_IFLNK, readLink(p, name) == readLink(c, name) { continue }
                if ps != nil { out.append(.remove(rel)) }
                out.append(.link(rel))
            default: continue
            }
        }
        let copied = Set(inCopy)
        for name in inProject.sorted() where !copied.contains(name) && name != ".git" {
            // FIFOs, sockets and devices were never copied: their absence is no removal.
            guard let st = kind(p, name), [S_IFREG, S_IFDIR, S_IFLNK].contains(st.st_mode & S_IFMT) else { continue }
            out.append(.remove(prefix + name))
        }
    }

    static func addAll(_ c: Int32, prefix: String, depth: Int, into out: inout [Change]) {
        guard depth < maxDepth else { return }
        for name in names(c).sorted() where name != ".git" {
            guard let st = kind(c, name) else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                out.append(.makeDirectory(prefix + name))
                if let d = Descriptor.open(at: c, name, dirFlags) { addAll(d.raw, prefix: prefix + name + "/", depth: depth + 1, into: &out) }
            case S_IFREG: out.append(.write(prefix + name))
            case S_IFLNK: out.append(.link(prefix + name))
            default: continue
            }
        }
    }

    /// Carries `changes` out on `project`, reading from `copy`. Each parent is
    /// opened one component at a time without following symlinks, so a symlink
    /// in the copy or the project never sends a write outside the project.
    /// Returns the changes that could not be made, with why.
    public static func apply(_ changes: [Change], project: String, copy: String) -> [String] {
        var failed: [String] = []
        /// The directory holding `rel` under `root`, opened one component at a time.
        func parent(_ root: String, _ rel: String) -> Descriptor? {
            let parts = rel.split(separator: "/").map(String.init)
            guard !parts.isEmpty, !parts.contains(".."), !parts.contains(".") else { return nil }
            guard var fd = Descriptor.open(root, dirFlags) else { return nil }
            for part in parts.dropLast() {
                guard let next = Descriptor.open(at: fd.raw, part, dirFlags) else { return nil }
                fd = next    // closes the one above
            }
            return fd
        }
        for change in changes {
            let rel = change.path
            let name = rel.split(separator: "/").last.map(String.init) ?? ""
            guard let projectDir = parent(project, rel) else { failed.append("\(change): its directory is not a plain directory in the project"); continue }
            let pfd = projectDir.raw
            switch change {
            case .remove:
                if let st = kind(pfd, name), st.st_mode & S_IFMT == S_IFDIR {
                    if let d = Descriptor.open(at: pfd, name, dirFlags) { removeContents(d.raw, depth: 0) }
                    if unlinkat(pfd, name, AT_REMOVEDIR) != 0 { failed.append("\(change): \(String(cString: strerror(errno)))") }
                } else if unlinkat(pfd, name, 0) != 0 && errno != ENOENT { failed.append("\(change): \(String(cString: strerror(errno)))") }
            case .makeDirectory:
                if mkdirat(pfd, name, 0o755) != 0 && errno != EEXIST { failed.append("\(change): \(String(cString: strerror(errno)))") }
            case .link:
                guard let copyDir = parent(copy, rel) else { failed.append("\(change): gone from the copy"); continue }
                guard let target = readLink(copyDir.raw, name), symlinkat(target, pfd, name) == 0 else {
                    failed.append("\(change): \(String(cString: strerror(errno)))"); continue
                }
            case .write:
                guard let copyDir = parent(copy, rel) else { failed.append("\(change): gone from the copy"); continue }
                guard let s = Descriptor.open(at: copyDir.raw, name, O_RDONLY | AP_O_NOFOLLOW | O_CLOEXEC | AP_O_NONBLOCK) else {
                    failed.append("\(change): not a regular file in the copy"); continue
                }
                var st = stat()
                guard fstat(s.raw, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { failed.append("\(change): not a regular file in the copy"); continue }
                guard let d = Descriptor.open(at: pfd, name, O_WRONLY | O_CREAT | O_TRUNC | AP_O_NOFOLLOW | O_CLOEXEC | AP_O_NONBLOCK,
                                              mode: mode_t(st.st_mode) & 0o777) else {
                    failed.append("\(change): \(String(cString: strerror(errno)))"); continue
                }
                var dt = stat()
                guard fstat(d.raw, &dt) == 0, dt.st_mode & S_IFMT == S_IFREG else { failed.append("\(change): not a regular file in the project"); continue }
                if !pump(s.raw, d.raw) { failed.append("\(change): \(String(cString: strerror(errno)))") }
                fchmod(d.raw, mode_t(st.st_mode) & 0o777)
            }
        }
        return failed
    }
}
