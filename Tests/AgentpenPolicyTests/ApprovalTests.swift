import Testing
@testable import AgentpenPolicy

/// Issue 13 (ask): the control line and the book of held connections.
@Suite struct ApprovalTests {
    @Test func controlLinesAreParsedAsUntrusted() {
        #expect(ControlCommand.parse("allow API.Example.com once\n") == .command(ControlCommand(host: "api.example.com", choice: .once)))
        #expect(ControlCommand.parse("allow a.test save-project") == .command(ControlCommand(host: "a.test", choice: .saveProject)))
        for bad in ["allow *.example.com session", "allow 10.0.0.1 once", "allow localhost once", "allow a.test:22 once",
                    "allow a.test always", "allow a.test", "deny a.test once", "allow a.test once extra",
                    "allow \u{1b}[2J.test once", "allow " + String(repeating: "a", count: 600) + " once", ""] {
            guard case .invalid = ControlCommand.parse(bad) else { Issue.record("accepted \(bad.debugDescription)"); continue }
        }
        let c = ControlCommand(host: "a.test", choice: .deny)
        #expect(ControlCommand.parse(c.line) == .command(c))
    }

    @Test func onceAnswersWhatIsHeldAndAsksAgain() {
        var b = ApprovalBook()
        #expect(b.request("a.test") == .held(id: 1))
        #expect(b.request("a.test") == .held(id: 2))
        #expect(b.request("b.test") == .held(id: 3))
        #expect(b.decide(ControlCommand(host: "a.test", choice: .once)) == .answered([1, 2]))
        #expect(b.pending.map(\.host) == ["b.test"])
        #expect(b.request("a.test") == .held(id: 4), "once does not outlast the connections it answered")
    }

    @Test func sessionAndSavesLetLaterConnectionsThrough() {
        for choice in [ApprovalChoice.session, .saveAgent, .saveProject] {
            var b = ApprovalBook()
            #expect(b.request("a.test") == .held(id: 1))
            #expect(b.decide(ControlCommand(host: "a.test", choice: choice)) == .answered([1]))
            #expect(b.request("a.test") == .allowed)
            #expect(b.request("b.test") == .held(id: 2), "only that host")
        }
        // Ahead of any connection.
        var b = ApprovalBook()
        #expect(b.decide(ControlCommand(host: "a.test", choice: .session)) == .answered([]))
        #expect(b.request("a.test") == .allowed)
    }

    @Test func denyAndTimeout() {
        var b = ApprovalBook()
        #expect(b.decide(ControlCommand(host: "a.test", choice: .deny)) == .nothingHeld)
        #expect(b.decide(ControlCommand(host: "a.test", choice: .once)) == .nothingHeld)
        #expect(b.request("a.test") == .held(id: 1))
        #expect(b.decide(ControlCommand(host: "a.test", choice: .deny)) == .answered([1]))
        #expect(b.request("a.test") == .held(id: 2), "deny does not outlast the connection either")
        #expect(b.expire(2) && !b.expire(2) && !b.expire(1))
        #expect(b.pending.isEmpty)
        // A decision after the time ran out answers nothing.
        #expect(b.decide(ControlCommand(host: "a.test", choice: .once)) == .nothingHeld)
    }

    @Test func heldConnectionsAreBounded() {
        var b = ApprovalBook()
        for i in 0..<ApprovalBook.maxPending { #expect(b.request("h\(i).test") != .full) }
        #expect(b.request("one-more.test") == .full)
    }
}

/// Issue 13 (ask): the prompt's process, from /proc/net/tcp.
@Suite struct SocketOwnerTests {
    static let table = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1111 1 0
           1: 0110007F:A1B2 0110007F:01BB 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0
           2: 0100007F:A1B2 0110007F:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0
           3: 0110007F:01BB 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000  1000        0 5353 1 0
        """

    @Test func theClientSocketsInodeIsFound() {
        #expect(SocketOwner.inode(inTCPTable: Self.table, local: .loopbackV4, port: 0xA1B2) == 4242)
        // TIME_WAIT rows (inode 0) are skipped; the accepted end is not the client's.
        #expect(SocketOwner.inode(inTCPTable: Self.table, local: IPAddress(127, 0, 16, 1), port: 0xA1B2) == nil)
        #expect(SocketOwner.inode(inTCPTable: Self.table, local: IPAddress(127, 0, 16, 1), port: 443) == 5353)
        #expect(SocketOwner.inode(inTCPTable: "garbage", local: .loopbackV4, port: 1) == nil)
    }

    /// The splice hop's wait for pasta: only a listening row (0A) counts, on
    /// exactly that address and port.
    @Test func aListenerIsToldFromOtherStates() {
        #expect(SocketOwner.listens(inTCPTable: Self.table, local: IPAddress(0, 0, 0, 0), port: 443))
        #expect(!SocketOwner.listens(inTCPTable: Self.table, local: .loopbackV4, port: 443))
        #expect(!SocketOwner.listens(inTCPTable: Self.table, local: IPAddress(127, 0, 16, 1), port: 443), "established, not listening")
        #expect(!SocketOwner.listens(inTCPTable: Self.table, local: IPAddress(0, 0, 0, 0), port: 444))
        #expect(!SocketOwner.listens(inTCPTable: "garbage", local: .loopbackV4, port: 443))
    }

    @Test func theProcessNameIsCleaned() {
        #expect(SocketOwner.describe(pid: 7, comm: "curl\n") == "pid 7 curl")
        #expect(SocketOwner.describe(pid: 7, comm: "\u{1b}[2Jevil\u{202e}") == "pid 7 2Jevil")
    }
}
