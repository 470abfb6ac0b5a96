/// `agentpen selftest`: which escape cases held, decided from what the probe
/// inside the sandbox reported and what the host side saw afterwards. Pure: the
/// world, the runs and the probe live in the executable; here only the verdict.
///
/// A fact that is missing (the run did not start, the probe died half-way, the
/// host could not look) fails its case: nothing is skipped or assumed.
public enum Selftest {
    /// The name the network run allows, and the one it must refuse. Both under
    /// `.invalid` (RFC 6761): neither can resolve anywhere.
    public static let allowedName = "selftest.agentpen.invalid"
    public static let unlistedName = "unlisted.agentpen.invalid"
    /// Addresses an IP-literal escape aims at: the test ranges only.
    /// The world's "internet" (where the allowed name resolves on the host side).
    public static let literalV4 = "198.18.0.2"
    public static let literalV6 = "fd0c::2"
    /// The world's host side of the veth.
    public static let hostV4 = "198.18.0.1"
    public static let hostV6 = "fd0c::1"
    /// What the internet's server answers.
    public static let internetBanner = "AGENTPEN-SELFTEST-INTERNET"

    /// One run of the sandbox: its exit status and the probe's `key=value` lines.
    public struct Run: Sendable, Equatable {
        public var status: Int32
        public var facts: [String: String]
        public init(status: Int32, facts: [String: String]) { self.status = status; self.facts = facts }

        /// The probe's lines from the run's combined output; other lines
        /// (agentpen's own messages) are ignored; the first value of a key wins.
        public init(status: Int32, output: String) {
            var facts: [String: String] = [:]
            for line in output.split(separator: "\n") {
                guard line.hasPrefix("selftest."), let eq = line.firstIndex(of: "=") else { continue }
                let key = String(line[line.index(line.startIndex, offsetBy: 9)..<eq])
                if facts[key] == nil { facts[key] = String(line[line.index(after: eq)...]) }
            }
            self.init(status: status, facts: facts)
        }
        public var ran: Bool { status == 0 && facts["probe"] == "ran" && facts["probe-end"] == "ran" }
    }

    public struct Observations: Sendable, Equatable {
        /// The sandbox with no allowed host (bubblewrap's empty network namespace).
        public var offline: Run
        /// The sandbox with the network stack and one allowed name.
        public var network: Run
        /// What the host side saw after both runs (see `Selftest.swift` in the executable).
        public var host: [String: String]
        public init(offline: Run, network: Run, host: [String: String]) {
            self.offline = offline; self.network = network; self.host = host
        }
    }

    public struct Outcome: Sendable, Equatable {
        public var name: String
        /// What was tried, in a few words.
        public var tried: String
        public var held: Bool
        /// What was seen: the probe's and the host's facts the verdict used.
        public var seen: String
    }

    /// A refusal: the call failed at once with an errno name (not OK, not a
    /// TIMEOUT, whose packet may have left; not missing).
    static func refused(_ v: String?) -> Bool {
        guard let v, v.count > 1, v.hasPrefix("E") else { return false }
        return v.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) }
    }

    public static func judge(_ o: Observations) -> [Outcome] {
        var out: [Outcome] = []
        func add(_ name: String, _ tried: String, _ run: Run?, _ keys: [String], hostKeys: [String] = [],
                 _ held: ([String: String], [String: String]) -> Bool) {
            let facts = run?.facts ?? [:]
            let ok = (run?.ran ?? true) && held(facts, o.host)
            var seen = keys.map { "\($0)=\(facts[$0] ?? "missing")" } + hostKeys.map { "host.\($0)=\(o.host[$0] ?? "missing")" }
            if let run, !run.ran { seen.insert("run status \(run.status), probe \(run.facts["probe-end"] == nil ? "did not finish" : "finished")", at: 0) }
            out.append(Outcome(name: name, tried: tried, held: ok, seen: seen.joined(separator: " ")))
        }
        let off = o.offline, net = o.network

        add("world-built", "build the world: outer user namespace, host and internet joined by veth", nil, [],
            hostKeys: ["world"]) { _, h in h["world"] == "built" }

        add("secrets", "read ~/.ssh/id_ed25519 and ~/.aws/credentials planted in the home", off,
            ["secret_ssh", "secret_aws"], hostKeys: ["marker_seen"]) { f, h in
            // Refused, or an empty decoy of agentpen's in its place.
            let hidden = { (v: String?) in refused(v) || v == "empty" }
            return hidden(f["secret_ssh"]) && hidden(f["secret_aws"]) && h["marker_seen"] == "no"
        }
        add("project-writable", "write a file in the project", off, ["project_write"], hostKeys: ["project_file"]) { f, h in
            f["project_write"] == "OK" && h["project_file"] == "written"
        }
        add("git-hooks-read-only", "create .git/hooks/pre-commit", off, ["git_hook"], hostKeys: ["git_hook"]) { f, h in
            refused(f["git_hook"]) && h["git_hook"] == "absent"
        }
        add("git-config-read-only", "append core.fsmonitor to .git/config", off, ["git_config"], hostKeys: ["git_config"]) { f, h in
            refused(f["git_config"]) && h["git_config"] == "unchanged"
        }
        add("git-dir-pinned", "rename .git aside", off, ["git_rename"], hostKeys: ["git_dir"]) { f, h in
            refused(f["git_rename"]) && h["git_dir"] == "in place"
        }
        add("planted-hook-moved-aside", "plant a nested repository with an executable post-checkout hook", off,
            ["nested_hook"], hostKeys: ["nested_hook"]) { f, h in
            f["nested_hook"] == "OK" && h["nested_hook"] == "quarantined"
        }
        add("home-left-clean", "write ~/.bashrc and ~/.ssh/authorized_keys inside", off,
            ["home_write"], hostKeys: ["home"]) { f, h in
            // Writing inside is allowed (the home is a tmpfs); none of it may reach the host's home.
            f["home_write"] != nil && h["home"] == "unchanged"
        }
        add("ptrace", "ptrace(PTRACE_PEEKDATA) of the parent", off, ["ptrace"]) { f, _ in f["ptrace"] == "EPERM" }
        add("process-vm-readv", "process_vm_readv of its own memory", off, ["process_vm_readv"]) { f, _ in
            f["process_vm_readv"] == "EPERM"
        }
        add("keyctl", "keyctl(KEYCTL_GET_KEYRING_ID) of the session keyring", off, ["keyctl"]) { f, _ in f["keyctl"] == "EPERM" }
        add("unshare", "unshare(CLONE_NEWUSER)", off, ["unshare"]) { f, _ in f["unshare"] == "EPERM" }
        add("mount", "mount a tmpfs on /tmp", off, ["mount"]) { f, _ in refused(f["mount"]) }
        add("tiocsti", "ioctl(TIOCSTI) to push input into a terminal", off, ["tiocsti"]) { f, _ in f["tiocsti"] == "EPERM" }
        add("af-vsock", "socket(AF_VSOCK) to the hypervisor", off, ["vsock"]) { f, _ in refused(f["vsock"]) }
        add("host-processes", "find the host's processes (agentpen selftest itself) in /proc", off,
            ["pid_ns", "processes", "host_selftest_visible"], hostKeys: ["pid_ns"]) { f, h in
            guard let inside = f["pid_ns"], let host = h["pid_ns"], inside.hasPrefix("pid:"), host.hasPrefix("pid:"),
                  let n = f["processes"].flatMap(Int.init), n > 0 else { return false }
            return inside != host && f["host_selftest_visible"] == "0"
        }
        add("host-loopback-offline", "connect to a service on the host's loopback with no network allowed", off,
            ["host_service"], hostKeys: ["service_arrivals"]) { f, h in
            refused(f["host_service"]) && h["service_arrivals"] == "0"
        }
        add("only-route-is-the-proxy", "read the routing table", net, ["routes_out", "routes_out_masks"]) { f, _ in
            // Nothing leaves but through loopback, or one /32 to pasta's gateway.
            (f["routes_out"] == "0" && f["routes_out_masks"] == "none")
                || (f["routes_out"] == "1" && f["routes_out_masks"] == "FFFFFFFF")
        }
        add("ip-literal", "connect to the internet's \(literalV4):443 and [\(literalV6)]:443", net, ["literal_v4", "literal_v6"],
            hostKeys: ["literal_logged", "internet_arrivals", "internet_allowed"]) { f, h in
            // Refused at once (no route, or reset by the namespace's catch-all), told
            // in the log, and nothing but the proxied connection at the internet.
            // On a pasta hop the internet's address is the gateway pasta copies: its
            // /32 route exists and the firewall drops (and logs) the SYN: a TIMEOUT.
            (refused(f["literal_v4"]) || f["literal_v4"] == "TIMEOUT") && refused(f["literal_v6"]) && h["literal_logged"] == "yes"
                && h["internet_arrivals"] != nil && h["internet_arrivals"] == h["internet_allowed"]
        }
        add("dns-unlisted", "ask the resolver for \(unlistedName) (and \(allowedName) as a control)", net,
            ["dns_unlisted", "dns_allowed"]) { f, _ in
            // The allowed name's answer is a loopback address (127.0.0.1 or its own per-name one).
            f["dns_unlisted"] == "NXDOMAIN" && f["dns_allowed"].map { $0.hasPrefix("127.") && IPAddress($0) != nil } == true
        }
        add("tls-unlisted", "send a ClientHello for \(unlistedName) to the proxy", net,
            ["proxy_connect", "sni_unlisted"], hostKeys: ["tls_refused_logged"]) { f, h in
            f["proxy_connect"] == "OK" && f["sni_unlisted"] == "closed" && h["tls_refused_logged"] == "yes"
        }
        add("allowed-host-reached", "send a ClientHello for \(allowedName) through the proxy to the world's internet", net,
            ["tls_allowed"], hostKeys: ["internet_allowed"]) { f, h in
            // The control: the world and the proxy work, so the refusals above mean something.
            f["tls_allowed"] == "answered" && h["internet_allowed"] == "1"
        }
        add("nothing-else-reached-the-internet", "count every connection the internet saw", nil, [],
            hostKeys: ["internet_arrivals", "internet_allowed"]) { _, h in
            h["internet_arrivals"] != nil && h["internet_arrivals"] == h["internet_allowed"]
        }
        add("udp-out", "send a UDP datagram to the internet's \(literalV4):53", net, ["udp"]) { f, _ in refused(f["udp"]) }
        add("host-loopback-network", "connect to the host's service on its loopback and on \(hostV4) through the network stack", net,
            ["host_service", "host_address_service"], hostKeys: ["service_arrivals", "host_address_logged"]) { f, h in
            let viaHost = refused(f["host_address_service"]) || (f["host_address_service"] == "TIMEOUT" && h["host_address_logged"] == "yes")
            return refused(f["host_service"]) && viaHost && h["service_arrivals"] == "0"
        }
        add("world-cleaned", "remove the throwaway world", nil, [], hostKeys: ["world_removed"]) { _, h in
            h["world_removed"] == "yes"
        }
        return out
    }
}
