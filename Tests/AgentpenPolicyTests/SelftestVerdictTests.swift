import AgentpenPolicy
import Testing

/// The selftest's verdict on plain facts: what a held sandbox reports passes;
/// each weakening, a missing fact or a run that did not finish fails its case.
@Suite struct SelftestVerdictTests {
    static let offline: [String: String] = [
        "probe": "ran", "probe-end": "ran",
        "secret_ssh": "ENOENT", "secret_aws": "ENOENT", "project_write": "OK", "git_hook": "EROFS",
        "git_config": "EROFS", "git_rename": "EBUSY", "nested_hook": "OK", "home_write": "OK",
        "ptrace": "EPERM", "process_vm_readv": "EPERM", "keyctl": "EPERM", "unshare": "EPERM", "mount": "EPERM",
        "tiocsti": "EPERM", "vsock": "EAFNOSUPPORT", "pid_ns": "pid:[2]", "processes": "2",
        "host_selftest_visible": "0", "host_service": "ECONNREFUSED",
    ]
    static let network: [String: String] = offline.merging([
        "routes_out": "0", "routes_out_masks": "none", "literal_v4": "ECONNRESET", "literal_v6": "ENETUNREACH", "dns_unlisted": "NXDOMAIN",
        "dns_allowed": "127.0.1.1", "proxy_connect": "OK", "sni_unlisted": "closed", "udp": "EPERM",
        "host_address_service": "ECONNRESET", "tls_allowed": "answered",
    ]) { _, new in new }
    static let host: [String: String] = [
        "marker_seen": "no", "project_file": "written", "git_hook": "absent", "git_config": "unchanged",
        "git_dir": "in place", "nested_hook": "quarantined", "home": "unchanged", "pid_ns": "pid:[1]",
        "service_arrivals": "0", "tls_refused_logged": "yes", "literal_logged": "yes", "host_address_logged": "no", "world_removed": "yes",
        "world": "built", "internet_arrivals": "1", "internet_allowed": "1",
    ]

    static func judge(offline: [String: String] = offline, network: [String: String] = network,
                      host: [String: String] = host, status: Int32 = 0) -> [String: Bool] {
        let o = Selftest.Observations(offline: .init(status: status, facts: offline),
                                      network: .init(status: 0, facts: network), host: host)
        return Dictionary(uniqueKeysWithValues: Selftest.judge(o).map { ($0.name, $0.held) })
    }

    @Test func aHeldSandboxPassesEveryCase() {
        let v = Self.judge()
        #expect(v.count == 26)
        #expect(v.values.allSatisfy { $0 }, "\(v.filter { !$0.value })")
    }

    /// agentpen's empty decoys at the secret paths (SecretDecoys): read, but empty.
    @Test func anEmptyDecoyInPlaceOfTheSecretHolds() {
        var facts = Self.offline
        facts["secret_ssh"] = "empty"; facts["secret_aws"] = "empty"
        #expect(Self.judge(offline: facts)["secrets"] == true)
        #expect(Self.judge(offline: facts, host: Self.host.merging(["marker_seen": "yes"]) { $1 })["secrets"] == false)
    }

    @Test func eachWeakeningFailsItsCase() {
        let offlineCases: [(String, String, String)] = [
            ("secret_ssh", "OK", "secrets"), ("project_write", "EROFS", "project-writable"),
            ("git_hook", "OK", "git-hooks-read-only"), ("git_rename", "OK", "git-dir-pinned"),
            ("ptrace", "ESRCH", "ptrace"), ("keyctl", "OK", "keyctl"), ("tiocsti", "ENOTTY", "tiocsti"),
            ("unshare", "OK", "unshare"), ("vsock", "OK", "af-vsock"), ("host_selftest_visible", "1", "host-processes"),
            ("host_service", "OK", "host-loopback-offline"), ("mount", "OK", "mount"),
        ]
        for (key, value, name) in offlineCases {
            var facts = Self.offline
            facts[key] = value
            let v = Self.judge(offline: facts)
            #expect(v[name] == false, "\(key)=\(value) should fail \(name)")
            #expect(v.filter { !$0.value }.count == 1, "\(key)=\(value): \(v.filter { !$0.value })")
        }
        let networkCases: [(String, String, String)] = [
            ("routes_out", "1", "only-route-is-the-proxy"), ("routes_out_masks", "FFFFFFFF", "only-route-is-the-proxy"),
            ("literal_v4", "open", "ip-literal"), ("literal_v4", "answered", "ip-literal"),
            ("literal_v6", "OK", "ip-literal"), ("dns_unlisted", "127.0.0.1", "dns-unlisted"),
            ("dns_allowed", "NXDOMAIN", "dns-unlisted"), ("dns_allowed", "198.18.0.2", "dns-unlisted"), ("sni_unlisted", "held open", "tls-unlisted"),
            ("udp", "OK", "udp-out"), ("host_address_service", "TIMEOUT", "host-loopback-network"),
            ("host_address_service", "open", "host-loopback-network"),
            ("tls_allowed", "no answer", "allowed-host-reached"),
        ]
        for (key, value, name) in networkCases {
            var facts = Self.network
            facts[key] = value
            #expect(Self.judge(network: facts)[name] == false, "\(key)=\(value) should fail \(name)")
        }
        for (key, value, name) in [("marker_seen", "yes", "secrets"), ("home", "changed: .bashrc", "home-left-clean"),
                                   ("nested_hook", "still armed", "planted-hook-moved-aside"),
                                   ("service_arrivals", "1", "host-loopback-offline"),
                                   ("tls_refused_logged", "no", "tls-unlisted"), ("literal_logged", "no", "ip-literal"), ("world_removed", "no", "world-cleaned"),
                                   ("pid_ns", "pid:[2]", "host-processes"), ("world", "not built", "world-built"),
                                   ("internet_arrivals", "2", "nothing-else-reached-the-internet"),
                                   ("internet_allowed", "0", "allowed-host-reached")] {
            var facts = Self.host
            facts[key] = value
            #expect(Self.judge(host: facts)[name] == false, "host \(key)=\(value) should fail \(name)")
        }
        // On a pasta hop: one /32 route out, and a SYN to the gateway (the
        // internet's address) dropped and logged by the firewall: held, but
        // only with the log's word and nothing arrived.
        var pasta = Self.network
        pasta["routes_out"] = "1"
        pasta["routes_out_masks"] = "FFFFFFFF"
        pasta["literal_v4"] = "TIMEOUT"
        pasta["host_address_service"] = "TIMEOUT"
        var logged = Self.host
        logged["host_address_logged"] = "yes"
        let v = Self.judge(network: pasta, host: logged)
        #expect(v["only-route-is-the-proxy"] == true && v["ip-literal"] == true && v["host-loopback-network"] == true)
        logged["internet_arrivals"] = "2"
        #expect(Self.judge(network: pasta, host: logged)["ip-literal"] == false)
        logged = Self.host
        #expect(Self.judge(network: pasta, host: logged)["host-loopback-network"] == false)
    }

    @Test func missingFactsOrAnUnfinishedRunFail() {
        var facts = Self.offline
        facts["keyctl"] = nil
        #expect(Self.judge(offline: facts)["keyctl"] == false)
        facts = Self.offline
        facts["probe-end"] = nil
        let unfinished = Self.judge(offline: facts)
        #expect(unfinished["ptrace"] == false && unfinished["secrets"] == false)
        #expect(unfinished["dns-unlisted"] == true)
        let failedRun = Self.judge(status: 125)
        #expect(failedRun["tiocsti"] == false)
        #expect(Self.judge(host: [:]).values.filter { $0 }.count < 26)
    }

    @Test func probeLinesAreParsedAndOthersIgnored() {
        let run = Selftest.Run(status: 0, output: "agentpen: blocked x\nselftest.probe=ran\nselftest.ptrace=EPERM\nselftest.ptrace=OK\nptrace=OK\nselftest.probe-end=ran\n")
        #expect(run.facts == ["probe": "ran", "ptrace": "EPERM", "probe-end": "ran"])
        #expect(run.ran)
    }
}
