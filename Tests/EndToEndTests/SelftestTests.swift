import Foundation
import Testing

/// `agentpen selftest` (issue 13): the escape cases against this host's sandbox.
/// It must pass here (as the unprivileged user and as root), leave nothing
/// behind, and fail, case by case, when the sandbox is weakened through an
/// override a user really has (AGENTPEN_BWRAP), not a test-only switch.
@Suite struct SelftestTests {
    static let cases = ["world-built", "secrets", "project-writable", "git-hooks-read-only", "git-config-read-only", "git-dir-pinned",
                        "planted-hook-moved-aside", "home-left-clean", "ptrace", "process-vm-readv", "keyctl", "unshare",
                        "mount", "tiocsti", "af-vsock", "host-processes", "host-loopback-offline",
                        "only-route-is-the-proxy", "ip-literal", "dns-unlisted", "tls-unlisted", "allowed-host-reached",
                        "nothing-else-reached-the-internet", "udp-out",
                        "host-loopback-network", "world-cleaned"]

    /// "PASS"/"FAIL" per case name, from selftest's output.
    static func verdicts(_ out: String) -> [String: String] {
        var v: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 2)
            guard words.count >= 2, words[0] == "PASS" || words[0] == "FAIL", words[1].hasSuffix(":") else { continue }
            v[String(words[1].dropLast())] = String(words[0])
        }
        return v
    }

    /// Whatever the world left in this test's TMPDIR (selftest makes its world there).
    static func leftovers(_ f: Fixture) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: f.tmp)) ?? ["unreadable"]
    }

    @Test func everyCaseHoldsHere() throws {
        let f = try Fixture()
        let r = try f.agentpen(["selftest"])
        #expect(r.status == 0, "\(r.status)\n\(r.stdout)\n\(r.stderr)")
        let v = Self.verdicts(r.stdout)
        for name in Self.cases { #expect(v[name] == "PASS", "\(name): \(v[name] ?? "no line")\n\(r.stdout)") }
        #expect(v.count == Self.cases.count, "\(v.keys.sorted())")
        // Every line is a case or the total: nothing is skipped or unexplained.
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == Self.cases.count + 1, "\(r.stdout)")
        #expect(lines.last == "selftest: all \(Self.cases.count) cases held", "\(r.stdout)")
        #expect(Self.leftovers(f).isEmpty, "left behind: \(Self.leftovers(f))")
        // The user's real home is not the one selftest used.
        #expect(f.read(f.home + "/.bashrc") == "# original bashrc\n")
    }

    /// A bubblewrap wrapper (outside the home and the project, as AGENTPEN_BWRAP
    /// requires) that weakens the sandbox in one way, then runs the real bwrap.
    static func wrapper(_ f: Fixture, _ name: String, _ body: String) throws -> String {
        let path = f.root + "/fakebin/" + name
        try f.write(path, """
        #!/bin/bash
        out=()
        while [ $# -gt 0 ]; do
        \(body)
        done
        exec /usr/bin/bwrap "${out[@]}"

        """, mode: 0o755)
        return path
    }

    @Test func aBoundSecretFailsTheSecretsCase() throws {
        let f = try Fixture()
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/bwrap"))
        // After the tmpfs over selftest's throwaway home, bind its .ssh back in
        // (and drop the secret decoys' bind and links, which would lie over the leak).
        let bwrap = try Self.wrapper(f, "bwrap-leak", #"""
            if [ "$1" = --tmpfs ] && [ -e "$2/.ssh/id_ed25519" ]; then
                out+=(--tmpfs "$2" --ro-bind "$2/.ssh" "$2/.ssh"); shift 2; continue
            fi
            if [ "$1" = --ro-bind ] && [ "$3" = /run/agentpen/decoys ]; then shift 3; continue; fi
            if [ "$1" = --symlink ] && [[ "$2" == /run/agentpen/decoys/decoy-* ]]; then shift 3; continue; fi
            out+=("$1"); shift
        """#)
        let r = try f.agentpen(["selftest"], env: ["AGENTPEN_BWRAP": bwrap])
        #expect(r.status == 1, "\(r.status)\n\(r.stdout)\n\(r.stderr)")
        let v = Self.verdicts(r.stdout)
        #expect(v["secrets"] == "FAIL", "\(r.stdout)")
        #expect(r.stdout.contains("secret_ssh=OK"), "\(r.stdout)")
        // Only that case: the others still held (the wrapper changed nothing else).
        for name in Self.cases where name != "secrets" { #expect(v[name] == "PASS", "\(name)\n\(r.stdout)") }
        #expect(r.stdout.contains("cases FAILED"), "\(r.stdout)")
        #expect(Self.leftovers(f).isEmpty, "left behind: \(Self.leftovers(f))")
    }

    @Test func noSyscallFilterFailsTheKernelCases() throws {
        let f = try Fixture()
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/bwrap"))
        // Drop bubblewrap's --seccomp FD and the exec helper's --syscall-notify FD
        // (the refused set's filter since the syscall events): the exec helper
        // refuses to start without it, so every kernel case must fail.
        let bwrap = try Self.wrapper(f, "bwrap-noseccomp", #"""
            if [ "$1" = --seccomp ] || [ "$1" = --syscall-notify ]; then shift 2; continue; fi
            out+=("$1"); shift
        """#)
        let r = try f.agentpen(["selftest"], env: ["AGENTPEN_BWRAP": bwrap])
        #expect(r.status == 1, "\(r.status)\n\(r.stdout)\n\(r.stderr)")
        let v = Self.verdicts(r.stdout)
        for name in ["ptrace", "process-vm-readv", "keyctl", "tiocsti"] {
            #expect(v[name] == "FAIL", "\(name)\n\(r.stdout)")
        }
        #expect(Self.leftovers(f).isEmpty, "left behind: \(Self.leftovers(f))")
    }
}
