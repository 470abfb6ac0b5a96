import Foundation
import Testing

/// Hosts from the config files in a real networked run, in the test world: the
/// global file's reach the proxy, a hostile project file's do not, and a
/// project file's remove_hosts takes one out.
extension NetworkTests {
    @Suite struct ConfigNetworkTests {
        @Test func globalHostsReachProjectHostsDoNotRemovalsApply() throws {
            let f = try NetFixture()
            try f.f.write(f.f.home + "/.config/agentpen/config.toml", "allow_private = [\"allowed.test\"]\n")
            try f.f.write(f.project + "/.agentpen.toml", "allow_private = [\"other.test\"]\n[agent.sh]\nhosts = [\"other.test\"]\n")
            let mark = try Arrivals.mark()
            let r = try f.sh([], """
                curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
                curl -sS --max-time 5 --cacert ca.pem https://other.test/hello; echo "other=$?"
                """)
            #expect(r.stdout.contains("hello from allowed.test"), "\(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("other=6") && !r.stdout.contains("hello from other.test"), "\(r.stdout)")
            #expect(r.stderr.contains(".agentpen.toml: allow_private ignored") && r.stderr.contains(".agentpen.toml: agent.sh.hosts ignored"),
                    "\(r.stderr)")
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: ["198.18.0.10:443"]).isEmpty, "\(arrived)")

            // The untrusted file may take the global file's host out again.
            try f.f.write(f.project + "/.agentpen.toml", "remove_hosts = [\"allowed.test\"]\n")
            let removed = try f.sh(["--allow-private", "*.wild.test"], """
                curl -sS --max-time 5 --cacert ca.pem https://allowed.test/hello; echo "allowed=$?"
                curl -sS --max-time 10 --cacert ca.pem https://a.wild.test/hello
                """)
            #expect(removed.stdout.contains("allowed=6") && !removed.stdout.contains("hello from allowed.test"), "\(removed.stdout)")
            #expect(removed.stdout.contains("hello from a.wild.test"), "a flag's host stays: \(removed.stdout) \(removed.stderr)")
        }
    }
}
