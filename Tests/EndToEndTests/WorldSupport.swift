import Foundation
import Testing

/// The test world (tests/world): network namespaces with servers on 198.18.0.0/24
/// and fd0c::/64, an arrival log of every packet that reaches them, and agentpen
/// run inside the "host" namespace. `AGENTPEN_WORLD` names the world's state dir
/// (/run/apw); tests/run.sh sets it when it runs the network suite inside the world.
enum World {
    static var dir: String? {
        guard let d = ProcessInfo.processInfo.environment["AGENTPEN_WORLD"], !d.isEmpty else { return nil }
        return d
    }

    static var isUp: Bool {
        guard let dir else { return false }
        return FileManager.default.isReadableFile(atPath: dir + "/arrivals.log")
            && FileManager.default.isReadableFile(atPath: dir + "/ca.pem")
    }

    /// Outside CI the network suite skips without a world; under CI=true it runs and fails.
    static var runnable: Bool { isUp || Agentpen.isCI }
    static let skipReason: Comment = """
        AGENTPEN_WORLD is not set (or the world is not up): the network tests run inside the test world; \
        use tests/run.sh, or see tests/world/README.md
        """

    /// The world's state dir, or a failure (CI runs without a world must fail, not skip).
    @discardableResult
    static func require() throws -> String {
        guard let dir, isUp else {
            throw TestFailure("the test world is not available (AGENTPEN_WORLD=\(dir ?? "unset")): "
                              + "run the network suite through tests/run.sh, inside netns apw-host")
        }
        return dir
    }

    static var ca: String { (dir ?? "/run/apw") + "/ca.pem" }
    static var arrivalLog: String { (dir ?? "/run/apw") + "/arrivals.log" }

    /// The world's servers, as the proxy dials them.
    static let server4 = "198.18.0.10", server4b = "198.18.0.11", server6 = "fd0c::10", resetServer = "198.18.0.12"
    /// The "internet" side of the veth: the host namespace's default gateway.
    static let gateway4 = "198.18.0.1", gateway6 = "fd0c::1"
    /// The host namespace's own address: the source of every arrival from it.
    static let host4 = "198.18.0.2"

    /// For the tests about pasta's path (the routable gateway, the firewall's drops,
    /// pasta's own faults): the direct hop, the default, has neither.
    static let pastaHop = ["AGENTPEN_HOP": "splice"]

    /// The allowlist most tests use: one exact name and one wildcard (both resolve to
    /// private test addresses, hence --allow-private).
    static let baseAllow = ["--allow-private", "allowed.test", "--allow-private", "*.wild.test"]
}

// MARK: - Arrival log

/// One line of /run/apw/arrivals.log (`key=value` fields, `data=` last).
struct Arrival: CustomStringConvertible {
    var line: String
    var fields: [String: String]

    init(_ line: String) {
        self.line = line
        var f: [String: String] = [:]
        for part in line.split(separator: " ") {
            guard let eq = part.firstIndex(of: "=") else { continue }
            let k = String(part[..<eq])
            if f[k] == nil { f[k] = String(part[part.index(after: eq)...]) }
            if k == "data" { break }
        }
        fields = f
    }

    subscript(_ k: String) -> String? { fields[k] }
    var ev: String { fields["ev"] ?? "" }
    var proto: String { fields["proto"] ?? "" }
    var description: String { line }
}

/// Reads what arrived in the world's server namespace since a mark. A sentinel UDP
/// datagram sent from this (the host) namespace after the action is the barrier:
/// once the logger has written it, everything sent before it has been logged too.
struct Arrivals {
    let offset: UInt64
    let path: String

    static func mark() throws -> Arrivals {
        let path = World.arrivalLog
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        return Arrivals(offset: (attrs[.size] as? NSNumber)?.uint64Value ?? 0, path: path)
    }

    /// Every line logged since the mark, after a barrier; the sentinel's own lines removed.
    func since() throws -> [Arrival] {
        let port = try Self.sendSentinel()
        let needle = "proto=udp src=\(World.host4) sport=\(port) dst=\(World.gateway4) dport=9999"
        var lines: [Arrival] = []
        let found = waitUntil(30) {
            lines = read()
            return lines.contains { $0.line.contains(needle) }
        }
        if !found { throw TestFailure("the arrival logger did not log the sentinel within 30 s (is the world up?)") }
        // The bait listener's own record of the sentinel may come a little later.
        _ = waitUntil(1) { read().contains { $0.ev == "recv" && $0["sport"] == String(port) } }
        return read().filter { !($0.proto == "udp" && $0["sport"] == String(port) && $0["dport"] == "9999") }
    }

    private func read() -> [Arrival] {
        guard let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        try? h.seek(toOffset: offset)
        let data = (try? h.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { Arrival(String($0)) }
    }

    /// A UDP datagram from this namespace to the bait on the gateway; returns its source port.
    static func sendSentinel() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(9999).bigEndian
        inet_pton(AF_INET, World.gateway4, &addr.sin_addr)
        let payload = Array("apw-sentinel".utf8)
        let n = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard n == payload.count else {
            throw TestFailure("cannot send the arrival sentinel (errno \(errno)): is this process inside netns apw-host?")
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return UInt16(bigEndian: bound.sin_port)
    }

    /// Arrivals that are not plumbing and not to one of `allowed` ("addr:port", the
    /// proxy's own upstream connections). IPv6 neighbour discovery and multicast
    /// listener reports are plumbing; an echo request is not.
    static func unexpected(_ arrivals: [Arrival], allowing allowed: Set<String> = []) -> [Arrival] {
        arrivals.filter { a in
            if a.ev == "start" { return false }
            if a.proto == "icmp6", let t = Int(a["type"] ?? ""), t >= 130 { return false }
            if let dst = a["dst"], let port = a["dport"], allowed.contains("\(dst):\(port)") { return false }
            return true
        }
    }
}

// MARK: - Sandbox runs with the probe script

/// What one probe reported: `outcome` is connected/refused, sent, answered/noanswer,
/// ok/failed or created; `detail` the error name or the answer.
struct ProbeResult: CustomStringConvertible {
    var outcome: String
    var detail: String
    var description: String { "\(outcome) \(detail)" }
}

/// A Fixture whose project holds the world's CA and the probe script.
final class NetFixture {
    let f: Fixture
    var project: String { f.project }
    var root: String { f.root }

    init() throws {
        try World.require()
        f = try Fixture()
        try f.write(f.project + "/ca.pem", try String(contentsOfFile: World.ca, encoding: .utf8))
        try f.write(f.project + "/probe.py", Probe.script)
    }

    /// agentpen with `allow` flags, running `script` under /bin/sh in the project.
    func sh(_ allow: [String], _ script: String, env: [String: String] = [:], path: String? = nil,
            timeout: Double = 90) throws -> Agentpen.Result {
        try f.agentpen(allow + ["--", "/bin/sh", "-c", script], env: env, path: path, timeout: timeout)
    }

    /// Runs the probes (in parallel, inside one sandbox) and returns each one's result
    /// keyed by the probe text, e.g. "tcp 198.18.0.10 8080".
    func probe(_ allow: [String], _ probes: [String], before: String = "", env: [String: String] = [:],
               extra: [String] = []) throws -> (Agentpen.Result, [String: ProbeResult]) {
        let quoted = probes.map { "'" + $0 + "'" }.joined(separator: " ")
        let r = try f.agentpen(extra + allow + ["--", "/bin/sh", "-c", before + "\n/usr/bin/python3 probe.py " + quoted],
                               env: env, timeout: 90)
        return (r, Probe.parse(r.stdout))
    }
}

enum Probe {
    /// "PROBE[tcp 1.2.3.4 80] refused ENETUNREACH:..." lines → results by probe text.
    static func parse(_ out: String) -> [String: ProbeResult] {
        var results: [String: ProbeResult] = [:]
        for line in out.split(separator: "\n") where line.hasPrefix("PROBE[") {
            guard let close = line.firstIndex(of: "]") else { continue }
            let key = String(line[line.index(line.startIndex, offsetBy: 6)..<close])
            let rest = line[line.index(after: close)...].drop { $0 == " " }
            let outcome = rest.prefix { $0 != " " }
            let detail = rest.dropFirst(outcome.count).drop { $0 == " " }
            results[key] = ProbeResult(outcome: String(outcome), detail: String(detail))
        }
        return results
    }

    /// Runs inside the sandbox: each argument is one probe ("tcp HOST PORT"); all run
    /// at once (threads), results print in argument order, one line each.
    static let script = #"""
    import errno, os, socket, ssl, struct, sys, threading, time

    def err(e):
        if isinstance(e, OSError) and e.errno:
            return errno.errorcode.get(e.errno, str(e.errno)) + ":" + (e.strerror or "")
        if isinstance(e, socket.timeout) or isinstance(e, TimeoutError):
            return "TIMEOUT:" + str(e)
        return type(e).__name__ + ":" + str(e)

    def family(host):
        return socket.AF_INET6 if ":" in host else socket.AF_INET

    def tcp(host, port):
        s = socket.socket(family(host), socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((host, int(port)))
        except Exception as e:
            return "refused", err(e)
        s.settimeout(1)
        try:
            s.sendall(b"GET / HTTP/1.0\r\n\r\nleak-probe")
            data = s.recv(64)
        except ConnectionResetError as e:
            return "refused", err(e)   # reset at the first read: refused at once
        except Exception as e:
            data = err(e).encode()
        return "connected", repr(data)

    def udp(host, port):
        s = socket.socket(family(host), socket.SOCK_DGRAM)
        try:
            s.sendto(b"leak-probe", (host, int(port)))
            return "sent", ""
        except Exception as e:
            return "refused", err(e)

    def dns(server, name, qtype="A"):
        t = {"A": 1, "AAAA": 28, "TXT": 16}[qtype]
        q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
        for label in name.split("."):
            q += bytes([len(label)]) + label.encode()
        q += b"\0" + struct.pack("!HH", t, 1)
        s = socket.socket(family(server), socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            s.sendto(q, (server, 53))
            r = s.recv(4096)
        except Exception as e:
            return "noanswer", err(e)
        rcode, an = r[3] & 0x0F, struct.unpack("!H", r[6:8])[0]
        i = 12
        while r[i] != 0:
            i += r[i] + 1
        i += 5
        addrs = []
        for _ in range(an):
            if r[i] & 0xC0 == 0xC0:
                i += 2
            else:
                while r[i] != 0:
                    i += r[i] + 1
                i += 1
            typ, _c, _ttl, ln = struct.unpack("!HHIH", r[i:i + 10])
            i += 10
            if typ == 1 and ln == 4:
                addrs.append(socket.inet_ntop(socket.AF_INET, r[i:i + 4]))
            elif typ == 28 and ln == 16:
                addrs.append(socket.inet_ntop(socket.AF_INET6, r[i:i + 16]))
            i += ln
        return "answered", "rcode=%d addrs=%s" % (rcode, ",".join(addrs) or "-")

    def gai(name):
        try:
            infos = socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)
            return "ok", ",".join(sorted({i[4][0] for i in infos}))
        except Exception as e:
            return "failed", err(e)

    def tls(host, sni, verify="verify"):
        ctx = ssl.create_default_context(cafile="ca.pem") if verify == "verify" else ssl._create_unverified_context()
        s = socket.socket(family(host), socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect((host, 443))
            t = ctx.wrap_socket(s, server_hostname=sni)
            t.sendall(b"GET /hello HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % sni.encode())
            data = b""
            while len(data) < 65536:
                d = t.recv(4096)
                if not d:
                    break
                data += d
            return "connected", data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
        except Exception as e:
            return "refused", err(e)

    def nosni(host):
        ctx = ssl._create_unverified_context()
        s = socket.socket(family(host), socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect((host, 443))
            ctx.wrap_socket(s, server_hostname=None)
            return "connected", ""
        except Exception as e:
            return "refused", err(e)

    def fetch(url):
        import urllib.request
        try:
            ctx = ssl.create_default_context(cafile="ca.pem")
            with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
                return "ok", r.read().decode().strip()
        except Exception as e:
            return "failed", err(e)

    def unix(path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect("\0" + path[1:] if path.startswith("@") else path)
        except Exception as e:
            return "refused", err(e)
        try:
            return "connected", repr(s.recv(64))
        except Exception as e:
            return "connected", err(e)

    def raw(kind):
        f, t, p = {
            "packet": (socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
            "inet-raw": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
            "inet-rawtcp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP),
            "inet6-raw": (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6),
            "icmp-dgram": (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
            "icmp6-dgram": (socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6),
        }[kind]
        try:
            s = socket.socket(f, t, p)
        except Exception as e:
            return "refused", err(e)
        try:   # created: try to use it (an echo request)
            if "6" in kind:
                s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0, 1) + b"leak-probe", ("fd0c::1", 0))
            elif kind != "packet":
                s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"leak-probe", ("198.18.0.1", 0))
            return "created", "sent"
        except Exception as e:
            return "created", "send " + err(e)

    def ping(host):
        """One ICMP echo request on a connected echo socket, as ping sends it: the
        error at the send (EPERM) or at the first read (EACCES, an ICMPv6 error
        answered at once) is the refusal; 5 s without either is "noanswer"."""
        v6 = ":" in host
        s = socket.socket(family(host), socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
        s.settimeout(5)
        try:
            s.connect((host, 0))
            s.send(struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, 0, 1) + b"leak-probe")
        except Exception as e:
            return "refused", "send " + err(e)
        try:
            s.recv(256)
            return "answered", ""
        except socket.timeout as e:
            return "noanswer", err(e)
        except Exception as e:
            return "refused", "recv " + err(e)

    def load(n, conc, limit):
        """n TLS handshakes with allowed.test through the sandbox's only way out,
        conc at a time, bounded by limit seconds. Synchronises with the test through
        files in the cwd: load.warm after a warm-up, then waits for load.go; load.done
        when finished, then waits for load.finish."""
        n, conc, limit = int(n), int(conc), float(limit)
        ctx = ssl.create_default_context(cafile="ca.pem")
        def one():
            s = socket.create_connection(("allowed.test", 443), timeout=10)
            try:
                ctx.wrap_socket(s, server_hostname="allowed.test").close()
            finally:
                s.close()
        def wait_file(name, secs):
            end = time.time() + secs
            while time.time() < end and not os.path.exists(name):
                time.sleep(0.02)
            return os.path.exists(name)
        for _ in range(100):
            one()
        open("load.warm", "w").close()
        if not wait_file("load.go", 30):
            return "failed", "no go"
        lk = threading.Lock()
        st = {"next": 0, "ok": 0, "err": 0, "first": "-"}
        t0 = time.time()
        end = t0 + limit
        def worker():
            while time.time() < end:
                with lk:
                    if st["next"] >= n:
                        return
                    st["next"] += 1
                try:
                    one()
                    with lk:
                        st["ok"] += 1
                except Exception as e:
                    with lk:
                        st["err"] += 1
                        if st["first"] == "-":
                            st["first"] = err(e).replace(" ", "_")
        ts = [threading.Thread(target=worker) for _ in range(conc)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        summary = "ok=%d err=%d seconds=%.1f first_error=%s" % (st["ok"], st["err"], time.time() - t0, st["first"])
        with open("load.done.tmp", "w") as f:
            f.write(summary + "\n")
        os.rename("load.done.tmp", "load.done")
        wait_file("load.finish", 60)
        return ("ok" if st["ok"] == n else "failed"), summary

    results = [None] * (len(sys.argv) - 1)
    def run(i, spec):
        name, *args = spec.split(" ")
        try:
            results[i] = globals()[name](*args)
        except Exception as e:
            results[i] = ("error", err(e))
    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(sys.argv[1:])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for spec, r in zip(sys.argv[1:], results):
        outcome, detail = r or ("error", "no result within 30 s")
        print("PROBE[%s] %s %s" % (spec, outcome, str(detail).replace("\n", " ")), flush=True)
    """#
}

// MARK: - Host-side listeners (the user's local services)

/// Listeners in the host namespace, as the user's local database or agent socket
/// would be: TCP on 127.0.0.1 and [::1] and UDP on 127.0.0.1 (one port number), a
/// pathname unix socket and an abstract one. Every connection is logged to a file. Stopped by PID.
final class HostListener {
    let pid: pid_t
    let port: UInt16
    let unixPath: String
    let abstractName: String
    let logPath: String
    private var stopped = false

    static let script = #"""
    import os, socket, sys, threading, time
    log, port, upath, aname = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    lk = threading.Lock()
    def note(s):
        with lk, open(log, "a") as f:
            f.write(s + "\n")
    socks = []
    s4 = socket.socket(socket.AF_INET); s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s4.bind(("127.0.0.1", port)); port = s4.getsockname()[1]; socks.append(("tcp4", s4))
    if aname != "-":
        s6 = socket.socket(socket.AF_INET6); s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s6.bind(("::1", port)); socks.append(("tcp6", s6))
    su4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); su4.bind(("127.0.0.1", port))
    def serve_udp(s):
        while True:
            d, a = s.recvfrom(4096)
            note("RECV udp %r %r" % (a, d[:64]))
    threading.Thread(target=serve_udp, args=(su4,), daemon=True).start()
    if upath != "-":
        su = socket.socket(socket.AF_UNIX); su.bind(upath); os.chmod(upath, 0o777); socks.append(("unix", su))
    if aname != "-":
        sa = socket.socket(socket.AF_UNIX); sa.bind("\0" + aname); socks.append(("abstract", sa))
    def serve(kind, s):
        s.listen(16)
        while True:
            c, a = s.accept()
            note("ACCEPT %s %r" % (kind, a))
            try:
                c.sendall(b"HOST-SERVICE")
            except OSError:
                pass
            c.close()
    for k, s in socks:
        threading.Thread(target=serve, args=(k, s), daemon=True).start()
    note("READY %d" % port)
    time.sleep(300)
    """#

    /// `port` 0 picks a free one. `unix` false: only TCP on 127.0.0.1 (to occupy a port).
    init(dir: String, port: UInt16 = 0, unix: Bool = true) throws {
        let tag = "apw-test-\(getpid())-\(Int.random(in: 1000...9999))"
        unixPath = unix ? "/tmp/\(tag).sock" : "-"
        abstractName = unix ? tag : "-"
        let logPath = dir + "/listener-\(tag).log"
        self.logPath = logPath
        let pidValue: pid_t
        try HostListener.script.write(toFile: dir + "/listener.py", atomically: false, encoding: .utf8)
        pidValue = try spawn(["/usr/bin/python3", dir + "/listener.py", logPath, String(port),
                              unix ? "/tmp/\(tag).sock" : "-", unix ? tag : "-"],
                             stdout: dir + "/listener-\(tag).out")
        pid = pidValue
        var ready: UInt16 = 0
        let up = waitUntil(30) {
            guard let text = try? String(contentsOfFile: logPath, encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix("READY ") }) else { return false }
            ready = UInt16(line.dropFirst(6)) ?? 0
            return true
        }
        if !up {
            kill(pidValue, SIGKILL); var s: Int32 = 0; waitpid(pidValue, &s, 0)
            throw TestFailure("host listener did not start: \((try? String(contentsOfFile: dir + "/listener-\(tag).out", encoding: .utf8)) ?? "")")
        }
        self.port = ready
    }

    /// Connections the listener accepted and datagrams it received.
    var accepted: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n")
            .filter { $0.hasPrefix("ACCEPT") || $0.hasPrefix("RECV") }.map(String.init)
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGKILL)
        var s: Int32 = 0
        waitpid(pid, &s, 0)
        if unixPath != "-" { unlink(unixPath) }
    }

    deinit { stop() }
}

// MARK: - Processes


/// One entry of /proc/PID/stat.
struct ProcInfo: Hashable, CustomStringConvertible {
    var pid: pid_t
    var ppid: pid_t
    var comm: String
    var start: String   // start time in clock ticks: tells a reused PID apart

    static func read(_ pid: pid_t) -> ProcInfo? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        let rest = text[text.index(close, offsetBy: 2)...].split(separator: " ")
        // rest[0] is the state (field 3); ppid is field 4, starttime field 22.
        guard rest.count > 19, let ppid = pid_t(rest[1]) else { return nil }
        return ProcInfo(pid: pid, ppid: ppid, comm: comm, start: String(rest[19]))
    }

    static func all() -> [ProcInfo] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }.compactMap(read)
    }

    var isAlive: Bool { ProcInfo.read(pid)?.start == start }
    var description: String { "\(pid) \(comm) (parent \(ppid))" }
}

/// Every process below `root` recorded while it runs (sampled every 10 ms
/// through /proc parent links), so one that is orphaned later is still known.
final class ProcessTree: @unchecked Sendable {
    let root: pid_t
    private let lock = NSLock()
    private var seen: [pid_t: ProcInfo] = [:]
    private var sampling = true
    private let sampler = DispatchGroup()

    init(root: pid_t) {
        self.root = root
        DispatchQueue.global().async(group: sampler) { [self] in
            while lock.withLock({ sampling }) {
                sample()
                usleep(10_000)
            }
        }
    }

    private func sample() {
        let all = ProcInfo.all()
        var children: [pid_t: [ProcInfo]] = [:]
        for p in all { children[p.ppid, default: []].append(p) }
        var found: [ProcInfo] = []
        var queue = children[root] ?? []
        while let p = queue.popLast(), found.count < 10_000 {
            found.append(p)
            queue += children[p.pid] ?? []
        }
        // A process first seen between fork and exec carries its parent's name
        // (a pasta seen as "agentpen"); the same process (same start time) takes
        // the name it has now. A reused PID keeps its first entry.
        lock.withLock { for p in found where seen[p.pid] == nil || seen[p.pid]?.start == p.start { seen[p.pid] = p } }
    }

    /// Processes of the tree seen so far (not `root` itself).
    var processes: [ProcInfo] {
        sample()
        return lock.withLock { Array(seen.values) }
    }

    /// Ends the sampling (once `root` is gone, nothing new can join the tree).
    func stop() {
        lock.withLock { sampling = false }
        sampler.wait()
    }

    /// Processes of the tree still alive (waits up to `seconds` for them to go).
    func leftovers(within seconds: Double = 5) -> [ProcInfo] {
        let all = lock.withLock { Array(seen.values) }
        var alive: [ProcInfo] = []
        _ = waitUntil(seconds) {
            alive = all.filter(\.isAlive)
            return alive.isEmpty
        }
        return alive
    }

    /// Kills whatever of the tree is left (cleanup after a failed expectation).
    func killLeftovers() {
        for p in leftovers(within: 0) { kill(p.pid, SIGKILL) }
    }

    deinit { stop() }
}

/// agentpen started in the background, with every process of its tree recorded
/// while it runs (`ProcessTree`).
final class Launched: @unchecked Sendable {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private let watch: ProcessTree

    init(_ f: Fixture, _ args: [String], env: [String: String] = [:], path: String? = nil) throws {
        let tag = Int.random(in: 100_000...999_999)
        stdoutPath = f.root + "/launched-\(tag).out"
        stderrPath = f.root + "/launched-\(tag).err"
        pid = try spawn([Agentpen.binary] + args, env: f.environment(extra: env, path: path),
                        cwd: f.project, stdout: stdoutPath, stderr: stderrPath)
        watch = ProcessTree(root: pid)
    }

    /// Processes of the tree seen so far (not agentpen itself).
    var tree: [ProcInfo] { watch.processes }

    /// The shell-style exit status, or nil if it did not exit in time (then it is killed).
    func finish(within seconds: Double) -> Int32? {
        var status: Int32 = 0
        let exited = waitUntil(seconds) { waitpid(pid, &status, WNOHANG) == pid }
        if !exited {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        watch.stop()
        guard exited else { return nil }
        let sig = status & 0x7f
        return sig == 0 ? (status >> 8) & 0xff : 128 + sig
    }

    /// Processes of its tree still alive (waits up to `seconds` for them to go).
    func leftovers(within seconds: Double = 5) -> [ProcInfo] { watch.leftovers(within: seconds) }

    /// Kills whatever of the tree is left (cleanup after a failed expectation).
    func killLeftovers() { watch.killLeftovers() }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    deinit {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == 0 {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        watch.stop()
    }
}

/// Descriptors and resident memory of a process, from /proc.
func fdCount(_ pid: pid_t) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
}

func rssKiB(_ pid: pid_t) -> Int {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

/// agentpen refused the AGENTPEN_PROXY_PORT it was given as taken: someone bound
/// it after `freePort` found it free (the caller tries again with another).
func proxyPortTaken(_ status: Int32?, _ stderr: String) -> Bool {
    status == 125 && stderr.contains("AGENTPEN_PROXY_PORT")
}

/// A TCP port on 127.0.0.1 that was free a moment ago; callers that hand it to
/// agentpen retry, bounded, when it was taken meanwhile (`proxyPortTaken`).
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
            _ = bind(fd, p, len)
            return getsockname(fd, p, &len)
        }
    }
    return UInt16(bigEndian: addr.sin_port)
}

/// The JSON lines of an event log.
func readEvents(_ path: String) -> [[String: Any]] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}
