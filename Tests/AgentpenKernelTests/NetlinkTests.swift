import AgentpenKernel
import AgentpenPolicy
import Glibc
import Testing

// The route lock-down and the firewall, exercised for real in a network namespace
// of the test's own making. A test process is multithreaded, so it cannot
// unshare(CLONE_NEWUSER) itself: the outer test re-runs this test bundle under
// `unshare -Urn` with AGENTPEN_NETLINK_INNER=1, and only the inner suite runs there.
// The inner suite plays pasta's part with a veth pair (the `dummy` module is not
// available to unprivileged namespaces everywhere; veth is), then runs the helper's
// steps and checks them with `ip` and with real sockets.

private let innerFlag = "AGENTPEN_NETLINK_INNER"
private let isInner = Host.environment[innerFlag] != nil

@Suite("Netlink lock-down in a fresh user+net namespace")
struct NetlinkTests {
    @Test(.enabled(if: !isInner))
    func lockDownInsideFreshNamespace() throws {
        signal(SIGPIPE, SIG_IGN)
        let inner = try runSelf(stage: "1", filter: "NetlinkInsideNamespace")
        expectPassed(inner, "lockDownAndFirewall()")
    }

    /// The same against the real pasta, in a world of the test's own: an outer
    /// user+net namespace plays the host (a veth uplink with a default route that
    /// leads nowhere, listeners on its loopback), a nested one plays the sandbox.
    @Test(.enabled(if: !isInner))
    func lockDownWithRealPasta() throws {
        signal(SIGPIPE, SIG_IGN)
        _ = try #require(systemProgram("pasta"), "pasta (Debian: apt install passt) is needed for this test")
        let inner = try runSelf(stage: "pasta-host", filter: "NetlinkPastaHost")
        expectPassed(inner, "lockDownUnderPasta()")
    }
}

/// A program from the system directories (never PATH), as agentpen finds its own.
func systemProgram(_ name: String) -> String? {
    HostPrograms.systemDirectories.map { $0 + "/" + name }.first { access($0, X_OK) == 0 }
}

/// nft as the namespace helper runs it: by the absolute path resolved at start.
func nftLoader() throws -> NftLoader {
    NftLoader(path: try #require(systemProgram("nft"), "nft (Debian: apt install nftables) is needed for this test"))
}

/// This test bundle, as an argv prefix.
func selfBundle() throws -> String {
    var exe = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &exe, exe.count - 1)
    try #require(n > 0)
    return String(decoding: exe[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// An inner half's run: its exit status, its output, and its xunit report.
struct InnerRun {
    var status: Int32
    var output: String
    var report: String
}

/// The inner half passed: exit status 0, its one test reported as passed on its
/// own line, and its xunit report holding that test, once, with no failure and
/// no skip. (A filter that matched nothing, or a test skipped, also exits 0.)
func expectPassed(_ r: InnerRun, _ test: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status == 0, "inner run failed (status \(r.status)):\n\(r.output)", sourceLocation: sourceLocation)
    #expect(r.output.split(separator: "\n").contains { $0.contains("Test \(test) passed after") },
            "no line saying \(test) passed:\n\(r.output)", sourceLocation: sourceLocation)
    let suite = r.report.split(separator: "\n").first { $0.contains("<testsuite ") }.map(String.init) ?? ""
    for want in ["tests=\"1\"", "failures=\"0\"", "skipped=\"0\"", "errors=\"0\""] {
        #expect(suite.contains(want), "xunit report lacks \(want):\n\(r.report)", sourceLocation: sourceLocation)
    }
    #expect(r.report.components("name=\"\(test)\"") == 1 && !r.report.contains("<failure"),
            "xunit report:\n\(r.report)", sourceLocation: sourceLocation)
}

/// A fresh path in this run's TMPDIR.
func scratchPath(_ name: String) -> String {
    (Host.environment["TMPDIR"] ?? "/tmp") + "/\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
}

/// Starts the suites matching `filter` of this bundle in a fresh user+net namespace
/// (or under `prefix`), output to a file; `finishSelf` waits for it.
func startSelf(stage: String, filter: String, via prefix: [String]? = nil,
               extraEnv: [String: String] = [:]) throws -> (pid: pid_t, output: String, report: String) {
    let unshare = try #require(systemProgram("unshare"), "util-linux unshare is needed for this test")
    var env = Host.environment.merging(extraEnv) { $1 }
    env[innerFlag] = stage
    env["NO_COLOR"] = "1"
    let output = scratchPath("netlink-\(stage).out"), report = scratchPath("netlink-\(stage).xml")
    let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    try #require(fd >= 0, "open \(output): errno \(errno)")
    defer { close(fd) }
    var o = Spawn.Options()
    o.env = env.map { EnvironmentVariable($0.key, $0.value) }
    o.fds = [(fd, 1), (fd, 2)]
    let argv = (prefix ?? [unshare, "-Urn"])
        + [try selfBundle(), "--testing-library", "swift-testing", "--filter", filter, "--xunit-output", report]
    return (try Spawn.start(argv, o), output, report)
}

func finishSelf(_ started: (pid: pid_t, output: String, report: String)) -> InnerRun {
    let status = Spawn.wait(started.pid)
    defer { unlink(started.output); unlink(started.report) }
    func text(_ path: String) -> String { Host.readFile(path) ?? "" }
    return InnerRun(status: status, output: text(started.output), report: text(started.report))
}

/// Runs the suites matching `filter` of this bundle in a fresh user+net namespace.
func runSelf(stage: String, filter: String, via prefix: [String]? = nil,
             extraEnv: [String: String] = [:]) throws -> InnerRun {
    finishSelf(try startSelf(stage: stage, filter: filter, via: prefix, extraEnv: extraEnv))
}

/// Waits (bounded against a hang only) until `path` exists, or `pid` is gone
/// (a zombie: it exited without creating it; left for its owner to reap).
func waitForFile(_ path: String, orExitOf pid: pid_t, timeout: Double = 60) -> Bool {
    for _ in 0..<Int(timeout * 50) {
        if access(path, F_OK) == 0 { return true }
        let stat = Spawn.run(["/bin/cat", "/proc/\(pid)/stat"]).output
        if let close = stat.lastIndex(of: ")"), stat[close...].dropFirst(2).first == "Z" { return false }
        usleep(20_000)
    }
    return false
}

@Suite("NetlinkPastaHost", .serialized, .enabled(if: Host.environment[innerFlag] == "pasta-host"))
struct NetlinkPastaHost {
    /// A listener on 127.0.0.1 (the host's loopback); returns (fd, port).
    func listener() throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        try #require(ok)
        return (fd, UInt16(bigEndian: sa.sin_port))
    }

    @Test func lockDownUnderPasta() throws {
        signal(SIGPIPE, SIG_IGN)
        let setup = """
            set -e
            ip link set lo up
            ip link add h0 type veth peer name h1
            ip addr add 198.18.9.2/24 dev h0
            ip -6 addr add fd0c:9::2/64 dev h0 nodad
            ip link set h0 up; ip link set h1 up
            ip route add default via 198.18.9.1
            ip -6 route add default via fd0c:9::1 dev h0
            """
        let r = Spawn.run(["/bin/sh", "-c", setup])
        try #require(r.status == 0, "\(r.output)")
        let (proxyFD, proxyPort) = try listener()      // the SNI proxy's stand-in
        let (dbFD, dbPort) = try listener()            // a local service the sandbox must not reach
        defer { close(proxyFD); close(dbFD) }

        let unshare = try #require(systemProgram("unshare"))
        let nsenter = try #require(systemProgram("nsenter"))
        let pasta = try #require(systemProgram("pasta"))
        // The namespace exists once its shell says so (unshare has made it and
        // exec'd, same PID); read that line before anything enters it.
        var ready: [Int32] = [0, 0]
        try #require(pipe(&ready) == 0)
        var so = Spawn.Options()
        so.fds = [(ready[1], 1)]
        let sandbox = try Spawn.start([unshare, "-rn", "/bin/sh", "-c", "echo ready; exec /bin/sleep 120"], so)
        close(ready[1])
        defer { kill(sandbox, SIGKILL); _ = Spawn.wait(sandbox) }
        var line = [UInt8](repeating: 0, count: 16)
        let n = read(ready[0], &line, line.count)
        close(ready[0])
        try #require(n > 0 && String(decoding: line[..<n], as: UTF8.self) == "ready\n", "the namespace did not come up")

        // The namespace half starts first and says when it is waiting for the
        // uplink; only then does pasta start, so the helper's wait is real.
        let waiting = scratchPath("netlink-waiting")
        defer { unlink(waiting) }
        let inner = try startSelf(stage: "pasta-ns", filter: "NetlinkPastaNamespace",
                                  via: [nsenter, "-t", "\(sandbox)", "-U", "-n", "--preserve-credentials"],
                                  extraEnv: ["AGENTPEN_TEST_PROXY_PORT": "\(proxyPort)",
                                             "AGENTPEN_TEST_OTHER_PORT": "\(dbPort)",
                                             "AGENTPEN_TEST_WAITING": waiting])
        let sawWaiting = waitForFile(waiting, orExitOf: inner.pid)
        var o = Spawn.Options()
        let devnull = open("/dev/null", O_RDWR)
        o.fds = [(devnull, 1), (devnull, 2)]
        let pastaPID = try Spawn.start([pasta, "--config-net", "-t", "none", "-u", "none", "-T", "none", "-U", "none",
                                        "-f", "\(sandbox)"], o)
        close(devnull)
        defer { kill(pastaPID, SIGTERM); _ = Spawn.wait(pastaPID) }
        let result = finishSelf(inner)
        #expect(sawWaiting, "the namespace half never waited for the uplink:\n\(result.output)")
        expectPassed(result, "insideSandbox()")
    }
}

@Suite("NetlinkPastaNamespace", .serialized, .enabled(if: Host.environment[innerFlag] == "pasta-ns"))
struct NetlinkPastaNamespace {
    @Test func insideSandbox() throws {
        signal(SIGPIPE, SIG_IGN)
        let proxyPort = try #require(Host.environment["AGENTPEN_TEST_PROXY_PORT"].flatMap { UInt16($0) })
        let otherPort = try #require(Host.environment["AGENTPEN_TEST_OTHER_PORT"].flatMap { UInt16($0) })
        let probe = NetlinkInsideNamespace()
        let waiting = try #require(Host.environment["AGENTPEN_TEST_WAITING"])
        let nl = try NetlinkRoute()
        // pasta is started only once this file exists: nothing is configured yet.
        #expect(throws: SystemError.self) { try nl.waitForConfiguredUplink(timeout: 0.05) }
        let fd = open(waiting, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        try #require(fd >= 0, "create \(waiting): errno \(errno)")
        close(fd)
        let uplink = try nl.waitForConfiguredUplink(timeout: 60)
        #expect(uplink.gateway == IPAddress("198.18.9.1"))
        #expect(uplink.address == IPAddress("198.18.9.2"))
        // pasta's gateway mapping: before lock-down every host loopback port is reachable.
        #expect(probe.tcpConnect(uplink.gateway.description, otherPort, wait: 30) == 0)

        try nl.lockDownRoutes(keepGateway: uplink.gateway, interfaceIndex: uplink.interfaceIndex)
        let locked = [RouteInfo(family: .ipv4, destination: prefix("198.18.9.1", 32), gateway: nil,
                                interfaceIndex: uplink.interfaceIndex, scope: .link, table: 254)]
        #expect(try nl.routes() == locked)
        try nftLoader().load(Firewall.ruleset(gateway: uplink.gateway, proxyPort: proxyPort))

        #expect(probe.tcpConnect(uplink.gateway.description, proxyPort, wait: 30) == 0)  // the proxy
        #expect(probe.tcpConnect(uplink.gateway.description, otherPort) == ETIMEDOUT)     // a host service: dropped
        #expect(probe.udpSend(uplink.gateway.description, 53) == EPERM)                   // DNS to the host: dropped
        #expect(probe.tcpConnect("198.18.9.77", 443) == ENETUNREACH)          // elsewhere: no route
        let counters = Firewall.parseCounters(try nftLoader().counters())
        #expect(counters["blocked_tcp"]?.packets == 1)
        #expect(counters["blocked_udp"]?.packets == 1)

        // Nothing comes back later: the kernel's router solicitation (after DAD) is
        // answered by pasta, which would otherwise reinstall an IPv6 default route.
        // Rather than wait for an advertisement that may or may not come, check
        // what keeps one out: IPv6 off on the uplink (no solicitation is sent, an
        // advertisement is dropped) and advertisements not accepted.
        let uplinkName = try #require(try nl.links().first { $0.index == uplink.interfaceIndex }?.name)
        for (knob, want) in [("disable_ipv6", "1"), ("accept_ra", "0")] {
            let r = Spawn.run(["/bin/cat", "/proc/sys/net/ipv6/conf/\(uplinkName)/\(knob)"])
            #expect(r.status == 0 && r.output.trimmingCharacters() == want, "\(knob): \(r.output)")
        }
        let later = try nl.routes()
        #expect(later == locked, "\(later)")
    }
}

@Suite("NetlinkInsideNamespace", .serialized, .enabled(if: Host.environment[innerFlag] == "1"))
struct NetlinkInsideNamespace {
    func sh(_ cmd: String) -> (status: Int32, output: String) {
        Spawn.run(["/bin/sh", "-c", cmd])
    }

    @discardableResult
    func mustRun(_ cmd: String) throws -> String {
        let r = sh(cmd)
        try #require(r.status == 0, "\(cmd): \(r.output)")
        return r.output
    }

    /// A TCP connect to addr:port, waiting up to `wait` seconds: 0 when connected,
    /// otherwise the errno (ECONNREFUSED: the SYN reached a peer, which answered with
    /// a reset; ETIMEDOUT here: no answer within `wait`, e.g. dropped by the firewall;
    /// ENETUNREACH: no route).
    func tcpConnect(_ addr: String, _ port: UInt16, wait: Double = 0.3) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, addr, &sa.sin_addr)
        let r = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if r == 0 { return 0 }
        guard errno == EINPROGRESS else { return errno }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, Int32(wait * 1000)) == 1 else { return ETIMEDOUT }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err
    }

    func udpSend(_ addr: String, _ port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, addr, &sa.sin_addr)
        let r = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, "x", 1, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return r >= 0 ? 0 : errno
    }

    /// An ICMP echo request over a raw socket (uid 0 in the namespace may).
    func icmpEcho(_ addr: String) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, addr, &sa.sin_addr)
        var packet: [UInt8] = [8, 0, 0xf7, 0xfe, 0, 1, 0, 0]   // type 8, checksum of the rest
        let r = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, &packet, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return r >= 0 ? 0 : errno
    }

    @Test func lockDownAndFirewall() throws {
        signal(SIGPIPE, SIG_IGN)
        try #require(getuid() == 0, "expected to run as uid 0 inside unshare -Urn")

        // The far side of the uplink: ap1 in a second namespace holding the gateway
        // address, so packets that leave really arrive somewhere (its kernel answers a
        // SYN to a closed port with a reset).
        let nsenter = try #require(systemProgram("nsenter"))
        let unshare = try #require(systemProgram("unshare"))
        let peer = try Spawn.start([unshare, "-n", "/bin/sleep", "120"])
        defer { kill(peer, SIGKILL); _ = Spawn.wait(peer) }
        try mustRun("ip link add ap0 type veth peer name ap1 && ip link set ap1 netns \(peer)")
        try mustRun("\(nsenter) -t \(peer) -n sh -c 'ip addr add 198.18.5.1/24 dev ap1 && ip link set ap1 up'")

        // Pasta's part, in the background, only once the test has seen that nothing
        // is configured yet and says "go" on the script's stdin: the wait is exercised.
        let configure = """
            read go
            ip link set ap0 up
            ip addr add 198.18.5.2/24 dev ap0
            ip -6 addr add fd0c::2/64 dev ap0 nodad
            ip route add default via 198.18.5.1
            ip route add 10.9.0.0/16 via 198.18.5.7
            ip -6 route add default via fd0c::1 dev ap0
            """
        var go: [Int32] = [0, 0]
        try #require(pipe(&go) == 0)
        var o = Spawn.Options()
        let devnull = open("/dev/null", O_RDWR)
        o.fds = [(go[0], 0), (devnull, 1)]
        let pasta = try Spawn.start(["/bin/sh", "-c", configure], o)
        close(go[0]); close(devnull)

        let nl = try NetlinkRoute()
        #expect(throws: SystemError.self) { try nl.waitForConfiguredUplink(timeout: 0.05) }
        _ = write(go[1], "go\n", 3)
        close(go[1])
        let uplink = try nl.waitForConfiguredUplink(timeout: 60)
        #expect(Spawn.wait(pasta) == 0)
        let ap0 = try #require(try nl.links().first { $0.name == "ap0" })
        #expect(uplink.interfaceIndex == ap0.index)
        #expect(uplink.gateway == IPAddress("198.18.5.1"))
        #expect(uplink.address == IPAddress("198.18.5.2"))
        #expect(try nl.ipv4Addresses(interfaceIndex: ap0.index) == [IPAddress("198.18.5.2")!])

        let before = try nl.routes()
        #expect(before.contains(RouteInfo(family: .ipv4, destination: nil, gateway: IPAddress("198.18.5.1"),
                                          interfaceIndex: ap0.index, scope: .universe, table: 254)))
        #expect(before.contains { $0.family == .ipv4 && $0.destination == prefix("198.18.5.0", 24) })
        #expect(before.contains { $0.family == .ipv6 && $0.destination == prefix("fe80::", 64) })
        #expect(before.contains { $0.family == .ipv6 && $0.destination == nil && $0.gateway == IPAddress("fd0c::1") })
        #expect(before.allSatisfy { $0.table == 254 })

        // deleteRoute on its own: the extra route goes, the rest stays.
        let extra = try #require(before.first { $0.destination == prefix("10.9.0.0", 16) })
        try nl.deleteRoute(extra)
        #expect(try !nl.routes().contains(extra))
        #expect(throws: SystemError.self) { try nl.deleteRoute(extra) }

        try nl.lockDownRoutes(keepGateway: uplink.gateway, interfaceIndex: uplink.interfaceIndex)

        let after = try nl.routes()
        #expect(after == [RouteInfo(family: .ipv4, destination: prefix("198.18.5.1", 32), gateway: nil,
                                    interfaceIndex: ap0.index, scope: .link, table: 254)], "\(after)")
        #expect(try nl.links().first { $0.isLoopback }?.isUp == true)
        // The same, as iproute2 sees it.
        let v4 = try mustRun("ip -4 route show table main")
        #expect(v4.trimmingCharacters() == "198.18.5.1 dev ap0 scope link", "\(v4)")
        let v6 = try mustRun("ip -6 route show table main")
        #expect(v6.split(separator: "\n").allSatisfy { $0.contains(" dev lo ") }, "\(v6)")
        #expect(try mustRun("ip link show lo").contains("UP"))
        // Running it again is harmless and still verifies.
        try nl.lockDownRoutes(keepGateway: uplink.gateway, interfaceIndex: uplink.interfaceIndex)
        #expect(try nl.routes() == after)
        #expect(throws: SystemError.self) {
            try nl.lockDownRoutes(keepGateway: IPAddress("fd0c::1")!, interfaceIndex: uplink.interfaceIndex)
        }

        // Routing alone: nothing but the gateway is reachable, on any port so far.
        #expect(tcpConnect("198.18.5.9", 443) == ENETUNREACH)
        #expect(tcpConnect("10.9.0.1", 443) == ENETUNREACH)
        #expect(tcpConnect("198.18.5.1", 5432, wait: 30) == ECONNREFUSED)

        // The firewall: loaded, then read back.
        let script = Firewall.ruleset(gateway: uplink.gateway, proxyPort: 40000)
        try nftLoader().load(script)
        let listed = try nftLoader().list()
        #expect(listed.components("table inet agentpen") == 1, "\(listed)")
        #expect(listed.components("policy drop;") == 3, "\(listed)")
        #expect(listed.contains("ip daddr 198.18.5.1 tcp dport 40000 accept"), "\(listed)")
        let listedJSON = try nftLoader().listJSON()
        #expect(Firewall.verifyLoaded(listedJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000) == .asBuilt, "\(listedJSON)")
        #expect(Firewall.verifyLoaded(listedJSON, gateway: nil, proxyPort: nil) != .asBuilt)

        #expect(tcpConnect("198.18.5.1", 40000, wait: 30) == ECONNREFUSED)  // the proxy port reaches the gateway
        #expect(tcpConnect("198.18.5.1", 5432) == ETIMEDOUT)               // any other port is dropped
        #expect(tcpConnect("198.18.5.1", 22) == ETIMEDOUT)
        #expect(udpSend("198.18.5.1", 53) == EPERM)
        #expect(icmpEcho("198.18.5.1") == EPERM)
        // Loopback still works (refused at once by the local stack, not dropped).
        #expect(tcpConnect("127.0.0.1", 9) == ECONNREFUSED)

        let counters = Firewall.parseCounters(try nftLoader().counters())
        #expect(Set(counters.keys) == Set(Firewall.counterNames), "\(counters)")
        // The run reads them over nfnetlink: the same names and values as nft's own listing.
        let dumped = try NftCounters.read()
        #expect(dumped.mapValues { [$0.packets, $0.bytes] } == counters.mapValues { [$0.packets, $0.bytes] })
        #expect(try NftCounters.read(table: "no-such-table").isEmpty)
        #expect(counters["blocked_tcp"]?.packets == 2)
        #expect(counters["blocked_udp"]?.packets == 1)
        #expect(counters["blocked_icmp"]?.packets == 1)
        #expect(counters["blocked_other"]?.packets == 0)
        #expect((counters["blocked_tcp"]?.bytes ?? 0) > 0)

        // A namespace that held an agentpen table already: the script has no preamble that
        // would replace it (deleting costs an RCU wait per start), so the second load
        // merges into the first and the read-back must refuse what it finds.
        try nftLoader().load(script)
        let twiceJSON = try nftLoader().listJSON()
        guard case .differs(let why) = Firewall.verifyLoaded(twiceJSON, gateway: IPAddress(198, 18, 5, 1), proxyPort: 40000) else {
            Issue.record("a table loaded twice verified as built: \(twiceJSON)")
            return
        }
        #expect(why.contains("rule(s) other than"), "\(why)")
    }
}

private extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        return String(s)
    }

    func components(_ needle: String) -> Int {
        var count = 0
        var rest = Substring(self)
        while let r = rest.firstRange(of: needle) {
            count += 1
            rest = rest[r.upperBound...]
        }
        return count
    }
}

/// A route destination from text, for the expectations above.
private func prefix(_ address: String, _ length: UInt8) -> IPPrefix? {
    IPAddress(address).flatMap { IPPrefix($0, length: length) }
}
