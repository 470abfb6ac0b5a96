import AgentpenPolicy
import Glibc

/// Finds the process inside the sandbox that owns a TCP socket (`--ask`'s
/// prompt). Reads /proc only: the namespace's TCP table through a process in it
/// (the namespace helper), then the descriptors of the processes in that
/// network namespace. Best effort: nil when anything is missing.
public enum SocketOwners {
    public static func owner(netnsPID: Int32, local: IPAddress, port: UInt16) -> String? {
        guard let table = readText("/proc/\(netnsPID)/net/tcp", limit: 1 << 22),
              let inode = SocketOwner.inode(inTCPTable: table, local: local, port: port) else { return nil }
        let ns = readLink("/proc/\(netnsPID)/ns/net")
        let wanted = "socket:[\(inode)]"
        guard let proc = opendir("/proc") else { return nil }
        defer { closedir(proc) }
        var scanned = 0
        while let entry = readdir(proc), scanned < 100_000 {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = Int32(name), pid != netnsPID else { continue }
            scanned += 1
            guard ns != nil, readLink("/proc/\(pid)/ns/net") == ns, let fds = opendir("/proc/\(pid)/fd") else { continue }
            defer { closedir(fds) }
            var n = 0
            while let fd = readdir(fds), n < 65536 {
                n += 1
                let f = withUnsafeBytes(of: fd.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard f != ".", f != "..", readLink("/proc/\(pid)/fd/\(f)") == wanted else { continue }
                let comm = readText("/proc/\(pid)/comm", limit: 64) ?? "?"
                return SocketOwner.describe(pid: pid, comm: comm)
            }
        }
        return nil
    }

    static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 256)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func readText(_ path: String, limit: Int) -> String? {
        guard let file = Descriptor.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) else { return nil }
        let fd = file.raw
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
