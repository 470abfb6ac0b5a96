/// The network side of a run, as data: what the sandbox's name files say and
/// how pasta is started. The kernel edge carries it out.
public enum NetworkPlan {
    /// How a connection to an allowed name travels from the namespace to the proxy.
    public enum Hop: String, Sendable, CaseIterable {
        /// pasta listens on the namespace's loopback :443 and splices each
        /// connection to the proxy's port on the host's loopback (`-T 443:PORT`).
        case splice
        /// agentpen's forwarder listens on the namespace's loopback :443 and
        /// connects to gateway:PORT, which pasta's tap maps to the host's loopback.
        case gateway
    }

    /// What this pasta build understands (the 2023 Debian build lacks the newer options).
    public struct PastaFeatures: Sendable, Equatable {
        public var noMapGateway: Bool
        public var mapHostLoopback: Bool
        public init(helpText: String) {
            noMapGateway = helpText.contains("--no-map-gw")
            mapHostLoopback = helpText.contains("--map-host-loopback")
        }
        public var generation: String {
            mapHostLoopback ? "current pasta (has --map-host-loopback)" : "older pasta (2023, no --map-host-loopback)"
        }
    }

    /// The address allowed names resolve to inside: the loopback :443 listener.
    public static let forwarderAddress = "127.0.0.1"

    /// Concurrent connections the proxy and forwarder accept from one client.
    /// Every connection of a sandbox arrives from the same loopback address, so
    /// this is the cap per sandbox.
    public static let connectionsPerSandbox = 2048

    /// /etc/hosts inside: each exact allowed name → the forwarder. Wildcards
    /// cannot be listed; the DNS responder answers those.
    public static func hostsFile(_ allowlist: Allowlist) -> String {
        var out = "127.0.0.1 localhost agentpen\n::1 localhost\n"
        for name in allowlist.exactNames { out += "\(forwarderAddress) \(name)\n" }
        return out
    }

    /// resolv.conf inside: the in-namespace DNS responder, which never forwards.
    public static let resolvConf = "# agentpen: answers only allowed names; nothing is forwarded\nnameserver 127.0.0.1\noptions attempts:1 timeout:2\n"

    /// pasta with every automatic forward off, attached to the namespace of `targetPID`.
    public static func pastaArgs(pasta: String, hop: Hop, proxyPort: UInt16, uid: UInt32, gid: UInt32,
                                 targetPID: Int32, features: PastaFeatures) -> [String] {
        var a = [pasta, "--foreground", "--quiet", "--config-net",
                 "-t", "none", "-u", "none", "-U", "none"]
        switch hop {
        case .splice:
            // The one port that leads anywhere: namespace loopback :443 → the proxy.
            a += ["-T", "443:\(proxyPort)"]
            // Nothing needs the gateway to reach the host, so it does not.
            if features.noMapGateway { a += ["--no-map-gw"] }
            else if features.mapHostLoopback { a += ["--map-host-loopback", "none"] }
        case .gateway:
            a += ["-T", "none"]
        }
        // No UDP or ICMP handling at all, and no automatic address configuration.
        a += ["--no-udp", "--no-icmp", "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra",
              "--runas", "\(uid):\(gid)", String(targetPID)]
        return a
    }
}
