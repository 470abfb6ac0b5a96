import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import CShim
import Glibc

/// `agentpen --check`: tries each layer for real and says what this host can
/// enforce, with the exact fix for what is missing. Exit 0 only when a default
/// run (an agent with allowed hosts) would work.
enum Check {
    enum State: String { case ok, degraded, missing }

    struct Row {
        var layer: String
        var state: State
        var detail: String
        var fix: String? = nil
    }

    static func run() -> Int32 {
        var rows: [Row] = []

        // Tools: by absolute path from the system directories or AGENTPEN_*, never PATH.
        let fs = RealFileSystem()
        let programs: HostPrograms
        do {
            programs = try HostPrograms.resolve(env: Host.environment, home: Runner.gatherFacts().home,
                                                writable: WritableSet([], fs: fs), fs: fs)
        } catch {
            printError("\(error.message)")
            return 2
        }
        let bwrap = programs.path(.bwrap), pasta = programs.path(.pasta), nft = programs.path(.nft)
        func version(_ path: String) -> String {
            firstLine(Spawn.run([path, "--version"], env: HostPrograms.environment).output)
        }
        rows.append(bwrap.map { Row(layer: "bubblewrap", state: .ok, detail: "\(programs.describe(.bwrap)): \(version($0))") }
                    ?? Row(layer: "bubblewrap", state: .missing, detail: programs.describe(.bwrap), fix: "apt install bubblewrap"))
        if let pasta {
            let features = NetworkPlan.PastaFeatures(helpText: Network.pastaHelp(pasta))
            rows.append(Row(layer: "pasta", state: .ok, detail: "\(programs.describe(.pasta)): \(features.generation)"))
        } else {
            // The default (direct) hop runs no pasta; only --hop pasta needs it.
            rows.append(Row(layer: "pasta", state: .degraded, detail: programs.describe(.pasta) + "; needed only for --hop pasta",
                            fix: "apt install passt"))
        }
        rows.append(nft.map { Row(layer: "nftables", state: .ok, detail: "\(programs.describe(.nft)): \(version($0))") }
                    ?? Row(layer: "nftables", state: .missing, detail: programs.describe(.nft), fix: "apt install nftables"))

        rows += Resources.checkRows(bwrap: bwrap)
        rows += Configure.checkRows()

        // User namespaces, tried for real in a fresh single-threaded process.
        let userns = Spawn.run([Host.selfExecutable, "__probe", "userns"], env: HostPrograms.environment)
        let appArmorRestricts = Host.readFile("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")?.hasPrefix("1") == true
        if userns.status == 0 {
            rows.append(Row(layer: "user namespaces", state: .ok, detail: "unprivileged user+network namespace created"))
        } else {
            var fix = "sysctl -w user.max_user_namespaces=15000"
            if appArmorRestricts {
                fix = "AppArmor restricts unprivileged user namespaces: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or add an AppArmor profile allowing userns for agentpen, bwrap and pasta)"
            }
            rows.append(Row(layer: "user namespaces", state: .missing, detail: firstLine(userns.output), fix: fix))
        }
        if appArmorRestricts, userns.status == 0 {
            rows.append(Row(layer: "apparmor", state: .ok, detail: "restricts unprivileged user namespaces, but this host allows them for agentpen"))
        }

        // /dev/net/tun: pasta opens it as the calling user.
        if let tun = Descriptor.open("/dev/net/tun", O_RDWR | O_CLOEXEC) {
            tun.close()
            rows.append(Row(layer: "/dev/net/tun", state: .ok, detail: "usable"))
        } else {
            rows.append(Row(layer: "/dev/net/tun", state: .degraded,
                            detail: String(cString: strerror(errno)) + "; needed only for --hop pasta",
                            fix: "sudo chmod 0666 /dev/net/tun (the distribution default), or modprobe tun"))
        }

        // seccomp: the filter compiles by name on this architecture.
        do {
            Descriptor(try SeccompFilter.exportToMemoryFile()).close()
            try SeccompFilter.checkNotifying()
            rows.append(Row(layer: "seccomp", state: .ok, detail: "libseccomp \(SeccompFilter.libraryVersion), filters compiled, refused calls reported"))
        } catch {
            rows.append(Row(layer: "seccomp", state: .missing, detail: "\(error)", fix: "apt install libseccomp2"))
        }

        // Landlock: negotiated ABI.
        switch Landlock.abi() {
        case .success(let abi):
            rows.append(Row(layer: "landlock", state: .ok, detail: "ABI \(abi)" + (abi >= 6 ? ", with signal and abstract-socket scoping" : "")))
        case .failure(let e):
            rows.append(Row(layer: "landlock", state: .degraded, detail: "\(e): writes are confined by the mount layout alone",
                            fix: "a kernel ≥ 5.13 with Landlock enabled (boot with lsm=landlock,…)"))
        }

        // The sandbox for real: offline, then with the network stack.
        let scratch = makeScratchDir()
        defer { if let scratch { rmdir(scratch) } }
        if let scratch, bwrap != nil {
            let inside = Spawn.run([Host.selfExecutable, "-C", scratch, "--", Host.selfExecutable, "__probe", "inside"])
            rows.append(insideRow(inside, layerName: "sandbox", expectNetwork: false))
            if nft != nil && userns.status == 0 {
                let net = Spawn.run([Host.selfExecutable, "-C", scratch, "--allow", "check.agentpen.invalid", "--",
                                     Host.selfExecutable, "__probe", "inside", "network"])
                // The direct hop's namespace has no uplink; the pasta hops keep the /32 to the gateway.
                let hop = Host.environment["AGENTPEN_HOP"].flatMap(NetworkPlan.Hop.init(rawValue:))
                    ?? NetworkPlan.defaultHop
                rows.append(insideRow(net, layerName: "network", expectNetwork: true,
                                      uplinkRoutes: hop == .direct ? 0 : 1))
            } else {
                rows.append(Row(layer: "network", state: .missing, detail: "not tried: a tool or user namespaces are missing",
                                fix: "see the rows above"))
            }
        }

        // Details quote paths and helper output: printed through TerminalText.
        var out: TerminalText = "agentpen --check: what this host can enforce\n"
        for r in rows {
            out += "  \(r.state.rawValue.padding(9)) \(r.layer.padding(16)) \(r.detail)\n"
            if let fix = r.fix, r.state != .ok { out += "            fix: \(fix)\n" }
        }
        let works = !rows.contains { $0.state == .missing }
        out += works ? "A default run works here.\n" : "A default run would fail here: fix the rows marked missing.\n"
        out.write(to: 1)
        return works ? 0 : 1
    }

    static func insideRow(_ r: (status: Int32, output: String), layerName: String, expectNetwork: Bool,
                          uplinkRoutes: Int = 1) -> Row {
        let facts = Dictionary(r.output.split(separator: "\n").compactMap { line -> (String, String)? in
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            return kv.count == 2 ? (kv[0], kv[1]) : nil
        }, uniquingKeysWith: { a, _ in a })
        guard r.status == 0, facts["probe"] == "ran" else {
            return Row(layer: layerName, state: .missing, detail: "could not start: " + r.output.split(separator: "\n").suffix(3).joined(separator: " | "),
                       fix: "see the rows above; run agentpen --dry-run to see the plan")
        }
        var problems: [String] = []
        if facts["seccomp"] != "2" { problems.append("seccomp filter not in force") }
        if facts["nnp"] != "1" { problems.append("no_new_privs not set") }
        if facts["capeff"] != "0000000000000000" { problems.append("capabilities present") }
        if facts["userns"] != "EPERM" { problems.append("nested user namespace allowed") }
        if expectNetwork {
            if facts["proxy"] != "connected" { problems.append("the proxy is unreachable from inside") }
            if facts["routes"] != String(uplinkRoutes) { problems.append("unexpected routes: \(facts["routes"] ?? "?")") }
            if facts["udp"] != "EPERM" { problems.append("UDP leaves the namespace") }
        }
        if !problems.isEmpty {
            return Row(layer: layerName, state: .missing, detail: problems.joined(separator: "; "), fix: "report this as a bug")
        }
        let detail = expectNetwork
            ? (uplinkRoutes == 0
                ? "namespace with loopback only, nft drop policy, DNS responder and proxy all in force"
                : "namespace, /32 route, nft drop policy, DNS responder and proxy all in force")
            : "bubblewrap, seccomp, no capabilities, no nested user namespaces, landlock \(facts["landlock"] ?? "?")"
        return Row(layer: layerName, state: .ok, detail: detail)
    }

    static func makeScratchDir() -> String? {
        var template = Array(((Host.environment["TMPDIR"] ?? "/tmp") + "/agentpen-check.XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { return nil }
        return String(cString: p)
    }

    static func firstLine(_ s: String) -> String {
        String(s.split(separator: "\n").first(where: { !$0.hasPrefix("Failed to send") }) ?? "")
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
