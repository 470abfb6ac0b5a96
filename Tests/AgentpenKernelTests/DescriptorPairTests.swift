import AgentpenKernel
import AgentpenSystem
import Glibc
import Testing

/// The owned pairs and lists close each descriptor exactly once, when their
/// owner is done: seen from the other end of a pipe or socket pair (EOF), not
/// by the number (a test running in parallel could reuse it).
@Suite struct DescriptorPairTests {
    /// Nonblocking: 0 at EOF, -1 with EAGAIN while a writer is open.
    static func readEnd(_ fd: Int32) -> (Int, Int32) {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
        if n < 0 && errno == ENOTSOCK {
            let m = read(fd, &byte, 1)
            return (m, m < 0 ? errno : 0)
        }
        return (n, n < 0 ? errno : 0)
    }

    @Test func aPipeIsCloseOnExecAndItsEndsCloseWithTheirOwner() throws {
        let p = try Descriptor.pipe(nonBlocking: true)
        let read = p.read
        #expect(fcntl(read.raw, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(read.raw, F_GETFL) & O_NONBLOCK != 0)
        do {
            let write = p.write
            #expect(fcntl(write.raw, F_GETFD) & FD_CLOEXEC != 0)
            #expect(Self.readEnd(read.raw) == (-1, EAGAIN))
            _ = consume write
        }
        #expect(Self.readEnd(read.raw) == (0, 0))
    }

    @Test func aSocketPairIsSeqpacketAndCloseOnExec() throws {
        let pair = try Descriptor.socketPair()
        let first = pair.first
        var type: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        #expect(getsockopt(first.raw, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == Int32(SOCK_SEQPACKET.rawValue))
        #expect(fcntl(first.raw, F_GETFD) & FD_CLOEXEC != 0)
        #expect(Self.readEnd(first.raw) == (-1, EAGAIN))
        pair.second.close()
        #expect(Self.readEnd(first.raw) == (0, 0))
    }

    @Test func aListClosesWhatItRemovesAndAtItsEndButNotWhatItHandedOn() throws {
        let a = try Descriptor.pipe(nonBlocking: true), b = try Descriptor.pipe(nonBlocking: true),
            c = try Descriptor.pipe(nonBlocking: true)
        let ra = a.read, rb = b.read, rc = c.read
        let handed: Int32
        do {
            var list = DescriptorList()
            let dropped = b.write.raw
            list.append(a.write); list.append(b.write); list.append(c.write)
            list.removeAll { $0 == dropped }
            #expect(Self.readEnd(rb.raw) == (0, 0))
            #expect(Self.readEnd(ra.raw) == (-1, EAGAIN))
            handed = list.removeFirst().take()
            #expect(list.count == 1)
        }
        #expect(Self.readEnd(rc.raw) == (0, 0))
        #expect(Self.readEnd(ra.raw) == (-1, EAGAIN))
        close(handed)
        #expect(Self.readEnd(ra.raw) == (0, 0))
    }

    /// A child's descriptors: the owned ones close with `closeAll`, lent ones stay.
    @Test func childDescriptorsCloseOnlyWhatTheyOwn() throws {
        let owned = try Descriptor.pipe(nonBlocking: true), lent = try Descriptor.pipe(nonBlocking: true)
        let ro = owned.read, rl = lent.read
        let lentWrite = lent.write
        var child = ChildDescriptors()
        let ownedNumber = owned.write.raw
        child.add(owned.write, at: 1)
        child.add(borrowing: ownedNumber, at: 2)
        child.add(borrowing: lentWrite.raw, at: 3)
        #expect(child.mapping.map(\.dst) == [1, 2, 3])
        child.closeAll()
        #expect(child.mapping.isEmpty)
        #expect(Self.readEnd(ro.raw) == (0, 0))
        #expect(Self.readEnd(rl.raw) == (-1, EAGAIN))
        _ = consume lentWrite
        #expect(Self.readEnd(rl.raw) == (0, 0))
    }
}
