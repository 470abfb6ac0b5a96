import Foundation
import Testing

/// The leftover check itself: a file agentpen leaves is seen, an unrelated one is not.
@Suite struct LeftoverCheckTests {
    /// /tmp stood in by a directory of the fixture's, so this test never puts
    /// agentpen-like names into the real /tmp while other tests check it.
    @Test func aLeftoverIsSeenAndAStrangersFileIsNot() throws {
        let f = try Fixture()
        let fakeTmp = f.root + "/shared-tmp"
        try FileManager.default.createDirectory(atPath: fakeTmp, withIntermediateDirectories: true)
        try f.write(fakeTmp + "/agentpen-check.OLD", "there before")
        let check = Leftovers(tmpdir: f.tmp, tmpRoot: fakeTmp)
        #expect(check.fresh().isEmpty)
        // Another process's files in the shared /tmp: not this run's (agentpen
        // itself writes to the TMPDIR it is given, never to /tmp).
        try f.write(fakeTmp + "/sap", "unrelated")
        try f.write(fakeTmp + "/systemd-private-x", "unrelated")
        try f.write(fakeTmp + "/agentpen-check.xyz789", "another run without a TMPDIR")
        #expect(check.fresh().isEmpty, "\(check.fresh())")
        // Anything in the test's own TMPDIR is a leftover, whatever its name.
        try f.write(f.tmp + "/whatever", "left")
        #expect(check.fresh() == [f.tmp + "/whatever"])
        try FileManager.default.removeItem(atPath: f.tmp + "/whatever")
        // Names bubblewrap or pasta (no TMPDIR in their environment) could create in /tmp are.
        for name in ["bwrap-x", ".bubblewrap", "pasta.pcap", "passt_1.socket"] {
            try f.write(fakeTmp + "/" + name, "left")
            #expect(check.fresh() == [fakeTmp + "/" + name], "\(name)")
            try FileManager.default.removeItem(atPath: fakeTmp + "/" + name)
        }
        #expect(check.fresh().isEmpty)
    }
}
