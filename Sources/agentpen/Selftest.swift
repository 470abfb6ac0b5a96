import AgentpenEvents
import AgentpenKernel
import AgentpenPolicy
import AgentpenSystem
import CShim
import FoundationEssentials
import Glibc

/// `agentpen selftest`: the project's escape cases against this host's sandbox,
/// as the calling user. It builds a throwaway world in one temporary directory
/// (a home with planted secrets, a project git repository, a listener on the
/// host's loopback that must see nothing), runs the real sandbox twice with HOME
/// pointing there (offline, then with the network stack and one allowed name),
/// each time with the probe `__probe selftest` inside, and judges what the probe
/// reported and what the host sees afterwards (AgentpenPolicy.Selftest). Every
/// case prints one line; exit 0 only when all held. Nothing is skipped.
enum SelftestRun {
    static let marker = "AGENTPEN-SELFTEST-SECRET"

    /// The parent: makes the temporary directory, runs the world helper in it
    /// (a fresh single-threaded process: it must unshare a user namespace), then
    /// removes it, judges and prints.
    static func run() -> Int32 {
        var template = Array(((Host.environment["TMPDIR"] ?? "/tmp") + "/agentpen-selftest.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            printError("selftest: cannot create a temporary directory in \(Host.environment["TMPDIR"] ?? "/tmp"): \(String(cString: strerror(errno))); set TMPDIR to a writable directory")
            return 125
        }
        let world = String(cString: made)
        let helper = Spawn.run([Host.selfExecutable, "__probe", "selftest-world", world], input: "")
        var facts: [String: [String: String]] = [:]
        var messages: [Substring] = []
        for line in helper.output.split(separator: "\n") {
            guard line.hasPrefix("selftest-fact "), let eq = line.firstIndex(of: "="),
                  let dot = line[..<eq].firstIndex(of: ".") else { messages.append(line); continue }
            let scope = String(line[line.index(line.startIndex, offsetBy: 14)..<dot])
            let key = String(line[line.index(after: dot)..<eq])
            facts[scope, default: [:]][key] = String(line[line.index(after: eq)...])
        }
        try? FileManager.default.removeItem(atPath: world)
        var host = facts["host"] ?? [:]
        if helper.status != 0 { host["world"] = "helper exited \(helper.status)" }
        host["world_removed"] = access(world, F_OK) != 0 && errno == ENOENT ? "yes" : "no: \(world) is still there"
        for m in messages.prefix(20) { printError("selftest: \(String(m))") }

        func run(_ name: String) -> Selftest.Run {
            Selftest.Run(status: Int32(facts["status"]?[name] ?? "") ?? 125, facts: facts[name] ?? [:])
        }
        let outcomes = Selftest.judge(Selftest.Observations(offline: run("offline"), network: run("network"), host: host))
        var out: TerminalText = ""
        for o in outcomes {
            out += "\(o.held ? "PASS" : "FAIL") \(o.name): \(o.tried) (\(o.seen))\n"
        }
        let failed = outcomes.filter { !$0.held }.count
        out += failed == 0 ? "selftest: all \(outcomes.count) cases held\n"
                           : "selftest: \(failed) of \(outcomes.count) cases FAILED\n"
        out.write(to: 1)
        return failed == 0 ? 0 : 1
    }

    /// `agentpen __probe selftest-world DIR`: builds the world (below), runs both
    /// sandboxes in it, and prints what it saw as `selftest-fact SCOPE.KEY=VALUE`.
    static func worldMain(_ args: [String]) -> Never {
        guard args.count == 1 else { exit(2) }
        let world = args[0]
        func fact(_ scope: String, _ key: String, _ value: String) {
            // One line each: a value never carries a newline.
            print("selftest-fact \(scope).\(key)=\(value.split(separator: "\n").joined(separator: " | "))")
        }
        var host: [String: String] = [:]
        do {
            let internet = try SelftestWorld.build(world)
            host["world"] = "built"
            let runs = try exercise(world: world, host: &host, internet: internet.raw)
            for (name, r) in [("offline", runs.0), ("network", runs.1)] {
                fact("status", name, "\(r.status)")
                for (k, v) in r.facts.sorted(by: { $0.key < $1.key }) { fact(name, k, v) }
            }
        } catch {
            host["world"] = host["world"] ?? "not built"
            print("\(error.message)")
        }
        for (k, v) in host.sorted(by: { $0.key < $1.key }) { fact("host", k, v) }
        exit(0)
    }

    struct WorldFailure: Error { var message: String }

    static func exercise(world: String, host: inout [String: String], internet: [Int32]) throws(WorldFailure) -> (Selftest.Run, Selftest.Run) {
        let home = world + "/home", project = world + "/project", xdg = world + "/xdg"
        func must(_ rc: Int32, _ what: String) throws(WorldFailure) {
            if rc != 0 { throw WorldFailure(message: "\(what): \(String(cString: strerror(errno)))") }
        }
        func file(_ path: String, _ text: String, mode: mode_t = 0o600) throws(WorldFailure) {
            guard let f = Descriptor.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode: mode) else {
                throw WorldFailure(message: "create \(path): \(String(cString: strerror(errno)))")
            }
            let bytes = Array(text.utf8)
            let n = Glibc.write(f.raw, bytes, bytes.count)
            f.close()
            guard n == bytes.count else { throw WorldFailure(message: "write \(path)") }
        }
        for dir in [home, home + "/.ssh", home + "/.aws", project, project + "/.git", project + "/.git/objects",
                    project + "/.git/refs", project + "/.git/refs/heads", project + "/.git/hooks",
                    xdg, xdg + "/config", xdg + "/state", xdg + "/cache", xdg + "/run"] {
            try must(mkdir(dir, 0o700), "mkdir \(dir)")
        }
        try file(home + "/.ssh/id_ed25519", "\(marker)-ssh\n")
        try file(home + "/.aws/credentials", "\(marker)-aws\n")
        try file(home + "/.bashrc", "# the user's own\n", mode: 0o644)
        let gitConfig = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
        try file(project + "/.git/HEAD", "ref: refs/heads/main\n", mode: 0o644)
        try file(project + "/.git/config", gitConfig, mode: 0o644)
        try file(project + "/README", "selftest project\n", mode: 0o644)
        let homeBefore = snapshot(home)

        // A service on the host's loopback: whatever connects lands in its
        // backlog, counted after the runs without ever accepting.
        let service = try listener()
        defer { Descriptor(service.fd).close() }
        let pidNamespace = RealFileSystem().readLink("/proc/self/ns/pid") ?? "unreadable"
        host["pid_ns"] = pidNamespace

        var env = Host.environment
        env["HOME"] = home
        env["XDG_CONFIG_HOME"] = xdg + "/config"
        env["XDG_STATE_HOME"] = xdg + "/state"
        env["XDG_CACHE_HOME"] = xdg + "/cache"
        env["XDG_RUNTIME_DIR"] = xdg + "/run"
        let environment = env.sorted { $0.key < $1.key }.map { EnvironmentVariable($0.key, $0.value) }
        let me = Host.selfExecutable
        let probe = [me, "__probe", "selftest"]
        let tail = [project, home, String(service.port)]
        let log = xdg + "/events.jsonl"

        var internetArrivals: [[UInt8]] = []
        let offline = SelftestWorld.serve([me, "-C", project, "--"] + probe + ["offline"] + tail, env: environment,
                                          internet: internet, arrivals: &internetArrivals)
        // The project's plants are looked at before the second run, whose audit
        // must not be the one that moves them.
        host["project_file"] = Host.readFile(project + "/selftest-written") == "written\n" ? "written" : "missing"
        host["git_hook"] = access(project + "/.git/hooks/pre-commit", F_OK) == 0 ? "planted" : "absent"
        host["git_config"] = Host.readFile(project + "/.git/config") == gitConfig ? "unchanged" : "changed"
        var st = stat()
        host["git_dir"] = lstat(project + "/.git", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
            && access(project + "/.git-aside", F_OK) != 0 ? "in place" : "moved"
        host["nested_hook"] = nestedHookState(project + "/nested/.git")

        let network = SelftestWorld.serve([me, "-C", project, "--allow-private", Selftest.allowedName, "--log", log, "--"]
                                          + probe + ["network"] + tail, env: environment, internet: internet, arrivals: &internetArrivals)
        host["internet_arrivals"] = "\(internetArrivals.count)"
        host["internet_allowed"] = "\(internetArrivals.filter { SelftestWorld.contains($0, Array(Selftest.allowedName.utf8)) }.count)"
        let events = Host.readFile(log) ?? ""
        host["tls_refused_logged"] = events.split(separator: "\n").contains {
            $0.contains("\"connection-blocked\"") && $0.contains(Selftest.unlistedName)
        } ? "yes" : "no"
        host["literal_logged"] = events.split(separator: "\n").contains {
            $0.contains("\"connection-blocked\"") && $0.contains(Selftest.literalV4)
        } ? "yes" : "no"
        host["host_address_logged"] = events.split(separator: "\n").contains {
            $0.contains("\"connection-blocked\"") && $0.contains(Selftest.hostV4 + ":")
        } ? "yes" : "no"
        host["marker_seen"] = offline.output.contains(marker) || network.output.contains(marker) || events.contains(marker) ? "yes" : "no"
        let homeAfter = snapshot(home)
        host["home"] = homeAfter == homeBefore ? "unchanged"
            : "changed: " + Set(homeAfter.keys).symmetricDifference(homeBefore.keys).union(
                homeAfter.filter { homeBefore[$0.key] != nil && homeBefore[$0.key] != $0.value }.keys).sorted().joined(separator: ",")
        host["service_arrivals"] = "\(arrivals(service.fd))"
        return (Selftest.Run(status: offline.status, output: offline.output),
                Selftest.Run(status: network.status, output: network.output))
    }

    /// The audit moves a planted hook aside: it must be gone from hooks/, and a
    /// quarantined copy left in the nested git dir.
    static func nestedHookState(_ gitDir: String) -> String {
        if access(gitDir + "/hooks/post-checkout", F_OK) == 0 { return "still armed" }
        let fs = RealFileSystem()
        let names = fs.list(gitDir) + fs.list(gitDir + "/hooks")
        return names.contains { $0.contains("agentpen-quarantine") } ? "quarantined" : "not planted"
    }

    /// Every path under `root` with what it holds (file content, link target, or "dir").
    static func snapshot(_ root: String) -> [String: String] {
        var out: [String: String] = [:]
        let fs = RealFileSystem()
        // Depth first, links not followed; bounded (a selftest's fixture is small).
        var pending = fs.list(root).sorted()
        while let rel = pending.first, out.count < 100_000 {
            pending.removeFirst()
            let path = root + "/" + rel
            var st = stat()
            guard lstat(path, &st) == 0 else { out[rel] = "vanished"; continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                out[rel] = "dir \(st.st_mode & 0o7777)"
                pending.insert(contentsOf: fs.list(path).sorted().map { rel + "/" + $0 }, at: 0)
            case S_IFLNK: out[rel] = "link " + (fs.readLink(path) ?? "")
            case S_IFREG: out[rel] = "file \(st.st_mode & 0o7777) " + (Host.readFile(path) ?? "unreadable")
            default: out[rel] = "other"
            }
        }
        return out
    }

    /// A non-blocking listener on every host address (loopback and the veth) at a free port; the caller closes it.
    static func listener() throws(WorldFailure) -> (fd: Int32, port: UInt16) {
        let raw = ap_socket(4, 0)
        guard raw >= 0 else { throw WorldFailure(message: "listener socket: \(String(cString: strerror(-raw)))") }
        let socket = Descriptor(raw)
        let fd = socket.raw
        var port: UInt16 = 0
        var addr = [UInt8](repeating: 0, count: 16)
        guard IPAddress(0, 0, 0, 0).withUnsafeBufferPointer({ ap_bind_ip(fd, $0.baseAddress, 4, 0) }) == 0,
              ap_listen(fd, 64) == 0, ap_sockname_ip(fd, 0, &addr, &port) >= 0 else {
            let e = errno    // before the drop closes the socket
            throw WorldFailure(message: "listener on the host: \(String(cString: strerror(e)))")
        }
        return (socket.take(), port)    // the caller owns it
    }

    /// Connections waiting in the listener's backlog (it is non-blocking).
    static func arrivals(_ listener: Int32) -> Int {
        var count = 0
        var addr = [UInt8](repeating: 0, count: 16)
        var len: Int32 = 0, port: UInt16 = 0
        while count < 1000 {
            let fd = ap_accept_ip(listener, &addr, &len, &port)
            guard fd >= 0 else { break }
            Descriptor(fd).close()
            count += 1
        }
        return count
    }
}
