import AgentpenKernel
import AgentpenPolicy
import Glibc
import Testing

/// The git guards' bind sources are opened component by component without
/// following symlinks, so a link swapped in after planning cannot redirect a bind.
@Suite struct GitPlanDescriptorTests {
    final class Dir {
        let path: String
        init() throws {
            let base = Host.realPath(Host.environment["TMPDIR"] ?? "/tmp") ?? "/tmp"
            var template = Array((base + "/open.XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw Failure("mkdtemp failed") }
            path = String(cString: made)
        }
        deinit {
            for p in ["a/link/x", "a/b/x"] { unlink(path + "/" + p) }
            for p in ["a/link", "a/dangling", "a/b"] { unlink(path + "/" + p); rmdir(path + "/" + p) }
            rmdir(path + "/a"); rmdir(path)
        }
    }
    struct Failure: Error { var m: String; init(_ m: String) { self.m = m } }

    static func target(of fd: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/fd/\(fd)", &buf, 4096)
        return n > 0 ? String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }

    @Test func opensTheCheckedPathAndRefusesSymlinks() throws {
        let d = try Dir()
        #expect(mkdir(d.path + "/a", 0o755) == 0)
        #expect(mkdir(d.path + "/a/b", 0o755) == 0)
        let file = open(d.path + "/a/b/x", O_WRONLY | O_CREAT, 0o644)
        #expect(file >= 0)
        close(file)
        #expect(symlink("b", d.path + "/a/link") == 0)
        #expect(symlink("nowhere", d.path + "/a/dangling") == 0)

        for path in [d.path + "/a/b", d.path + "/a/b/x"] {
            let fd = Host.openWithoutSymlinks(path)
            #expect(fd >= 0, "\(path): \(fd)")
            #expect(Self.target(of: fd) == path)
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
            close(fd)
        }
        // A symlink as the last component or on the way is refused, not followed.
        #expect(Host.openWithoutSymlinks(d.path + "/a/link") == -ELOOP)
        #expect(Host.openWithoutSymlinks(d.path + "/a/link/x") == -ELOOP)
        #expect(Host.openWithoutSymlinks(d.path + "/a/dangling") == -ELOOP)
        #expect(Host.openWithoutSymlinks(d.path + "/a/missing") == -ENOENT)
        #expect(Host.openWithoutSymlinks(d.path + "/a/b/../b") == -EINVAL)
    }
}
