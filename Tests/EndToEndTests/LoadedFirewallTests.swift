import Foundation
import Testing

// MARK: - The loaded firewall is read back as data (issue 8)

extension NetworkTests {
    /// nft is given by AGENTPEN_NFT (never looked up on PATH); here it is a wrapper
    /// that loads agentpen's script and then makes the ruleset more permissive
    /// before agentpen reads it back. agentpen must compare the kernel's ruleset
    /// with the one it built and refuse to start the command (exit 125), so the
    /// probe never runs and nothing arrives in the world. The text check that came
    /// before (`hook output`, `policy drop`, no `policy accept` in `nft list`)
    /// let every one of these through: NetworkTests.Controls ran its leak probe
    /// through the first one.
    @Suite struct LoadedFirewall {
        @Test(arguments: [
            ("accept inserted first", """
                /usr/sbin/nft -f - || exit $?
                /usr/sbin/nft insert rule inet agentpen output accept
                """),
            ("loopback rule widened to accept all", """
                sed 's|oif "lo" ip daddr 127.0.0.0/8 accept|accept|' | /usr/sbin/nft -f -
                """),
            ("an extra base chain that accepts", """
                /usr/sbin/nft -f - || exit $?
                /usr/sbin/nft add chain inet agentpen sneak '{ type filter hook output priority -10; policy accept; }'
                """),
        ])
        func aTamperedFirewallIsRefused(_ what: String, _ load: String) throws {
            let f = try NetFixture()
            let nft = f.root + "/fakebin/nft"
            try f.f.write(nft, """
                #!/bin/sh
                if [ "$1" = "-f" ]; then
                \(load)
                    exit $?
                fi
                exec /usr/sbin/nft "$@"

                """, mode: 0o755)
            let mark = try Arrivals.mark()
            let r = try f.f.agentpen(World.baseAllow + ["--", "/usr/bin/python3", "probe.py", "tcp 198.18.0.1 8080"],
                                     env: ["AGENTPEN_NFT": nft])
            #expect(r.status == 125, "\(what): \(r.status) \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("the firewall did not load as written"), "\(what): \(r.stderr)")
            #expect(Probe.parse(r.stdout).isEmpty, "\(what): the command ran: \(r.stdout)")
            let leaked = Arrivals.unexpected(try mark.since())
            #expect(!leaked.contains { $0["dport"] == "8080" }, "\(what): leaked \(leaked)")
        }
    }
}
