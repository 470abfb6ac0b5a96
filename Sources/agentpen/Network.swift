import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import AgentpenProxy
import CShim
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// Network confinement. No allowed hosts: bubblewrap's own empty network
/// namespace. Otherwise agentpen's namespace with pasta, a /32 route, an nft
/// firewall, the in-namespace DNS responder, and the SNI proxy on the host.
enum Network {
    /// Whether the run needs agentpen's network namespace at all.
    static func needed(_ allowlist: Allowlist, _ options: Options) -> Bool {
        !allowlist.isEmpty || !options.hostPorts.isEmpty || !options.publish.isEmpty || options.unlistedNames != .refuse
    }

    static func mode(for allowlist: Allowlist, options: Options) -> NetworkMode {
        let hop = hop(options)
        if !needed(allowlist, options) { return .none }
        let hosts = hop.perNameAddresses ? NetworkPlan.hostsFile(NameAddresses(allowlist)) : NetworkPlan.hostsFile(allowlist)
        return .proxied(hostsFile: hosts, resolvConf: NetworkPlan.resolvConf)
    }

    /// `--hop`, else `AGENTPEN_HOP` (`direct`, `gateway`, `splice`: for measurements), else the default.
    static func hop(_ options: Options) -> NetworkPlan.Hop {
        options.hop
            ?? ProcessInfo.processInfo.environment["AGENTPEN_HOP"].flatMap(NetworkPlan.Hop.init(rawValue:))
            ?? NetworkPlan.defaultHop
    }

    static func describe(_ p: Prepared) -> [String] {
        if !needed(p.allowlist, p.options) { return ["none: the sandbox has its own empty network namespace"] }
        let hop = hop(p.options)
        func shown(_ p: HostPattern, _ text: String) -> String {
            text + (p.allowsPrivateUpstream ? " (private upstream allowed)" : "")
        }
        var lines = ["allowed hosts (TLS on port 443 only): " + p.allowlist.patterns.filter(\.tls).map {
            shown($0, $0.description) }.joined(separator: ", ")]
        let plain = p.allowlist.patterns.filter { !$0.ports.isEmpty }
        if !plain.isEmpty {
            lines.append("allowed NAME:PORT (any TCP protocol): " + plain.map { p in
                shown(p, p.ports.map { "\(p.description):\($0)" }.joined(separator: ", ")) }
                .joined(separator: ", "))
        }
        if let up = p.options.upstreamProxy {
            lines.append("upstream proxy: \(up.redactedURL) ([proxy] in the global config): CONNECT NAME:PORT for each allowed name"
                         + (up.noProxy.isEmpty ? "" : " but no_proxy's (\(up.noProxy.joined(separator: ", ")): dialled directly)"))
            lines.append("  " + UpstreamProxy.vettingNote)
        }
        if hop == .direct {
            lines.append("hop: direct; listening sockets made inside, served by agentpen (no pasta):")
            lines += NetworkPlan.directSockets(p.allowlist, hostPorts: p.options.hostPorts).map { "  \($0)" }
            for port in p.options.hostPorts { lines.append("  127.0.0.1:\(port) inside → this machine's 127.0.0.1:\(port) (--allow-host-port)") }
            for port in p.options.publish { lines.append("  this machine's 127.0.0.1:\(port) → 127.0.0.1:\(port) inside (--publish)") }
            for (name, address) in NameAddresses(p.allowlist).exact { lines.append("  \(name) → \(address)") }
            lines.append("  wildcard names: an address each from 127.0.16.1 on, when first looked up")
            switch p.options.unlistedNames {
            case .refuse: break
            case .hold: lines.append("  other names (--ask): an address each from the same pool; a TLS connection waits up to \(p.options.askTimeout) s for your decision")
            case .pass: lines.append("  other names (--audit): an address each from the same pool; TLS goes through, recorded as would-block (private and loopback upstreams refused)")
            }
            lines.append("routes inside: loopback, and a default route on loopback")
            lines.append("nft ruleset inside (CATCH: the catch-all listener's port on loopback, chosen at start):")
            lines += Firewall.ruleset(gateway: nil, proxyPort: nil, catchAllPort: 65535, logGroup: NFLog.group,
                                      names: Firewall.NamePorts(p.allowlist))
                .replacing(":65535", with: ":CATCH")
                .split(separator: "\n").map { "  " + $0 }
            lines.append("refused flows: TCP reset by the catch-all (served by agentpen; a name's address on a port"
                         + " nothing serves is reported with the name), the rest dropped (EPERM; ICMPv6 echo answered"
                         + " administratively prohibited) and read from NFLOG group \(NFLog.group)")
            return lines
        }
        lines.append("hop: \(hop.rawValue); SNI proxy on host 127.0.0.1:<ephemeral port>")
        let pasta = p.programs.path(.pasta) ?? "pasta"
        let features = NetworkPlan.PastaFeatures(helpText: p.programs.path(.pasta).map(pastaHelp) ?? "")
        lines.append("pasta: " + NetworkPlan.pastaArgs(pasta: pasta, hop: hop, proxyPort: 0, uid: p.facts.uid,
                                                       gid: p.facts.gid, targetPID: 0, features: features)
            .joined(separator: " ") + "   (port and pid filled in at start)")
        lines.append("routes inside: GATEWAY/32, and a default route on loopback (no route through the uplink but the /32)")
        lines.append("nft ruleset inside (CATCH: the catch-all listener's port on loopback, chosen at start):")
        // Without the proxy port (known at start) the ruleset has no gateway rule on either hop.
        lines += Firewall.ruleset(gateway: nil, proxyPort: nil, catchAllPort: 65535, logGroup: NFLog.group,
                                  names: hop.perNameAddresses ? Firewall.NamePorts(p.allowlist) : nil)
            .replacing(":65535", with: ":CATCH")
            .split(separator: "\n").map { "  " + $0 }
        lines.append("refused flows: TCP reset by the catch-all, the rest dropped (EPERM) and read from NFLOG group"
                     + " \(NFLog.group); each reported with protocol, address and port")
        lines.append("DNS responder inside on 127.0.0.1:53: allowed names → \(NetworkPlan.forwarderAddress), others NXDOMAIN")
        return lines
    }

    static func pastaHelp(_ pasta: String) -> String {
        Spawn.run([pasta, "--help"], env: HostPrograms.environment).output
    }

    /// `sandboxGone` is called as soon as no process of the agent's is left (the
    /// refused-syscall filter's hang-up), before bubblewrap and the helpers have
    /// ended; never if the agent did not start.
    static func run(_ p: Prepared, events: EventLog, holds: HoldQueue? = nil,
                    sandboxGone: (@Sendable () -> Void)? = nil) throws(Failure) -> Int32 {
        if !needed(p.allowlist, p.options) { return try Runner.runOffline(p, events: events, sandboxGone: sandboxGone) }
        return try NetworkedRun(prepared: p, events: events, holds: holds, sandboxGone: sandboxGone).run()
    }
}

/// One networked run: the proxy, the namespace helper and pasta, and their teardown.
final class NetworkedRun {
    let prepared: Prepared
    let events: EventLog
    /// `--ask`: decides about held connections.
    let holds: HoldQueue?
    /// See `Network.run`.
    let sandboxGone: (@Sendable () -> Void)?

    init(prepared: Prepared, events: EventLog, holds: HoldQueue?, sandboxGone: (@Sendable () -> Void)? = nil) {
        self.prepared = prepared
        self.events = events
        self.holds = holds
        self.sandboxGone = sandboxGone
    }

    func run() throws(Failure) -> Int32 {
        let plan = prepared.plan
        let bwrap = try Runner.program(.bwrap, prepared)
        let nft = try Runner.program(.nft, prepared)
        let hop = Network.hop(prepared.options)
        if hop == .direct { return try runDirect(bwrap: bwrap, nft: nft) }
        if hop == .splice, let p = prepared.allowlist.patterns.first(where: { !$0.ports.isEmpty }) {
            throw .usage("--allow \(p.specs.last ?? p.description): a NAME:PORT needs --hop direct or pasta (the splice hop carries TLS only)")
        }
        if let port = prepared.options.hostPorts.first {
            throw .usage("--allow-host-port \(port) needs --hop direct")
        }
        // Unlisted names need per-name addresses: the address names the host before the first byte.
        if prepared.options.audit { throw .usage("--audit needs --hop direct") }
        if prepared.options.ask { throw .usage("--ask needs --hop direct") }
        if let port = prepared.options.publish.first { throw .usage("--publish \(port) needs --hop direct") }
        let pasta = try Runner.program(.pasta, prepared)

        // The proxy, before anything can connect to it. On the gateway hop every
        // connection must carry the forwarder's header with this run's token.
        var config = ProxyConfig(maxConnectionsPerClient: NetworkPlan.connectionsPerSandbox)
        var rng = SystemRandomNumberGenerator()
        let token = (0..<16).map { _ -> String in
            let h = String(UInt8.random(in: 0...255, using: &rng), radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined()
        if hop == .gateway { config.forwarderToken = token }
        config.upstreamProxy = prepared.options.upstreamProxy
        let proxy = SNIProxy(allowlist: prepared.allowlist, events: events, config: config)
        let requested = ProcessInfo.processInfo.environment["AGENTPEN_PROXY_PORT"].flatMap(UInt16.init) ?? 0
        let port: UInt16
        do { port = try proxy.start(bindAddress: "127.0.0.1", port: requested) } catch {
            throw .internalError("cannot start the proxy on 127.0.0.1:\(requested): \(error)"
                                 + (requested != 0 ? "; choose a free AGENTPEN_PROXY_PORT or unset it" : ""))
        }
        defer { proxy.stop() }

        let transient = try Runner.prepareHost(plan)
        defer { Runner.removeTransient(transient) }
        let syscalls = try SyscallReporter(events: events, onSandboxGone: sandboxGone)
        var link = try helperLink(syscalls: syscalls)
        // The forwarder's token, like the environment, in a memfd.
        do { link.child.add(Descriptor(try memoryFile("agentpen-token", hop == .gateway ? Array(token.utf8) : [])),
                            at: NetHelper.tokenFD) }
        catch { throw .internalError("cannot prepare the sandbox: \(error)") }

        // The namespace helper; it runs bubblewrap once the namespace is locked down.
        var argv = [prepared.facts.selfBinary, "__netns", "--proxy-port", String(port), "--hop", hop.rawValue,
                    "--nft", nft]
        for h in prepared.allowlist.patterns { for spec in h.specs { argv += ["--host", spec] } }
        for n in link.planNumbers { argv += ["--fd", String(n)] }
        argv += ["--"] + plan.bwrapCommand(bwrap)
        let helper = try startHelper(argv, &link, syscalls: syscalls)
        defer { syscalls.finish() }
        let relay = relayEvents(from: link.events.take())

        // pasta's feature probe (a `pasta --help` run) while the helper builds the
        // namespace, so it costs no time on the way to the sandbox.
        let features = NetworkPlan.PastaFeatures(helpText: Network.pastaHelp(pasta))

        // Wait for the namespace, then attach pasta to it.
        guard Runner.readByte(link.ready.raw) else {
            return try finish(helper: helper, pasta: nil, statusFD: link.status.raw, relay: relay)
        }
        let pastaArgv = NetworkPlan.pastaArgs(pasta: pasta, hop: hop, proxyPort: port, uid: prepared.facts.uid,
                                              gid: prepared.facts.gid, targetPID: helper, features: features)
        let pastaLog: Descriptor
        do { pastaLog = Descriptor(try memoryFile("agentpen-pasta-log", [])) } catch { throw .internalError("\(error)") }
        let pastaPID: pid_t
        let pastaOutput: [(src: Int32, dst: Int32)] = [(pastaLog.raw, 1), (pastaLog.raw, 2)]
        do { pastaPID = try Spawn.start(pastaArgv, .supervised(fds: pastaOutput, env: HostPrograms.environment)) } catch {
            kill(helper, SIGKILL)
            _ = Spawn.wait(helper)
            throw .internalError("cannot start pasta: \(error); install passt (apt install passt)")
        }
        var one: UInt8 = 1
        _ = write(link.go.raw, &one, 1)
        return try finish(helper: helper, pasta: (pastaPID, pastaLog.raw), statusFD: link.status.raw, relay: relay)
    }

    /// The direct hop: the helper makes the listening sockets inside the namespace
    /// and hands them over; agentpen checks each (kind, address, port) against the
    /// plan, serves DNS and the proxy on them, and only then lets the agent start
    /// (bubblewrap builds the sandbox meanwhile; its agent waits at the helper's gate).
    private func runDirect(bwrap: String, nft: String) throws(Failure) -> Int32 {
        let plan = prepared.plan
        let options = prepared.options
        if let why = NetworkPlan.hostPortConflict(prepared.allowlist, hostPorts: options.hostPorts) { throw .usage(why) }
        let names = NameTable(NameAddresses(prepared.allowlist, unlisted: options.unlistedNames))
        var config = ProxyConfig(maxConnectionsPerClient: NetworkPlan.connectionsPerSandbox)
        config.hostLoopbackPorts = Set(options.hostPorts)
        config.unlisted = options.unlistedNames
        config.upstreamProxy = options.upstreamProxy
        let proxy = SNIProxy(allowlist: prepared.allowlist, events: events, config: config, names: names, approver: holds)
        defer { proxy.stop() }
        let dns = DNSResponder(allowlist: prepared.allowlist, events: events, names: names)
        defer { dns.stop() }

        let transient = try Runner.prepareHost(plan)
        defer { Runner.removeTransient(transient) }
        let syscalls = try SyscallReporter(events: events, onSandboxGone: sandboxGone)
        var link = try helperLink(syscalls: syscalls)
        // The helper sends the sockets it makes inside over this pair (and, with
        // --publish, makes more on request).
        let pair: Descriptor.SocketPair
        do { pair = try Descriptor.socketPair() } catch { throw .internalError("socketpair failed") }
        link.child.add(pair.second, at: NetHelper.socketsFD)
        let sockets = pair.first

        var argv = [prepared.facts.selfBinary, "__netns", "--hop", NetworkPlan.Hop.direct.rawValue, "--nft", nft]
        for h in prepared.allowlist.patterns { for spec in h.specs { argv += ["--host", spec] } }
        for n in link.planNumbers { argv += ["--fd", String(n)] }
        for port in options.hostPorts { argv += ["--host-port", String(port)] }
        if !options.publish.isEmpty { argv.append("--serve-sockets") }
        // bubblewrap starts while the firewall loads; its agent waits at the gate.
        argv += ["--", bwrap, "--json-status-fd", "3"] + plan.bwrapArgs + ["--"] + plan.innerCommand(gate: NetHelper.gateFD)
        let helper = try startHelper(argv, &link, syscalls: syscalls)
        defer { syscalls.finish() }
        let relay = relayEvents(from: link.events.take())
        // --ask's prompt finds the connecting process through the helper's network namespace.
        if holds != nil { Ask.namespacePID.withLock { $0 = helper } }

        let expected = NetworkPlan.directSockets(prepared.allowlist, hostPorts: options.hostPorts)
        // The plan's sockets, then the catch-all's one or two. Nothing (end of
        // stream): the helper failed and said why.
        guard var fds = HandedSockets.receive(sockets.raw, max: expected.count + 3) else {
            // A helper still waiting for the go byte gets the end of its pipe instead.
            link.go.close()
            return try finish(helper: helper, pasta: nil, statusFD: link.status.raw, relay: relay, gateOpened: false)
        }
        // Those not yet served are closed when this returns or throws.
        func refuse(_ why: String) throws(Failure) -> Never {
            kill(helper, SIGKILL)
            _ = Spawn.wait(helper)
            throw .internalError("the sandbox's sockets are not as planned: \(why)")
        }
        let served = Array(fds.raw.prefix(expected.count)), catchAllFDs = Array(fds.raw.dropFirst(expected.count))
        if let why = NetworkPlan.verifyHanded(served.map(HandedSockets.describe), expected) { try refuse(why) }
        if case .failure(let why) = NetworkPlan.verifyCatchAll(catchAllFDs.map(HandedSockets.describe)) {
            try refuse(why.description)
        }
        for spec in expected {
            // Handed on: the proxy or the responder owns it from here (closed if refused).
            do {
                switch spec.kind {
                case .tcpListener: try proxy.adopt(listener: fds.removeFirst())
                case .udp: try dns.adopt(fds.removeFirst())
                }
            } catch {
                try refuse("\(spec): \(error)")
            }
        }
        // Refused TCP (the firewall's redirect), reported with the name an address
        // stands for: this process holds every name's address, pooled ones too.
        let reporter = RefusalReporter(events: events, names: { names.name(at: $0) })
        let catchAll = CatchAll(reporter: reporter)
        // The catch-all's listeners own them from here (closed if refused).
        do { try catchAll.adopt(fds.takeList()) }
        catch { try refuse("the catch-all: \(error)") }
        defer {
            catchAll.stop()
            reporter.finish()
        }
        // --publish: this machine's 127.0.0.1:PORT → inside, through sockets the helper makes there.
        var publishers: [Publisher] = []
        defer { publishers.forEach { $0.stop() } }
        if !options.publish.isEmpty {
            let inside = NamespaceSockets(sockets)
            defer { inside.stop() }
            for port in options.publish {
                let p = Publisher(port: port, sockets: inside, events: events, config: config)
                do { try p.start() } catch {
                    kill(helper, SIGKILL)
                    _ = Spawn.wait(helper)
                    throw .internalError("--publish \(port): cannot listen on 127.0.0.1:\(port): \(error); choose a free port")
                }
                publishers.append(p)
            }
            var one: UInt8 = 1
            _ = write(link.go.raw, &one, 1)
            return try finish(helper: helper, pasta: nil, statusFD: link.status.raw, relay: relay)
        }
        var one: UInt8 = 1
        _ = write(link.go.raw, &one, 1)
        return try finish(helper: helper, pasta: nil, statusFD: link.status.raw, relay: relay)
    }

    /// The namespace helper's descriptors on every hop, and agentpen's ends of
    /// its pipes. Made by `helperLink`; `startHelper` hands `child` over.
    private struct HelperLink: ~Copyable {
        /// bubblewrap's status stream, read once the run is over.
        var status: Descriptor
        /// One byte once the namespace is ready; end of file if the helper failed.
        var ready: Descriptor
        /// One byte written here lets bubblewrap start.
        var go: Descriptor
        /// The helper's events (DNS answers, firewall drops), for `relayEvents`.
        var events: Descriptor
        /// What the helper gets, at its numbers there: the plan's descriptors, the
        /// syscall socket (lent by the reporter), the pipes' other ends, the
        /// environment, and what the hop adds. Closed here once it has them.
        var child: ChildDescriptors
        /// The plan's numbers, which the helper passes on to bubblewrap (`--fd`).
        let planNumbers: [Int32]
    }

    /// The set-up both hops share. The sandbox's environment travels in a memfd,
    /// not on a command line (any local user can read argv), and the helper
    /// itself runs without it.
    private func helperLink(syscalls: SyscallReporter) throws(Failure) -> HelperLink {
        let plan = prepared.plan
        var child = try Runner.planDescriptors(plan)
        // The helper passes the syscall socket on to bubblewrap like the plan's descriptors.
        child.add(borrowing: syscalls.sandboxEnd, at: plan.syscallNotifyFD)
        let planNumbers = child.mapping.map(\.dst)
        func pipe() throws(Failure) -> Descriptor.Pipe {
            do { return try Descriptor.pipe() } catch { throw .internalError("pipe failed") }
        }
        let status = try pipe(), ready = try pipe(), go = try pipe(), events = try pipe()
        child.add(status.write, at: NetHelper.statusFD)
        child.add(ready.write, at: NetHelper.readyFD)
        child.add(go.read, at: NetHelper.goFD)
        child.add(events.write, at: NetHelper.eventsFD)
        do {
            child.add(Descriptor(try memoryFile("agentpen-env", Array(plan.env.map { $0.entry + "\u{0}" }.joined().utf8))),
                      at: NetHelper.envFD)
        } catch { throw .internalError("cannot prepare the sandbox: \(error)") }
        return HelperLink(status: status.read, ready: ready.read, go: go.write, events: events.read,
                          child: child, planNumbers: planNumbers)
    }

    /// Starts the namespace helper with `link.child`, then drops agentpen's
    /// copies of them and starts answering the sandbox's refused syscalls.
    private func startHelper(_ argv: [String], _ link: inout HelperLink,
                             syscalls: SyscallReporter) throws(Failure) -> pid_t {
        let helper: pid_t
        do { helper = try Spawn.start(argv, .supervised(fds: link.child.mapping, env: HostPrograms.environment)) } catch {
            throw .internalError("cannot start the namespace helper: \(error)")
        }
        link.child.closeAll()
        try syscalls.start()
        ap_forward_termination_to(helper)
        return helper
    }

    /// Waits for the helper (the sandbox) to end; pasta ending first is a failure.
    /// `gateOpened` false: the helper failed before the direct hop's gate let the
    /// agent start (bubblewrap may have run, the agent never did).
    private func finish(helper: pid_t, pasta: (pid: pid_t, log: Int32)?, statusFD: Int32,
                        relay: DispatchGroup, gateOpened: Bool = true) throws(Failure) -> Int32 {
        var helperStatus: Int32?
        var pastaFailure: String?
        while helperStatus == nil {
            var raw: Int32 = 0
            let pid = waitpid(-1, &raw, 0)
            if pid < 0 { if errno == EINTR { continue }; break }
            if pid == helper { helperStatus = Spawn.shellStatus(raw) }
            else if let pasta, pid == pasta.pid {
                pastaFailure = "pasta exited (status \(Spawn.shellStatus(raw))): "
                    + Self.pastaMessage(pasta.log)
                kill(helper, SIGKILL)
            }
        }
        if let pasta, pastaFailure == nil {
            kill(pasta.pid, SIGTERM)
            _ = Spawn.wait(pasta.pid)
        }
        _ = relay.wait(timeout: .now() + 2)
        let report = Runner.readAll(statusFD)
        if let pastaFailure {
            throw .internalError(pastaFailure + "; run agentpen --check")
        }
        // The helper exits 125 after printing why, before bubblewrap ever ran (or,
        // on the direct hop, before its gate let the agent start).
        if helperStatus == 125 && (!gateOpened || !report.contains("\"child-pid\"")) && ap_received_signal() == 0 {
            throw .alreadyReported
        }
        return try Runner.interpret(status: helperStatus ?? 125, bwrapReport: report)
    }

    static func pastaMessage(_ fd: Int32) -> String {
        lseek(fd, 0, SEEK_SET)
        let text = Runner.readAll(fd).split(separator: "\n")
            .filter { !$0.hasPrefix("Failed to send") && !$0.isEmpty }
            .joined(separator: "; ")
        return text.isEmpty ? "no message" : text
    }

    /// Events from the helper (DNS answers, firewall drops) join the run's log.
    private func relayEvents(from fd: Int32) -> DispatchGroup {
        let group = DispatchGroup()
        let events = self.events
        DispatchQueue.global().async(group: group) {
            let owned = Descriptor(fd)    // handed to this reader: closed when the helper's stream ends
            let decoder = EventLineDecoder()
            var buf = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let batch = buf.withUnsafeBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                for e in batch { events.record(e) }
            }
            if decoder.rejected > 0 {
                events.record(Event(.failure, subject: .eventStream,
                                    reason: "\(decoder.rejected) line(s) from the namespace helper were not events; dropped"))
            }
            owned.close()
        }
        return group
    }
}
