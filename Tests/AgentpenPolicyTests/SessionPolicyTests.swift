@testable import AgentpenPolicy
import Testing

@Suite struct SessionPolicyTests {
    @Test func idsSortByStartTimeAndRoundTrip() {
        // 2026-12-01 12:34:56 UTC
        let t: Int64 = 1_796_128_496
        let id = SessionPolicy.makeID(epochSeconds: t, pid: 4242)
        #expect(id == "20261201-123456-4242")
        #expect(SessionPolicy.startTime(ofID: id) == t)
        #expect(SessionPolicy.makeID(epochSeconds: 0, pid: 1) == "19700101-000000-1")
        #expect(SessionPolicy.makeID(epochSeconds: 951_782_400, pid: 1) == "20000229-000000-1")
        for bad in ["", "../x", "20261201-123456", "20261201-123456-", "2026120-123456-1", "20261201-12345a-1",
                    "20261201-123456-1/..", "20261301-000000-1", " 20261201-123456-1"] {
            #expect(SessionPolicy.startTime(ofID: bad) == nil, "\(bad)")
        }
        #expect(!SessionPolicy.isValidID("20261201-123456-12345678901"))
        // Digits are ASCII digits: a digit with a combining mark is one Character
        // (eight of them looked like a date) but not a digit.
        for bad in ["2026120\u{31}\u{301}-123456-1", "20261201-123456-\u{661}", "20261201\u{2011}123456-1"] {
            #expect(!SessionPolicy.isValidID(bad), "\(bad)")
        }
        #expect(SessionPolicy.isValidID("20261201-123456-1234567890"))
    }

    @Test func pruneKeepsTheNewestAndDropsTheOld() {
        let now: Int64 = 1_796_128_496
        let ids = (0..<60).map { SessionPolicy.makeID(epochSeconds: now - 3600 + Int64($0), pid: 7) }
        let old = SessionPolicy.makeID(epochSeconds: now - 31 * 86_400, pid: 7)
        let names = ids + [old, "notes.txt", ".hidden"]
        let gone = Set(SessionPolicy.prune(names, now: now))
        #expect(gone.contains(old))
        #expect(gone == Set(ids.prefix(10)).union([old]))
        #expect(!gone.contains("notes.txt"), "a name agentpen did not make is left alone")
        #expect(SessionPolicy.newest(names) == ids.last)
        #expect(SessionPolicy.newest(["x"]) == nil)
    }

    @Test func permitsAreOnlyForNamesAllowWouldAccept() {
        #expect(Permit.allow("Api.Example.com") == "--allow api.example.com")
        #expect(Permit.allowPrivate("corp.example") == "--allow-private corp.example")
        for bad in ["1.2.3.4", "localhost", "a..b", "x\nagentpen: y", "-rf", "a b"] {
            #expect(Permit.allow(bad) == nil, "\(bad)")
        }
        #expect(Permit.parse("--allow a.example")?.name == "a.example")
        #expect(Permit.parse("--allow-private a.example")?.allowsPrivateUpstream == true)
        #expect(Permit.parse("--allow 1.2.3.4") == nil && Permit.parse("--mount /") == nil && Permit.parse("--allow a b") == nil)
        let s = Permit.suggestion(["--allow b.example", "--allow a.example", "--allow-private a.example", "--allow b.example", "junk"])
        #expect(s?.flags == "--allow b.example --allow-private a.example")
        #expect(s?.config.first == "host b.example")
        #expect(Permit.suggestion(["junk"]) == nil)
    }

    @Test func xdgPathsFollowTheSpecification() {
        #expect(XDGPaths.stateHome(env: [:], home: "/home/u") == "/home/u/.local/state")
        #expect(XDGPaths.stateHome(env: ["XDG_STATE_HOME": "relative"], home: "/home/u") == "/home/u/.local/state")
        #expect(XDGPaths.sessions(env: ["XDG_STATE_HOME": "/s/"], home: "/home/u") == "/s/agentpen/sessions")
        #expect(XDGPaths.configHome(env: [:], home: "/home/u") == "/home/u/.config")
    }

    @Test func visibleSourcesIncludeReadOnlyBindsAndDescriptors() {
        var plan = SandboxPlan()
        plan.bwrap = [.bind(source: "/usr", destination: "/usr", readOnly: true), .bind(source: "/p", destination: "/p", readOnly: false),
                      .tmpfs("/tmp", size: nil, mode: nil), .bindOpened("/p/.git/hooks", readOnly: true),
                      .data(path: "/etc/passwd", content: "x"), .seccomp]
        #expect(plan.hostVisible == ["/usr", "/p", "/p/.git/hooks"])
        let fd = plan.seccompFD
        plan.addSessionView(hostDir: "/s/ID/view")
        #expect(Array(plan.bwrapArgs.dropLast(2).suffix(3)) == ["--ro-bind", "/s/ID/view", SessionPolicy.insideDir])
        #expect(plan.seccompFD == fd, "the descriptors do not move")
        #expect(plan.env.contains(EnvironmentVariable(SessionPolicy.refusalsVariable, SessionPolicy.refusalsFile)))
    }
}
