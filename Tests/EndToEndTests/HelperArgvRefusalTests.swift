import Foundation
import Testing

/// The internal entry points parse their argv by hand (issue 11, exitpath):
/// the real binary, given `__exec` or `__netns` arguments agentpen never
/// writes, exits 125 with a message naming what is wrong and never runs the
/// command (here a marker the test looks for).
@Suite struct HelperArgvRefusalTests {
    @Test func malformedHelperArgumentsNeverRunTheCommand() throws {
        let f = try Fixture()
        let marker = f.root + "/ran"
        let command = ["--", "/bin/sh", "-c", "echo RAN; : > \(marker)"]
        let cases: [([String], String)] = [
            (["__exec", "--syscall-notify", "3", "--syscall-notify", "4"], "--syscall-notify given twice"),
            (["__exec", "--rw=/tmp"], "unknown option \"--rw=/tmp\""),
            (["__exec", "--gate", "+4"], "--gate \"+4\" is not a number"),
            (["__exec", "--cgroup", "-1"], "--cgroup \"-1\" is not a number"),
            (["__exec", "/bin/sh"], "unexpected \"/bin/sh\" before --"),
            (["__netns", "--hop", "direct", "--hop", "splice", "--nft", "/usr/sbin/nft"], "--hop given twice"),
            (["__netns", "--nft", "/usr/sbin/nft", "--fd", "x"], "--fd \"x\" is not a number"),
        ]
        for (args, why) in cases {
            let r = try f.agentpen(args + command)
            #expect(r.status == 125, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("agentpen: internal: bad ") && r.stderr.contains(why), "\(args): \(r.stderr)")
            #expect(!r.stdout.contains("RAN") && !FileManager.default.fileExists(atPath: marker), "\(args) ran the command")
            #expect(!r.stderr.contains("usage:"), "\(r.stderr)")
        }
        // No `--` at all: the words are refused, not run.
        let bare = try f.agentpen(["__exec", "/bin/sh", "-c", "echo RAN"])
        #expect(bare.status == 125 && !bare.stdout.contains("RAN"), "\(bare.status) \(bare.stdout) \(bare.stderr)")
    }
}
