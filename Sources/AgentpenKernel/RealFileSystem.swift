import AgentpenPolicy
import CShim
import Glibc
import Synchronization

/// Answers the planner's questions from the real filesystem (lstat, readlink, access).
public struct RealFileSystem: FileSystemView {
    public init() {}

    public func kind(_ path: String) -> FileKind {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .file
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    public func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buf, 4096)
        guard n > 0 else { return nil }
        return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func head(_ path: String, bytes: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return [] }
        let file = Descriptor(fd)
        var buf = [UInt8](repeating: 0, count: bytes)
        let n = read(file.raw, &buf, bytes)
        return n > 0 ? Array(buf[..<n]) : []
    }

    public func isExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }

    public func isReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }

    public func list(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// Small host queries the runner needs.
public enum Host {
    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// Opens the regular file `path` for reading, for bubblewrap to copy
    /// (`--file`): never following a link at its last component, and without
    /// blocking (a fifo put there since the plan would wait for a writer);
    /// anything but a regular file is refused with -EINVAL. Returns the
    /// descriptor (close-on-exec) or -errno.
    public static func openRegularFile(_ path: String) -> Int32 {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return -errno }
        let file = Descriptor(fd)
        var st = stat()
        guard fstat(file.raw, &st) == 0 else { return -errno }
        guard st.st_mode & S_IFMT == S_IFREG else { return -EINVAL }
        return file.take()
    }

    /// Opens `path` (absolute, normalized) as an O_PATH descriptor one component
    /// at a time from `/`, refusing any component that is a symlink, so what is
    /// opened is the file the planner checked even if a link was swapped in
    /// since. Returns the descriptor (close-on-exec) or -errno (-ELOOP for a link).
    public static func openWithoutSymlinks(_ path: String) -> Int32 {
        let flags = Int32(AP_O_PATH) | O_NOFOLLOW | O_CLOEXEC
        let root = open("/", flags | O_DIRECTORY)
        guard root >= 0 else { return -errno }
        var current = Descriptor(root)
        for part in path.split(separator: "/") {
            guard part != "..", part != "." else { return -EINVAL }
            let fd = openat(current.raw, String(part), flags)
            guard fd >= 0 else { let e = errno; return -e }
            let next = Descriptor(fd)
            var st = stat()
            guard fstat(next.raw, &st) == 0 else { let e = errno; return -e }
            if st.st_mode & S_IFMT == S_IFLNK { return -ELOOP }
            current = next
        }
        return current.take()
    }

    public static var selfExecutable: String {
        RealFileSystem().readLink("/proc/self/exe") ?? CommandLine.arguments[0]
    }

    /// Directories of the shared libraries this process has mapped.
    public static func loadedLibraryDirs() -> [String] {
        libraryDirs(inMaps: readBytes("/proc/self/maps") ?? [])
    }

    /// The directories of the `.so` paths in a /proc/PID/maps text, each once, in order. Scanned
    /// as bytes: this runs on every start, and splitting the whole text into Strings cost
    /// ~6 M instructions (a fifth of agentpen's own work before the sandbox starts).
    public static func libraryDirs(inMaps maps: [UInt8]) -> [String] {
        let slash = UInt8(ascii: "/"), newline = UInt8(ascii: "\n")
        let so: [UInt8] = Array(".so".utf8)
        var dirs: [String] = []
        var start = 0
        while start < maps.count {
            let end = maps[start...].firstIndex(of: newline) ?? maps.count
            defer { start = end + 1 }
            // The path is the line from its first "/" on (the fields before hold none).
            guard let path = maps[start..<end].firstIndex(of: slash) else { continue }
            let line = maps[path..<end]
            guard line.count >= so.count,
                  (line.startIndex...(line.endIndex - so.count)).contains(where: { line[$0..<($0 + so.count)].elementsEqual(so) })
            else { continue }
            let dir = Paths.parent(String(decoding: line, as: UTF8.self))
            if !dirs.contains(dir) { dirs.append(dir) }
        }
        return dirs
    }

    public static func readFile(_ path: String, limit: Int = 1 << 20) -> String? {
        readBytes(path, limit: limit).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A file's first `limit` bytes (or a little more: whole reads), nil if it cannot be opened.
    public static func readBytes(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let file = Descriptor(fd)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = read(file.raw, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buf[..<n]
        }
        return out
    }

    public static func userName(uid: uid_t) -> String? {
        guard let pw = getpwuid(uid) else { return nil }
        return String(cString: pw.pointee.pw_name)
    }

    public static func passwdHome(uid: uid_t) -> String? {
        guard let pw = getpwuid(uid) else { return nil }
        return String(cString: pw.pointee.pw_dir)
    }

    public static var environment: [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}

/// The real filesystem as one planning step sees it: each path's kind and link
/// target read once (a networked run's plan asked lstat 616 times, 427 of them
/// again for a path already asked). Only for a plan made in one go, before
/// anything is created: a step that creates or changes files starts a new one.
/// The plan it makes is still only a plan: what bubblewrap and agentpen open
/// later is checked again as it is opened.
public final class SnapshotFileSystem: FileSystemView, @unchecked Sendable {
    private let real = RealFileSystem()
    private let lock = Mutex<(kinds: [String: FileKind], links: [String: String?])>(([:], [:]))

    public init() {}

    public func kind(_ path: String) -> FileKind {
        if let k = lock.withLock({ $0.kinds[path] }) { return k }
        let k = real.kind(path)
        lock.withLock { $0.kinds[path] = k }
        return k
    }

    public func readLink(_ path: String) -> String? {
        if let l = lock.withLock({ $0.links[path] }) { return l }
        let l = real.readLink(path)
        lock.withLock { $0.links[path] = .some(l) }
        return l
    }

    public func head(_ path: String, bytes: Int) -> [UInt8] { real.head(path, bytes: bytes) }
    public func isExecutable(_ path: String) -> Bool { real.isExecutable(path) }
    public func isReadable(_ path: String) -> Bool { real.isReadable(path) }
    public func list(_ directory: String) -> [String] { real.list(directory) }
}
