import Foundation
import Testing

/// The corporate proxy: upstream connections through an HTTP CONNECT proxy named
/// in the global config only. The test world's proxy (tests/world/connectproxy.py,
/// 198.18.0.1:3128) requires credentials and logs every CONNECT it got.
extension World {
    static let proxyEndpoint = "198.18.0.1:3128"
    /// user apw-proxy, password `s3cr:et@pa%ss` (escaped in the URL).
    static let proxyURL = "http://apw-proxy:s3cr%3Aet%40pa%25ss@198.18.0.1:3128"
    /// Every form the credentials could leak in: as given, decoded, and the Basic token.
    static let proxySecrets = ["s3cr%3Aet%40pa%25ss", "s3cr:et@pa%ss", "s3cr", "apw-proxy:",
                               "YXB3LXByb3h5OnMzY3I6ZXRAcGElc3M="]
    static var proxyLog: String { (dir ?? "/run/apw") + "/proxy.log" }
}

/// The world proxy's log since a mark. It writes each line before it answers,
/// so once agentpen has exited every request it made is there.
struct ProxyLog {
    let offset: UInt64

    static func mark() throws -> ProxyLog {
        let attrs = try FileManager.default.attributesOfItem(atPath: World.proxyLog)
        return ProxyLog(offset: (attrs[.size] as? NSNumber)?.uint64Value ?? 0)
    }

    /// `target=NAME:PORT auth=… status=…` of each request since the mark.
    func since() -> [Arrival] {
        guard let h = FileHandle(forReadingAtPath: World.proxyLog) else { return [] }
        defer { try? h.close() }
        try? h.seek(toOffset: offset)
        let data = (try? h.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { Arrival(String($0)) }
    }
}

private func globalConfig(_ f: Fixture, _ text: String) throws {
    try f.write(f.home + "/.config/agentpen/config.toml", text)
}

private func leaked(_ texts: [String]) -> [String] {
    World.proxySecrets.filter { s in texts.contains { $0.contains(s) } }
}

extension NetworkTests {
    @Suite struct UpstreamProxyTests {
        /// TLS on 443 and NAME:PORT (plain HTTP, and ssh, whose banner comes
        /// right after the proxy's reply) through the proxy, on both hops. No
        /// --allow-private: the addresses are the proxy's to vet, not agentpen's.
        @Test(arguments: ["direct", "pasta"])
        func allowedNamesGoThroughTheProxy(_ hop: String) throws {
            let f = try NetFixture()
            try globalConfig(f.f, "[proxy]\nurl = \"\(World.proxyURL)\"\n")
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let proxied = try ProxyLog.mark()
            let r = try f.sh(["--hop", hop, "--log", log, "--allow", "allowed.test", "--allow", "other.test:80",
                              "--allow", "git.test:2222"], """
                curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
                curl -sS --max-time 10 http://other.test/hello
                /usr/bin/python3 -c "import socket; s = socket.create_connection(('git.test', 2222), 10); print(s.recv(7))"
                /usr/bin/python3 probe.py 'tcp 198.18.0.1 3128'
                """)
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            // The sandbox cannot reach the proxy itself (with a proxy that asks no
            // credentials that would be a way to any host): refused, and the proxy
            // logs no fourth request below.
            let direct = Probe.parse(r.stdout)["tcp 198.18.0.1 3128"]
            #expect(direct != nil && direct!.outcome != "connected", "\(r.stdout)")
            #expect(r.stdout.contains("hello from allowed.test\nhello from other.test\nb'SSH-2.0'"), "\(r.stdout) \(r.stderr)")
            let requests = proxied.since()
            for target in ["allowed.test:443", "other.test:80", "git.test:2222"] {
                #expect(requests.contains { $0["target"] == target && $0["auth"] == "ok" && $0["status"] == "200" },
                        "the proxy did not see CONNECT \(target): \(requests)")
            }
            #expect(requests.count == 3, "\(requests)")
            // Only the proxy was dialled: nothing of agentpen's reached a server directly.
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: [World.proxyEndpoint]).isEmpty, "\(arrived)")
            #expect(arrived.contains { $0["dst"] == "198.18.0.1" && $0["dport"] == "3128" }, "\(arrived)")
            let events = f.f.read(log) ?? ""
            #expect(events.contains("\"via-proxy\":\"CONNECT allowed.test:443\"") && events.contains("\"upstream\":\"198.18.0.1:3128\""),
                    "\(events)")
            #expect(events.contains("http://***@198.18.0.1:3128"), "\(events)")
            #expect(leaked([events, r.stdout, r.stderr]).isEmpty, "credentials leaked: \(leaked([events, r.stdout, r.stderr]))")
        }

        /// --check tries the proxy (a TCP connection, nothing sent): reachable here.
        @Test func checkTriesTheProxy() throws {
            let f = try NetFixture()
            try globalConfig(f.f, "[proxy]\nurl = \"\(World.proxyURL)\"\n")
            let proxied = try ProxyLog.mark()
            let check = try f.f.agentpen(["--check"], timeout: 120)
            #expect(check.stdout.split(separator: "\n").contains {
                $0.contains("upstream proxy") && $0.contains("http://***@198.18.0.1:3128 (proxy.url): reachable") }, "\(check.stdout)")
            #expect(proxied.since().isEmpty, "--check sent a request: \(proxied.since())")
            #expect(leaked([check.stdout, check.stderr]).isEmpty)
        }

        /// Wrong credentials: the proxy answers 407; the connection is refused and
        /// reported with the proxy's status line, and nothing is retried directly.
        @Test func wrongCredentialsAreRefusedAndReported() throws {
            let f = try NetFixture()
            try globalConfig(f.f, "[proxy]\nurl = \"http://apw-proxy:wrong-secret@198.18.0.1:3128\"\n")
            let log = f.root + "/events.jsonl"
            let mark = try Arrivals.mark()
            let proxied = try ProxyLog.mark()
            let r = try f.sh(["--log", log, "--allow", "allowed.test"],
                             "curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello; echo \"curl=$?\"")
            #expect(!r.stdout.contains("hello from") && !r.stdout.contains("curl=0"), "\(r.stdout)")
            #expect(r.stderr.contains("agentpen: blocked allowed.test") && r.stderr.contains("407"), "\(r.stderr)")
            let requests = proxied.since()
            #expect(requests.contains { $0["target"] == "allowed.test:443" && $0["auth"] == "bad" && $0["status"] == "407" }, "\(requests)")
            let blocked = readEvents(log).filter { $0["kind"] as? String == "connection-blocked" }
            let details = blocked.first?["details"] as? [String: String] ?? [:]
            #expect(details["proxy-status"] == "HTTP/1.1 407 Proxy Authentication Required", "\(blocked)")
            let reason = (blocked.first?["reason"] as? String) ?? ""
            #expect(reason.contains("refused CONNECT allowed.test:443"), "\(blocked)")
            #expect(Arrivals.unexpected(try mark.since(), allowing: [World.proxyEndpoint]).isEmpty)
            #expect(!(f.f.read(log) ?? "").contains("wrong-secret") && !r.stderr.contains("wrong-secret"))
        }

        /// no_proxy names (exact and .suffix) are dialled directly, vetted by
        /// agentpen as always (hence --allow-private); the others go through the proxy.
        @Test func noProxyNamesAreDialledDirectly() throws {
            let f = try NetFixture()
            try globalConfig(f.f, """
                [proxy]
                url = "\(World.proxyURL)"
                no_proxy = ["allowed.test", ".wild.test"]

                """)
            let mark = try Arrivals.mark()
            let proxied = try ProxyLog.mark()
            let r = try f.sh(["--allow-private", "allowed.test", "--allow-private", "*.wild.test", "--allow", "other.test"], """
                curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
                curl -sS --max-time 10 --cacert ca.pem https://a.wild.test/hello
                curl -sS --max-time 10 --cacert ca.pem https://other.test/hello
                """)
            #expect(r.stdout.contains("hello from allowed.test\nhello from a.wild.test\nhello from other.test"), "\(r.stdout) \(r.stderr)")
            let targets = proxied.since().compactMap { $0["target"] }
            #expect(targets == ["other.test:443"], "only other.test goes through the proxy: \(targets)")
            let arrived = try mark.since()
            #expect(Arrivals.unexpected(arrived, allowing: [World.proxyEndpoint, "198.18.0.10:443"]).isEmpty, "\(arrived)")
            let direct = arrived.filter { $0.ev == "arrive" && $0["dst"] == "198.18.0.10" && $0["dport"] == "443" }
            #expect(direct.count == 2 && direct.allSatisfy { $0["src"] == World.host4 }, "\(arrived)")

            // A no_proxy name is vetted by agentpen: without --allow-private its private address is refused.
            let refused = try f.sh(["--allow", "allowed.test"],
                                   "curl -sS --max-time 5 --cacert ca.pem https://allowed.test/hello; echo \"curl=$?\"")
            #expect(!refused.stdout.contains("hello from") && refused.stderr.contains("every address refused"), "\(refused.stderr)")
        }

        /// A repository's [proxy] is ignored with a warning naming the key, even
        /// once trusted: it would send every connection to a machine of its choosing.
        @Test func projectFileProxyIsIgnored() throws {
            let f = try NetFixture()
            try f.f.write(f.project + "/.agentpen.toml", "[proxy]\nurl = \"\(World.proxyURL)\"\n")
            let proxied = try ProxyLog.mark()
            for trusted in [false, true] {
                if trusted { #expect(try f.f.agentpen(["trust"]).status == 0) }
                let r = try f.sh(World.baseAllow, "curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello")
                #expect(r.stdout.contains("hello from allowed.test"), "\(r.stdout) \(r.stderr)")
                #expect(r.stderr.contains(".agentpen.toml: proxy ignored: only the global config"), "\(r.stderr)")
            }
            #expect(proxied.since().isEmpty, "the project's proxy was used: \(proxied.since())")
        }

        /// HTTPS_PROXY and friends in the caller's environment (a project's
        /// activation script can set them) change nothing: no proxy without the
        /// global config, the global config's proxy with it; and they do not enter the sandbox.
        @Test func proxyVariablesInTheEnvironmentChangeNothing() throws {
            let f = try NetFixture()
            let bait = "http://apw-proxy:s3cr%3Aet%40pa%25ss@198.18.0.1:9000"
            var env: [String: String] = [:]
            for v in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] { env[v] = World.proxyURL }
            env["NO_PROXY"] = "other.test"
            let mark = try Arrivals.mark()
            let proxied = try ProxyLog.mark()
            let r = try f.sh(World.baseAllow, """
                echo "inside=${HTTPS_PROXY:-unset}/${https_proxy:-unset}/${ALL_PROXY:-unset}"
                curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
                """, env: env)
            #expect(r.stdout.contains("inside=unset/unset/unset\nhello from allowed.test"), "\(r.stdout) \(r.stderr)")
            #expect(proxied.since().isEmpty, "the environment's proxy was used: \(proxied.since())")
            #expect(Arrivals.unexpected(try mark.since(), allowing: ["198.18.0.10:443"]).isEmpty)

            // With the global proxy, the environment's (the bait on :9000, NO_PROXY) is not used either.
            try globalConfig(f.f, "[proxy]\nurl = \"\(World.proxyURL)\"\n")
            for v in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"] { env[v] = bait }
            env["NO_PROXY"] = "allowed.test"
            let mark2 = try Arrivals.mark()
            let proxied2 = try ProxyLog.mark()
            let through = try f.sh(["--allow", "allowed.test"], "curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello", env: env)
            #expect(through.stdout.contains("hello from allowed.test"), "\(through.stdout) \(through.stderr)")
            #expect(proxied2.since().compactMap { $0["target"] } == ["allowed.test:443"], "\(proxied2.since())")
            #expect(Arrivals.unexpected(try mark2.since(), allowing: [World.proxyEndpoint]).isEmpty)
        }
    }
}

/// What is shown about a configured proxy, without the world: `agentpen config`,
/// `--dry-run` and `--check` say that the proxy vets the final address, and
/// never show its credentials.
@Suite struct UpstreamProxyShownTests {
    @Test func configDryRunAndCheckRedactAndWarn() throws {
        let f = try Fixture()
        // On loopback, where nothing listens: --check tries it and must not send anything elsewhere.
        let port = freePort()
        let shown = "http://***@127.0.0.1:\(port)"
        try globalConfig(f, """
            [proxy]
            url = "http://apw-proxy:s3cr%3Aet%40pa%25ss@127.0.0.1:\(port)"
            no_proxy = ["git.corp.example", ".internal.example"]

            """)
        let config = try f.agentpen(["config", "--allow", "api.example.com"])
        #expect(config.status == 0, "\(config.stderr)")
        #expect(config.stdout.contains("proxy.url = \(shown)  ("), "\(config.stdout)")
        #expect(config.stdout.contains("proxy.no_proxy = git.corp.example, .internal.example"), "\(config.stdout)")
        #expect(config.stdout.contains("the upstream proxy resolves each name and vets the final address, not agentpen"), "\(config.stdout)")

        let dry = try f.agentpen(["--dry-run", "--allow", "api.example.com", "--", "true"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("upstream proxy: \(shown) ([proxy] in the global config)"), "\(dry.stdout)")
        #expect(dry.stdout.contains("--allow-private and the refusal of private"), "\(dry.stdout)")

        let check = try f.agentpen(["--check"], timeout: 120)
        #expect(check.stdout.split(separator: "\n").contains { $0.contains("upstream proxy") && $0.contains("\(shown) (proxy.url): cannot connect") },
                "\(check.stdout)")
        #expect(check.stdout.contains("vets the final address, not agentpen"), "\(check.stdout)")
        let all = [config.stdout, config.stderr, dry.stdout, dry.stderr, check.stdout, check.stderr]
        #expect(leaked(all).isEmpty, "credentials shown: \(leaked(all))")
    }

    /// A broken [proxy] stops the run (exit 2) naming the key, not the password.
    @Test func aBrokenProxyStopsTheRunWithoutShowingThePassword() throws {
        let f = try Fixture()
        try globalConfig(f, "[proxy]\nurl = \"https://apw-proxy:hunter2@proxy.example:3128\"\n")
        let r = try f.agentpen(["--", "true"])
        #expect(r.status == 2 && r.stderr.contains("proxy.url") && r.stderr.contains("http://"), "\(r.status) \(r.stderr)")
        #expect(!r.stderr.contains("hunter2"), "\(r.stderr)")
    }
}
