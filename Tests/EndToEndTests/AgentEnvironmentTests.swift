import Foundation
import Testing

/// What a preset takes from the caller's environment for the real agents: a custom
/// CA bundle (visible read-only, refused inside a credential store) and a custom
/// API endpoint (its host allowed, shown in --dry-run). The world runs are in
/// RealAgentNetworkTests; these need no network.
@Suite struct AgentEnvironmentTests {
    @Test func customCABundleIsVisibleReadOnlyAndPassed() throws {
        let f = try Fixture()
        let ca = f.home + "/corp/ca.pem"
        try f.write(ca, "CORP-CA\n")
        let r = try f.sh("cat \"$NODE_EXTRA_CA_CERTS\" \"$SSL_CERT_FILE\" \"$REQUESTS_CA_BUNDLE\"; echo x >> \"$SSL_CERT_FILE\"; echo append-rc=$?",
                         env: ["NODE_EXTRA_CA_CERTS": ca, "SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("CORP-CA\nCORP-CA\nCORP-CA\n"), "\(r.stdout) \(r.stderr)")
        #expect(!r.stdout.contains("append-rc=0"), "the CA bundle was writable: \(r.stdout)")
        #expect(f.read(ca) == "CORP-CA\n")
        // Nothing else of that directory comes along.
        try f.write(f.home + "/corp/other-secret", "SECRET-OTHER")
        let r2 = try f.sh("ls \"$(dirname \"$SSL_CERT_FILE\")\"; cat \"$(dirname \"$SSL_CERT_FILE\")/other-secret\"", env: ["SSL_CERT_FILE": ca])
        #expect(!r2.stdout.contains("SECRET-OTHER") && !r2.stdout.contains("other-secret"), "\(r2.stdout)")
    }

    @Test(arguments: [".ssh/ca.pem", ".aws/ca.pem", ".docker/certs/ca.pem"])
    func caBundleInACredentialStoreIsRefused(_ rel: String) throws {
        let f = try Fixture()
        try f.write(f.home + "/" + rel, "CA\n")
        let r = try f.sh("echo RAN", env: ["NODE_EXTRA_CA_CERTS": f.home + "/" + rel])
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(!r.stdout.contains("RAN"))
        #expect(r.stderr.contains("NODE_EXTRA_CA_CERTS") && r.stderr.contains("credential store"), "\(r.stderr)")
    }

    /// The caller's ANTHROPIC_BASE_URL adds its host for claude only; a URL in the
    /// agent's own (writable) config does not.
    @Test func customEndpointHostIsAllowedForThatAgentAndShown() throws {
        let f = try Fixture()
        try f.write(f.home + "/bin/claude", "#!/bin/sh\necho stand-in\n", mode: 0o755)
        try f.write(f.home + "/bin/codex", "#!/bin/sh\necho stand-in\n", mode: 0o755)
        try f.write(f.home + "/.codex/config.toml", "[model_providers.x]\nbase_url = \"https://planted.example/v1\"\n")
        let path = f.home + "/bin:/usr/bin:/bin"
        let env = ["ANTHROPIC_BASE_URL": "https://gw.corp.example:8443/anthropic", "OPENAI_BASE_URL": "https://oai.corp.example/v1"]
        let c = try f.agentpen(["--dry-run", "claude"], env: env, path: path)
        let line = c.stdout.split(separator: "\n").first { $0.contains("allowed hosts") } ?? ""
        #expect(line.contains("gw.corp.example") && !line.contains("oai.corp.example"), "\(c.stdout) \(c.stderr)")
        #expect(c.stdout.contains("ANTHROPIC_BASE_URL=https://gw.corp.example:8443/anthropic"), "the variable is passed: \(c.stdout)")
        let x = try f.agentpen(["--dry-run", "codex"], env: env, path: path)
        let xl = x.stdout.split(separator: "\n").first { $0.contains("allowed hosts") } ?? ""
        #expect(xl.contains("oai.corp.example") && !xl.contains("gw.corp.example") && !xl.contains("planted.example"), "\(x.stdout)")
        // Without the variable, no extra host.
        let plain = try f.agentpen(["--dry-run", "claude"], path: path)
        #expect(!plain.stdout.contains("corp.example"), "\(plain.stdout)")
        // A value that is no URL is refused, not guessed at.
        let bad = try f.agentpen(["--dry-run", "claude"], env: ["ANTHROPIC_BASE_URL": "gw.corp.example"], path: path)
        #expect(bad.status == 2 && bad.stderr.contains("ANTHROPIC_BASE_URL"), "\(bad.status) \(bad.stderr)")
    }
}
