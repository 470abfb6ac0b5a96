import AgentpenCommandLine
import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import AgentpenProxy
import CShim
import Glibc

/// `agentpen __netns …` (NetArguments): builds the user and network namespace the sandbox runs
/// in, locks it down once pasta has attached, and starts bubblewrap in it.
/// Starts single-threaded (unshare of a user namespace requires it).
///
/// Descriptors from the parent: 3 bubblewrap's status stream (passed on),
/// 4 "namespace ready" to the parent, 5 "pasta started" from the parent,
/// 6 event lines to the parent, 7 the sandbox's environment (NUL-separated
/// NAME=VALUE, for bubblewrap only), 8 (direct hop) the unix socket the
/// namespace's listening sockets go out on; 10 and up the plan's files (passed on).
/// The helper itself runs in HostPrograms.environment and runs nft by the
/// absolute path it is given.
enum NetHelper {
    static let statusFD: Int32 = 3, readyFD: Int32 = 4, goFD: Int32 = 5, eventsFD: Int32 = 6, envFD: Int32 = 7
    static let socketsFD: Int32 = 8
    /// Gateway hop: the run's forwarder token (a memfd), never on a command line.
    static let tokenFD: Int32 = 9
    /// Direct hop: the start gate's read end, at this number in bubblewrap and the
    /// sandbox (`__exec --gate`); one byte once the firewall is in force.
    static let gateFD: Int32 = 4

    /// The sandbox's environment from its memfd (inherited as `fd`, which this closes).
    static func readEnvironment(_ fd: Int32) -> [EnvironmentVariable]? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        let file = Descriptor(fd)
        let text = Runner.readAll(file.raw)
        file.close()
        return text.split(separator: "\u{0}").compactMap(EnvironmentVariable.init(entry:))
    }

    static func main(_ args: NetArguments) -> Never {
        guard let sandboxEnv = readEnvironment(envFD) else { fail("internal: the sandbox's environment is missing") }
        let nft = NftLoader(path: args.nft)
        let uid = getuid(), gid = getgid()

        // 1. Our own user and network namespace; uid 0 inside is the caller outside.
        let rc = ap_unshare(AP_CLONE_NEWUSER | AP_CLONE_NEWNET)
        guard rc == 0 else {
            fail("cannot create a user and network namespace: \(SystemError("unshare", result: Int(rc)))."
                 + " Fix: allow unprivileged user namespaces (sysctl user.max_user_namespaces=15000;"
                 + " on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0). Run agentpen --check.")
        }
        do {
            try writeFile("/proc/self/setgroups", "deny")
            try writeFile("/proc/self/uid_map", "0 \(uid) 1")
            try writeFile("/proc/self/gid_map", "0 \(gid) 1")
        } catch { fail("cannot map the user namespace: \(error)") }

        if args.hop == .direct { direct(args, sandboxEnv: sandboxEnv, nft: nft) }

        // 2. Tell the parent to attach pasta, and wait until it has.
        guard signal(Descriptor(readyFD)), waitFor(Descriptor(goFD)) else { exit(125) }   // the parent reports why

        // 3. Lock the namespace down: one /32 route to the gateway, nft output policy drop.
        let events = EventLog(fd: eventsFD)
        let gateway: IPAddress
        do {
            let nl = try NetlinkRoute()
            let uplink = try nl.waitForConfiguredUplink(timeout: 5)
            gateway = uplink.gateway
            try nl.lockDownRoutes(keepGateway: uplink.gateway, interfaceIndex: uplink.interfaceIndex)
            // Every other destination routable on loopback, so that the firewall
            // refuses it at once instead of the route lock answering ENETUNREACH unheard.
            try nl.addLoopbackDefaultRoutes()
        } catch { fail("cannot lock down the sandbox's routes: \(error)") }
        // Names: the DNS responder answers allowed names with the forwarder's
        // address; on the gateway hop each name has its own (NameAddresses), which
        // a refused connection to it is reported with.
        let allowlist = Allowlist(args.hosts)
        let names = args.hop.perNameAddresses ? NameTable(NameAddresses(allowlist)) : nil
        let refusals = startRefusals(events, names: names)
        do {
            let viaGateway = args.hop == .gateway
            let allowGateway = viaGateway ? gateway : nil
            let allowPort = viaGateway ? args.proxyPort : nil
            try loadFirewall(nft, gateway: allowGateway, proxyPort: allowPort, catchAllPort: refusals.catchAllPort,
                             names: names.map { _ in Firewall.NamePorts(allowlist) })
        } catch { fail("cannot load the sandbox firewall: \(error)") }

        // 4. The DNS responder, in the namespace.
        let dns = DNSResponder(allowlist: allowlist, events: events, names: names)
        do { try dns.start(bindAddress: "127.0.0.1", port: 53) }
        catch { fail("cannot start the DNS responder inside the sandbox: \(error)") }
        _ = try? dns.start(bindAddress: "::1", port: 53)   // IPv6 loopback may be absent
        // Loopback :443: pasta's splice, or agentpen's forwarder through the tap to the gateway.
        var forwarder: Forwarder?
        switch args.hop {
        case .splice:
            do { try NetlinkRoute().setLoopbackQuickAck() }
            catch { fail("cannot set up the sandbox's loopback routes: \(error)") }
            // pasta configures the interface (all the uplink wait above sees) before
            // it listens on the namespace's loopback :443: the sandbox must not start
            // first, or its first connections are refused at once.
            guard waitForSpliceListener(timeout: 5) else { fail("pasta did not listen on port 443 inside the sandbox within 5 s") }
        case .gateway:
            let tokenFile = Descriptor(tokenFD)    // inherited, ours to close
            let token = Runner.readAll(tokenFile.raw)
            tokenFile.close()
            guard !token.isEmpty else { fail("internal: the forwarder token is missing") }
            let f = Forwarder(target: gateway, port: args.proxyPort, events: events,
                              config: ProxyConfig(maxConnectionsPerClient: NetworkPlan.connectionsPerSandbox),
                              names: names, token: token)
            // Every loopback address (each name has its own), on 443 and each NAME:PORT port.
            for port in [443] + allowlist.plainPorts.filter({ $0 != 443 }) {
                do { try f.start(bindAddress: "0.0.0.0", port: port) }
                catch { fail("cannot start the forwarder on port \(port) inside the sandbox: \(error)") }
            }
            forwarder = f
        case .direct:
            fail("internal: the direct hop has its own set-up")
        }

        runSandbox(args, sandboxEnv: sandboxEnv, events: events) {
            dns.stop()
            forwarder?.stop()
            return refusals.stop()
        }
    }

    /// The direct hop, once the namespace exists: loopback up and nothing else,
    /// the firewall, the listening sockets made here and sent to agentpen, which
    /// serves them (DNS, proxy); bubblewrap meanwhile, its agent held at the start
    /// gate until the firewall is in force and agentpen has checked them.
    static func direct(_ args: NetArguments, sandboxEnv: [EnvironmentVariable], nft: NftLoader) -> Never {
        Descriptor(readyFD).close()    // inherited; this hop signals nothing on it
        let events = EventLog(fd: eventsFD)
        // bubblewrap builds the sandbox's filesystem while loopback, the sockets and the
        // firewall are set up here (none of them depends on the others); the exec
        // helper inside holds the agent at the gate until the byte written below. If
        // this helper fails or dies first, the gate reads end of file and the agent
        // never starts (and bubblewrap dies with its parent).
        var gate: Descriptor.Pipe
        do { gate = try Descriptor.pipe() } catch { fail("cannot prepare the sandbox's start gate: \(error)") }
        let sandbox = startSandbox(args, sandboxEnv: sandboxEnv, gate: gate.read.raw)
        gate.read.close()    // bubblewrap has its copy; the write end opens the gate below
        do {
            let nl = try NetlinkRoute()
            guard let lo = try nl.links().first(where: \.isLoopback) else { fail("the new namespace has no loopback") }
            try nl.setLinkUp(index: lo.index)
            // Every destination routable on loopback, so that the firewall refuses
            // (and reports) it at once instead of ENETUNREACH unheard.
            try nl.addLoopbackDefaultRoutes()
            let verdict = RoutePolicy.verifyLoopbackOnly(links: try nl.links(), routes: try nl.routes())
            if verdict != .loopbackOnly {
                fail("the sandbox's namespace is not loopback-only: \(verdict)")
            }
        } catch { fail("cannot set up the sandbox's loopback: \(error)") }
        // Refused TCP goes to a catch-all made here and served by agentpen (which
        // knows every name's address, pooled ones included); the rest is read here.
        let reporter = RefusalReporter(events: events)
        let nflog = startNFLog(events, reporter)
        let allowlist = Allowlist(args.hosts)
        // The plan's sockets, then the catch-all's (nothing inside connects before the gate opens).
        var made: DescriptorList
        let catchAllPort: UInt16
        do {
            made = try HandedSockets.make(NetworkPlan.directSockets(allowlist, hostPorts: args.hostPorts))
            catchAllPort = try HandedSockets.makeCatchAll(into: &made)
        } catch { fail("cannot listen inside the sandbox: \(error)") }
        do {
            try loadFirewall(nft, gateway: nil, proxyPort: nil, catchAllPort: catchAllPort,
                             names: Firewall.NamePorts(allowlist))
        } catch { fail("cannot load the sandbox firewall: \(error)") }
        guard HandedSockets.send(socketsFD, made) else { fail("cannot hand the sandbox's sockets to agentpen") }
        _ = consume made   // agentpen has them now
        if !args.serveSockets { Descriptor(socketsFD).close() }
        guard waitFor(Descriptor(goFD)) else { exit(125) }   // agentpen says why
        guard signal(gate.write) else { fail("cannot open the sandbox's start gate") }
        superviseSandbox(sandbox, events: events, serve: args.serveSockets ? socketsFD : nil) {
            nflog.stop()
            reporter.finish()
            return nflog.recordsByCounter
        }
    }

    /// Refused flows on the pasta hops: the catch-all listener for TCP, the NFLOG
    /// reader for the rest (the direct hop's catch-all is agentpen's). `stop`
    /// returns the records itemised per counter.
    struct Refusals {
        let reporter: RefusalReporter, catchAll: CatchAll, nflog: NFLogReader, catchAllPort: UInt16
        func stop() -> [String: Int] {
            catchAll.stop()
            nflog.stop()
            reporter.finish()
            return nflog.recordsByCounter
        }
    }

    static func startRefusals(_ events: EventLog, names: NameTable?) -> Refusals {
        let reporter = RefusalReporter(events: events, names: { names?.name(at: $0) })
        let catchAll = CatchAll(reporter: reporter)
        let port: UInt16
        do { port = try catchAll.start() }
        catch { fail("cannot start the catch-all listener inside the sandbox: \(error)") }
        return Refusals(reporter: reporter, catchAll: catchAll, nflog: startNFLog(events, reporter), catchAllPort: port)
    }

    /// The NFLOG reader (UDP, ICMP, other protocols), on every hop.
    static func startNFLog(_ events: EventLog, _ reporter: RefusalReporter) -> NFLogReader {
        // ICMP echo sockets for the sandbox's group only (uid 0 here is the caller):
        // a ping then fails at its first send with EPERM from the firewall, which
        // logs it, instead of at socket creation where nobody hears of it.
        _ = try? writeFile("/proc/sys/net/ipv4/ping_group_range", "0 0")
        let nflog = NFLogReader(group: NFLog.group, reporter: reporter)
        do { try nflog.start() } catch {
            events.record(Event(.setup, subject: .firewall,
                                reason: "refused UDP and ICMP are counted but not itemised: \(error)"))
        }
        return nflog
    }

    /// Loads the ruleset and reads it back as data; any difference stops the run.
    static func loadFirewall(_ nft: NftLoader, gateway: IPAddress?, proxyPort: UInt16?, catchAllPort: UInt16,
                             names: Firewall.NamePorts?) throws {
        try nft.load(Firewall.ruleset(gateway: gateway, proxyPort: proxyPort, catchAllPort: catchAllPort,
                                      logGroup: NFLog.group, names: names))
        let loaded = try nft.listJSON()
        if case .differs(let why) = Firewall.verifyLoaded(loaded, gateway: gateway, proxyPort: proxyPort,
                                                           catchAllPort: catchAllPort, logGroup: NFLog.group, names: names) {
            fail("the firewall did not load as written (\(why)):\n\(indented: loaded)")
        }
    }

    /// Waits for `pid`; meanwhile (with `serve`) answers each request on that unix
    /// socket with one fresh TCP socket made in this namespace (`--publish`).
    static func wait(_ pid: pid_t, serving sock: Int32?) -> Int32 {
        guard let sock else { return Spawn.wait(pid) }
        let opened = ap_pidfd_open(pid)
        guard opened >= 0 else { return Spawn.wait(pid) }
        let process = Descriptor(opened)
        let pidfd = process.raw
        var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0), pollfd(fd: sock, events: Int16(POLLIN), revents: 0)]
        var serving = true
        while true {
            fds[1].fd = serving ? sock : -1
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue }; break }
            if fds[0].revents != 0 { break }
            guard fds[1].revents != 0 else { continue }
            var tag: UInt8 = 0, none: Int32 = -1, got: Int32 = 0
            let r = ap_recv_fds(sock, &tag, &none, 1, &got)
            if got > 0 { Descriptor(none).close() }    // a request brings none: one that came is ours, closed
            if r <= 0 { serving = false; continue }
            let s = ap_socket(4, 0)
            if s >= 0 {
                let socket = Descriptor(s)    // sent as a copy: ours is closed at the end of the scope
                var one = socket.raw
                _ = ap_send_fds(sock, tag, &one, 1)
            }
        }
        process.close()
        return Spawn.wait(pid)
    }

    /// Starts bubblewrap in the namespace, waits for it, reports the firewall's counts.
    static func runSandbox(_ args: NetArguments, sandboxEnv: [EnvironmentVariable], events: EventLog,
                           serve: Int32? = nil, stop: () -> [String: Int]) -> Never {
        superviseSandbox(startSandbox(args, sandboxEnv: sandboxEnv), events: events, serve: serve, stop: stop)
    }

    /// Starts bubblewrap in the namespace (with `gate`: its read end at `gateFD` there).
    static func startSandbox(_ args: NetArguments, sandboxEnv: [EnvironmentVariable], gate: Int32? = nil) -> pid_t {
        let pid: pid_t
        var fds = ([statusFD] + args.passFDs).map { ($0, $0) }
        if let gate { fds.append((gate, gateFD)) }
        do { pid = try Spawn.start(args.bwrap, .supervised(fds: fds, env: sandboxEnv)) }
        catch { fail("cannot start bubblewrap: \(error)") }
        // bubblewrap has its copies now: the plan's files and the status pipe, inherited, are closed here.
        var passed = DescriptorList(taking: args.passFDs)
        passed.closeAll()
        Descriptor(statusFD).close()
        ap_forward_termination_to(pid)
        return pid
    }

    /// Waits for bubblewrap, reports the firewall's counts.
    static func superviseSandbox(_ pid: pid_t, events: EventLog, serve: Int32? = nil,
                                 stop: () -> [String: Int]) -> Never {
        let status = wait(pid, serving: serve)
        let logged = stop()
        reportFirewall(events, logged: logged)
        exit(status)
    }

    /// What the firewall dropped, as one event per protocol (every packet, itemised
    /// or not). Its `attempts` are the packets no NFLOG record reported (over the
    /// log rate, or lost), so the exit summary counts every refused packet once.
    static func reportFirewall(_ events: EventLog, logged: [String: Int]) {
        // From the kernel over nfnetlink (no nft process on the way out); a
        // failure is said, not passed over: the counts would be missing.
        let counters: [String: NftCounterDump.Counter]
        do { counters = try NftCounters.read() } catch {
            events.record(Event(.setup, subject: .firewall, reason: "the firewall's counters could not be read: \(error)"))
            return
        }
        for (name, c) in counters.sorted(by: { $0.key < $1.key }) where c.packets > 0 {
            let proto = name.replacingPrefix("blocked_")
            let unlogged = c.packets > UInt64(logged[name] ?? 0) ? c.packets - UInt64(logged[name] ?? 0) : 0
            var details = ["protocol": proto, "packets": String(c.packets)]
            var reason = "\(c.packets) outgoing \(proto) packet(s) dropped (not through the proxy)"
            if unlogged > 0 && logged[name] != nil {
                reason += "; \(unlogged) not itemised (over the log rate)"
            }
            if unlogged > 1 { details["attempts"] = String(unlogged) }
            // Every packet already itemised: the totals go to --log only, not again into the summary.
            let kind: Event.Kind = unlogged == 0 ? .setup : .connectionBlocked
            events.record(Event(kind, subject: .firewall, reason: reason, details: details))
        }
    }

    static func writeFile(_ path: String, _ text: String) throws(SystemError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path, errno: errno) }
        let file = Descriptor(fd)
        let n = text.withCString { write(file.raw, $0, strlen($0)) }
        if n < 0 { throw SystemError("write", path, errno: errno) }
    }

    /// Writes the one byte that says "ready" and closes `fd`.
    static func signal(_ fd: consuming Descriptor) -> Bool {
        var byte: UInt8 = 1
        let ok = write(fd.raw, &byte, 1) == 1
        fd.close()
        return ok
    }

    /// pasta's `-T 443` listener in this namespace (on 127.0.0.1 or any address),
    /// looked for in /proc/self/net/tcp every millisecond, for `timeout` seconds at most.
    static func waitForSpliceListener(timeout: Double) -> Bool {
        for _ in 0..<Int(timeout * 1000) {
            let table = Host.readFile("/proc/self/net/tcp") ?? ""
            if SocketOwner.listens(inTCPTable: table, local: .loopbackV4, port: 443)
                || SocketOwner.listens(inTCPTable: table, local: IPAddress(0, 0, 0, 0), port: 443) { return true }
            usleep(1000)
        }
        return false
    }

    /// Waits for the one byte that says "go" and closes `fd` (also the exec
    /// helper's start gate, inside the sandbox).
    static func waitFor(_ fd: consuming Descriptor) -> Bool {
        var byte: UInt8 = 0
        var n: Int
        repeat { n = read(fd.raw, &byte, 1) } while n < 0 && errno == EINTR
        fd.close()
        return n == 1
    }

    static func fail(_ message: TerminalText) -> Never {
        TerminalText.printError(message)
        exit(125)
    }
}

extension String {
    func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}
