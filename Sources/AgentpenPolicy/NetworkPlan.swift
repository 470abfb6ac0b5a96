/// The network side of a run, as data: what the sandbox's name files say and
/// how pasta is started. The kernel edge carries it out.
public enum NetworkPlan {
    /// How a connection to an allowed name travels from the namespace to the proxy.
    public enum Hop: String, Sendable, CaseIterable {
        /// No packet stack: the namespace helper makes the listening sockets inside
        /// (TCP on every per-name address, UDP 53) and hands them to agentpen over
        /// a unix socket; agentpen accepts, vets and splices to the upstream itself.
        /// The namespace has loopback only.
        case direct
        /// pasta listens on the namespace's loopback :443 and splices each
        /// connection to the proxy's port on the host's loopback (`-T 443:PORT`).
        case splice
        /// agentpen's forwarder listens on the namespace's loopback :443 and
        /// connects to gateway:PORT, which pasta's tap maps to the host's loopback.
        case gateway

        /// Whether names get addresses of their own (NameAddresses): on the splice
        /// hop every name shares 127.0.0.1 (pasta's splice listens there only) and
        /// the proxy decides by SNI alone.
        public var perNameAddresses: Bool { self != .splice }

        /// `--hop` on the command line: `direct`, or `pasta` (the gateway hop, the
        /// design card's path). `splice` stays reachable through AGENTPEN_HOP for
        /// measurements.
        public init?(option: String) {
            switch option {
            case "direct": self = .direct
            case "pasta": self = .gateway
            default: return nil
            }
        }
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

    /// The hop a run takes without `--hop` or AGENTPEN_HOP: direct, by make bench
    /// (notes.md, "Per-name addresses, the direct hop…": more throughput, a fifth of
    /// the CPU and half the start-up of either pasta hop).
    public static let defaultHop = Hop.direct

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

    /// /etc/hosts with per-name addresses: each exact name → its own address
    /// (the same the DNS responder answers).
    public static func hostsFile(_ names: NameAddresses) -> String {
        var out = "127.0.0.1 localhost agentpen\n::1 localhost\n"
        for (name, address) in names.exact { out += "\(address) \(name)\n" }
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
        case .gateway, .direct:
            a += ["-T", "none"]
        }
        // No UDP or ICMP handling at all, and no automatic address configuration.
        a += ["--no-udp", "--no-icmp", "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra",
              "--runas", "\(uid):\(gid)", String(targetPID)]
        return a
    }

    /// One socket the namespace helper makes for the direct hop.
    public struct SocketSpec: Hashable, Sendable, CustomStringConvertible {
        public enum Kind: Hashable, Sendable { case tcpListener, udp }
        public var kind: Kind
        public var address: IPAddress
        public var port: UInt16
        public init(_ kind: Kind, _ address: IPAddress, _ port: UInt16) {
            self.kind = kind; self.address = address; self.port = port
        }
        public var description: String {
            (kind == .udp ? "udp " : "tcp ") + address.endpoint(port: port)
        }
    }

    /// The direct hop's sockets, in the order the helper makes and sends them: a
    /// TCP listener on every loopback address for 443 and for each port some name
    /// allows plain TCP on (the accepted socket's local address tells the name),
    /// and the DNS responder's UDP 127.0.0.1:53. Made in the namespace, which has
    /// loopback only, so "any address" is every loopback address and nothing else.
    /// `--allow-host-port` ports get a listener on 127.0.0.1 only (the sandbox
    /// dials its own localhost:PORT, as it would outside).
    public static func directSockets(_ allowlist: Allowlist, hostPorts: [UInt16] = []) -> [SocketSpec] {
        let any = IPAddress(0, 0, 0, 0)
        let ports = ([443] + allowlist.plainPorts.filter { $0 != 443 })
        return ports.map { SocketSpec(.tcpListener, any, $0) }
            + hostPorts.filter { !ports.contains($0) }.map { SocketSpec(.tcpListener, .loopbackV4, $0) }
            + [SocketSpec(.udp, .loopbackV4, 53)]
    }

    /// Why `--allow-host-port` ports cannot be served next to the allowlist's, or nil.
    public static func hostPortConflict(_ allowlist: Allowlist, hostPorts: [UInt16]) -> String? {
        let taken = [443] + allowlist.plainPorts
        guard let p = hostPorts.first(where: taken.contains) else { return nil }
        return "--allow-host-port \(p): port \(p) inside already leads to an allowed name"
    }

    /// Whether what agentpen received is exactly the plan (same kind, address and
    /// port, in order); otherwise what differs.
    public static func verifyHanded(_ got: [SocketSpec?], _ plan: [SocketSpec]) -> String? {
        guard got.count == plan.count else { return "\(got.count) sockets instead of \(plan.count)" }
        for (g, p) in zip(got, plan) where g != p {
            return "\(g.map(\.description) ?? "a descriptor that is no IP socket") where \(p) was expected"
        }
        return nil
    }

    /// The direct hop's catch-all, sent after the plan's sockets: a TCP listener on
    /// 127.0.0.1 on the port the firewall redirects refused connections to (chosen
    /// by the kernel, never 0), and the same port on ::1 when the namespace has
    /// IPv6 loopback. Returns the port, or what differs.
    public static func verifyCatchAll(_ got: [SocketSpec?]) -> Result<UInt16, CatchAllMismatch> {
        guard let first = got.first, let v4 = first, v4.kind == .tcpListener, v4.address == .loopbackV4, v4.port != 0 else {
            return .failure(CatchAllMismatch(got.first.flatMap { $0 }.map(\.description) ?? "no TCP listener on 127.0.0.1"))
        }
        guard got.count <= 2 else { return .failure(CatchAllMismatch("\(got.count) catch-all sockets")) }
        if got.count == 2 {
            let v6 = got[1]
            guard v6 == SocketSpec(.tcpListener, .loopbackV6, v4.port) else {
                return .failure(CatchAllMismatch("\(v6.map(\.description) ?? "a descriptor that is no IP socket")"
                                                 + " where tcp [::1]:\(v4.port) was expected"))
            }
        }
        return .success(v4.port)
    }

    public struct CatchAllMismatch: Error, Hashable, Sendable, CustomStringConvertible {
        public let description: String
        public init(_ d: String) { description = "the catch-all: " + d }
    }
}
