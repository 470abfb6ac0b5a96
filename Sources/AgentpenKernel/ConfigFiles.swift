import AgentpenPolicy
import CShim
import Glibc

/// Reading and writing agentpen's own small files (config files, trust
/// records) the careful way: a config file may be a project's, so hostile.
public enum ConfigFiles {
    public enum Read: Sendable, Equatable {
        case missing
        case bytes([UInt8])
        /// Not read, and why (a symlink, not a regular file, too large).
        case refused(String)
    }

    /// Reads at most `limit` bytes of `path`: the last component is never
    /// followed (O_NOFOLLOW), a FIFO or device cannot block us (O_NONBLOCK,
    /// then regular files only), and a larger file is refused whole.
    public static func read(_ path: String, limit: Int) -> Read {
        guard let file = Descriptor.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY) else {
            switch errno {
            case ENOENT, ENOTDIR: return .missing
            case ELOOP: return .refused("it is a symbolic link (config files are read without following links)")
            case let e: return .refused(String(cString: strerror(e)))
            }
        }
        let fd = file.raw
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .refused(String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .refused("not a regular file") }
        guard st.st_size <= limit else { return .refused("larger than \(limit / 1024) KiB") }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count <= limit {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .refused(String(cString: strerror(errno))) }
            if n == 0 { break }
            out += buf[..<n]
        }
        guard out.count <= limit else { return .refused("larger than \(limit / 1024) KiB") }
        return .bytes(out)
    }

    /// Creates `path` with `content`, refusing to replace anything (O_EXCL,
    /// no symlink followed). Returns nil or what went wrong.
    public static func createNew(_ path: String, _ content: String, mode: mode_t = 0o644) -> String? {
        guard let file = Descriptor.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode: mode) else {
            return errno == EEXIST ? "already exists" : String(cString: strerror(errno))
        }
        return writeAll(file.raw, Array(content.utf8))
    }

    /// Replaces `dir/name` with `content` atomically (a temporary file renamed
    /// over it), making `dir` and its missing parents with mode 0700.
    public static func replace(dir: String, name: String, _ content: String) -> String? {
        replace(dir: dir, name: name, bytes: Array(content.utf8))
    }

    public static func replace(dir: String, name: String, bytes: [UInt8]) -> String? {
        var built = ""
        for part in dir.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o700) != 0 && errno != EEXIST { return "cannot create \(built): \(String(cString: strerror(errno)))" }
        }
        let tmp = "\(dir)/.\(name).\(getpid()).tmp"
        guard let file = Descriptor.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode: 0o600) else {
            return "cannot write in \(dir): \(String(cString: strerror(errno)))"
        }
        if let e = writeAll(file.raw, bytes) { file.close(); unlink(tmp); return e }
        guard fsync(file.raw) == 0 else { let e = errno; file.close(); unlink(tmp); return String(cString: strerror(e)) }
        // close(2) can report a write the disk refused: checked, like fsync.
        let closed = file.close()
        guard closed == 0 else { unlink(tmp); return String(cString: strerror(closed)) }
        guard rename(tmp, dir + "/" + name) == 0 else { let e = errno; unlink(tmp); return String(cString: strerror(e)) }
        return nil
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> String? {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return String(cString: strerror(errno)) }
            off += n
        }
        return nil
    }
}
