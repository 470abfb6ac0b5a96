import AgentpenSystem
import Glibc
import Testing

/// The owning descriptor closes exactly when its owner is done with it. Each
/// test owns a pipe's write end and watches the read end: EOF there means the
/// write end was closed (a descriptor number alone could be reused by a test
/// running in parallel).
@Suite struct DescriptorTests {
    /// A pipe: (read end, write end), both close-on-exec, the read end nonblocking.
    static func makePipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        return (fds[0], fds[1])
    }

    /// 0 at EOF (every write end closed), -1 with EAGAIN while one is open.
    static func readEnd(_ fd: Int32) -> (Int, Int32) {
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        return (n, n < 0 ? errno : 0)
    }

    static func write(_ d: borrowing Descriptor) -> Int {
        var byte: UInt8 = 7
        return Glibc.write(d.raw, &byte, 1)
    }

    @Test func closesAtTheEndOfItsScope() throws {
        let (r, w) = try Self.makePipe()
        defer { Glibc.close(r) }
        do {
            let owned = Descriptor(w)
            #expect(Self.write(owned) == 1)
            #expect(Self.readEnd(r).0 == 1)
            #expect(Self.readEnd(r) == (-1, EAGAIN))   // still open while owned lives
        }
        #expect(Self.readEnd(r) == (0, 0))
    }

    @Test func closeClosesNow() throws {
        let (r, w) = try Self.makePipe()
        defer { Glibc.close(r) }
        let owned = Descriptor(w)
        #expect(Self.readEnd(r) == (-1, EAGAIN))
        owned.close()
        #expect(Self.readEnd(r) == (0, 0))
    }

    @Test func takeHandsOwnershipOn() throws {
        let (r, w) = try Self.makePipe()
        defer { Glibc.close(r) }
        var raw: Int32 = -1
        do {
            let owned = Descriptor(w)
            raw = owned.take()
        }
        #expect(raw == w)
        // Not closed by the Descriptor: the new owner still writes, then closes.
        var byte: UInt8 = 1
        #expect(Glibc.write(raw, &byte, 1) == 1)
        #expect(Self.readEnd(r).0 == 1)
        #expect(Self.readEnd(r) == (-1, EAGAIN))
        Glibc.close(raw)
        #expect(Self.readEnd(r) == (0, 0))
    }

    @Test func aNegativeNumberIsRefused() async {
        await #expect(processExitsWith: .failure) {
            _ = Descriptor(-1)
        }
    }
}
