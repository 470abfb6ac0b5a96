import Foundation
import Testing

/// The sandbox's /etc (issue 11, etcfiles): the listed host files are copies in
/// the root tmpfs and the identity files are generated there, not one mount
/// each; whatever they are, nothing inside can change them, add beside them or
/// to /, see an entry that is not listed, or find a descriptor that carried them.
@Suite struct EtcViewTests {
    /// Listed regular files the host has (Debian has all of them): their copies must equal the host's.
    static let copiedCandidates = ["nsswitch.conf", "protocols", "services", "ld.so.cache", "login.defs", "shells",
                                   "host.conf", "gai.conf", "debian_version", "mime.types"]
    static let generated = ["passwd", "group", "hostname", "hosts", "resolv.conf"]
    /// Host entries the list leaves out.
    static let unlistedCandidates = ["shadow", "fstab", "sudoers", "crontab", "hosts.allow", "apt", "systemd"]

    static func hostRegular(_ names: [String]) -> [String] {
        names.filter { n in
            var st = stat()
            return lstat("/etc/" + n, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access("/etc/" + n, R_OK) == 0
        }
    }

    static func hostExists(_ names: [String]) -> [String] {
        names.filter { n in var st = stat(); return lstat("/etc/" + n, &st) == 0 }
    }

    /// `name=value` lines of `text`.
    static func values(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if kv.count == 2 { out[kv[0]] = kv[1] }
        }
        return out
    }

    static let probe = #"""
    import errno, hashlib, os, sys
    files = sys.argv[1].split(",")
    def attempt(name, fn):
        try:
            fn()
            print(name + "=OK")
        except OSError as e:
            print(name + "=" + errno.errorcode.get(e.errno, str(e.errno)))
    def close_open(p, flags):
        os.close(os.open(p, flags, 0o644))
    for p in files:
        attempt("write:" + p, lambda: close_open(p, os.O_WRONLY))
        attempt("append:" + p, lambda: close_open(p, os.O_WRONLY | os.O_APPEND))
        attempt("truncopen:" + p, lambda: close_open(p, os.O_WRONLY | os.O_TRUNC))
        attempt("truncate:" + p, lambda: os.truncate(p, 0))
        attempt("chmod:" + p, lambda: os.chmod(p, 0o666))
        attempt("chown:" + p, lambda: os.chown(p, os.getuid(), os.getgid()))
        attempt("utime:" + p, lambda: os.utime(p, (0, 0)))
        attempt("rename:" + p, lambda: os.rename(p, p + ".moved"))
        attempt("unlink:" + p, lambda: os.unlink(p))
        attempt("hardlink:" + p, lambda: os.link(p, "/etc/agentpen-link"))
    for d in ["/", "/etc"]:
        new = d.rstrip("/") + "/agentpen-new"
        attempt("create:" + d, lambda: close_open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        attempt("mkdir:" + d, lambda: os.mkdir(new))
        attempt("symlink:" + d, lambda: os.symlink("/usr", new))
        attempt("mkfifo:" + d, lambda: os.mkfifo(new))
        attempt("chmod:" + d, lambda: os.chmod(d, 0o777))
        attempt("chown:" + d, lambda: os.chown(d, os.getuid(), os.getgid()))
        attempt("utime:" + d, lambda: os.utime(d, (0, 0)))
    attempt("rename:/etc", lambda: os.rename("/etc", "/etc-moved"))
    attempt("rmdir:/etc/ssl", lambda: os.rmdir("/etc/ssl"))
    for p in files:
        try:
            with open(p, "rb") as f: print("sha:" + p + "=" + hashlib.sha256(f.read()).hexdigest())
        except OSError as e:
            print("sha:" + p + "=" + errno.errorcode.get(e.errno, str(e.errno)))
        print("mode:" + p + "=" + oct(os.stat(p).st_mode & 0o7777) if os.path.exists(p) else "mode:" + p + "=missing")
    for n in sys.argv[2].split(","):
        if n: print("exists:/etc/" + n + "=" + str(os.path.lexists("/etc/" + n)))
    for n in ["localtime", "os-release"]:
        p = "/etc/" + n
        print("link:" + p + "=" + (os.readlink(p) if os.path.islink(p) else "none"))
    # Every descriptor of every process this one can see: none may lead to a
    # host /etc file or one of agentpen's memory files.
    leaks = []
    for pid in [e for e in os.listdir("/proc") if e.isdigit()]:
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                t = os.readlink("/proc/%s/fd/%s" % (pid, fd))
            except OSError:
                continue
            if "/etc/" in t or t.startswith("/etc") or "memfd:" in t:
                leaks.append("%s:%s:%s" % (pid, fd, t))
    print("leaks=" + ";".join(leaks))
    def target(fd):
        try:
            return os.readlink("/proc/self/fd/" + fd)
        except OSError:
            return None   # the listing's own descriptor, closed by now
    own = [fd + ":" + str(target(fd)) for fd in os.listdir("/proc/self/fd") if int(fd) > 2 and target(fd) is not None]
    print("ownfds=" + ",".join(own))
    sys.stdout.flush()
    if len(sys.argv) > 3:
        open(sys.argv[3], "w").close()
        with open(sys.argv[4]) as f: f.read()
    """#

    /// Runs the probe confined and returns its lines; with `hold`, the sandbox
    /// waits on a fifo in the project while `during` looks at agentpen from outside.
    static func run(_ f: Fixture, files: [String], unlisted: [String],
                    during: ((pid_t) throws -> Void)? = nil) throws -> [String: String] {
        try f.write(f.project + "/etc-probe.py", probe)
        var args = ["--quiet", "--", "/usr/bin/python3", f.project + "/etc-probe.py",
                    files.joined(separator: ","), unlisted.joined(separator: ",")]
        guard let during else {
            let r = try f.agentpen(args)
            #expect(r.status == 0, "agentpen: \(r.status) \(r.stderr)")
            return values(r.stdout)
        }
        let ready = f.project + "/etc-probe.ready", gate = f.project + "/etc-probe.gate"
        #expect(mkfifo(gate, 0o600) == 0)
        args += [ready, gate]
        let out = f.root + "/etc-probe.out"
        let pid = try spawn([Agentpen.binary] + args, env: f.environment(), cwd: f.project, stdout: out, stderr: f.root + "/etc-probe.err")
        var status: Int32 = 0
        defer {
            if waitpid(pid, &status, WNOHANG) == 0 { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
        }
        let started = waitUntil(60) { FileManager.default.fileExists(atPath: ready) || waitpid(pid, &status, WNOHANG) == pid }
        #expect(started && FileManager.default.fileExists(atPath: ready),
                "the sandbox never got ready: \(f.read(f.root + "/etc-probe.err") ?? "")")
        try during(pid)
        // Release the sandbox: the fifo's reader is there (or gone, and ENXIO ends the loop's use).
        var writer: Int32 = -1
        _ = waitUntil(30) { writer = open(gate, O_WRONLY | O_NONBLOCK); return writer >= 0 || errno != ENXIO }
        if writer >= 0 { close(writer) }
        waitpid(pid, &status, 0)
        #expect(status == 0, "agentpen: \(status) \(f.read(f.root + "/etc-probe.err") ?? "")")
        return values(f.read(out) ?? "")
    }

    @Test func etcCannotBeChangedAndShowsTheHostsFiles() throws {
        let f = try Fixture()
        let copied = Self.hostRegular(Self.copiedCandidates)
        let unlisted = Self.hostExists(Self.unlistedCandidates)
        #expect(!copied.isEmpty && !unlisted.isEmpty, "this host has none of the files the test looks at")
        var links: [String] = []
        for n in ["localtime", "os-release"] {
            var st = stat()
            if lstat("/etc/" + n, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK { links.append(n) }
        }
        let files = (Self.generated + copied + links).map { "/etc/" + $0 }
        var agentpenFDs: [String] = []
        let v = try Self.run(f, files: files, unlisted: unlisted) { pid in
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? [] {
                if let t = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)") {
                    agentpenFDs.append(t)
                }
            }
        }
        #expect(!agentpenFDs.isEmpty, "agentpen's descriptors could not be read")
        let held = agentpenFDs.filter { $0.hasPrefix("/etc/") || $0.contains("memfd:agentpen/etc") }
        #expect(held.isEmpty, "agentpen still holds the descriptors of /etc's files: \(held)")

        // Nothing in /etc or / can be changed or added.
        let attempts = v.filter { k, _ in ["write", "append", "truncopen", "truncate", "chmod", "chown", "utime", "rename",
                                         "unlink", "hardlink", "create", "mkdir", "symlink", "mkfifo", "rmdir"]
            .contains(String(k.split(separator: ":").first ?? "")) }
        #expect(attempts.count >= files.count * 10 + 15, "the probe did not run every attempt: \(v)")
        for (k, result) in attempts.sorted(by: { $0.key < $1.key }) {
            #expect(result != "OK", "inside, \(k) succeeded")
        }
        // Today's content of the generated files; the copies equal the host's files.
        for n in copied {
            let host = try runProgram("/usr/bin/sha256sum", ["/etc/" + n], env: [:], cwd: "/").stdout
            #expect(v["sha:/etc/" + n] == String(host.split(separator: " ").first ?? "-"), "/etc/\(n) inside differs from the host's")
        }
        for n in Self.generated { #expect(v["sha:/etc/" + n]?.count == 64, "/etc/\(n) cannot be read inside: \(v["sha:/etc/" + n] ?? "-")") }
        for n in links {
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/etc/" + n)
            #expect(v["link:/etc/" + n] == target, "/etc/\(n) inside is not the host's link to \(target)")
        }
        for n in unlisted { #expect(v["exists:/etc/" + n] == "False", "/etc/\(n), not listed, is visible inside") }
        #expect(v["leaks"] == "", "descriptors inside lead to /etc or agentpen's files: \(v["leaks"] ?? "-")")
        #expect(v["ownfds"] == "", "the command inherited descriptors: \(v["ownfds"] ?? "-")")
    }

    /// The generated files say what they said when they were mounts.
    @Test func generatedFilesHaveTodaysContent() throws {
        let f = try Fixture()
        let r = try f.agentpen(["--quiet", "--", "/bin/sh", "-c",
                                "cat /etc/passwd; echo =; cat /etc/group; echo =; cat /etc/hostname; echo =; cat /etc/hosts; echo =; cat /etc/resolv.conf"])
        #expect(r.status == 0, "\(r.stderr)")
        let parts = r.stdout.components(separatedBy: "=\n")
        #expect(parts.count == 5, "\(r.stdout)")
        guard parts.count == 5 else { return }
        let uid = getuid(), gid = getgid()
        let name = String(cString: getpwuid(uid)!.pointee.pw_name)
        let user = uid == 0 ? "" : "\(name):x:\(uid):\(gid)::\(f.home):/bin/sh\n"
        #expect(parts[0] == "root:x:0:0:root:/root:/bin/sh\n" + user + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        #expect(parts[1] == "root:x:0:\n" + (gid == 0 ? "" : "\(name):x:\(gid):\n") + "nogroup:x:65534:\n")
        #expect(parts[2] == "agentpen\n")
        #expect(parts[3] == "127.0.0.1 localhost agentpen\n::1 localhost\n")
        #expect(parts[4] == "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
    }

    /// A CA bundle the system view shows already (beneath /etc/ssl, bound
    /// whole) is not bound again, however many variables name it; one elsewhere
    /// is bound once, read-only, and visible.
    @Test func caBundlesAreBoundOnceAndNotOverTheSystemView() throws {
        let f = try Fixture()
        let system = "/etc/ssl/certs/ca-certificates.crt"
        #expect(access(system, R_OK) == 0, "this host has no \(system)")
        let own = f.root + "/ca/corp.pem"
        try f.write(own, "CORP-CA\n")
        let script = "for p in \"$SSL_CERT_FILE\" \"$NODE_EXTRA_CA_CERTS\"; do echo \"mounts=$(awk -v p=\"$p\" '$5 == p' /proc/self/mountinfo | wc -l) $p\"; done; "
            + "head -c 7 \"$NODE_EXTRA_CA_CERTS\"; echo; test -s \"$SSL_CERT_FILE\" && echo system-readable; echo x >> \"$NODE_EXTRA_CA_CERTS\"; echo append=$?"
        let r = try f.sh(script, env: ["SSL_CERT_FILE": system, "REQUESTS_CA_BUNDLE": system, "NODE_EXTRA_CA_CERTS": own])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("mounts=0 \(system)"), "the system's CA bundle is bound again: \(r.stdout)")
        #expect(r.stdout.contains("mounts=1 \(own)"), "the CA bundle outside the system view is not bound once: \(r.stdout)")
        #expect(r.stdout.contains("CORP-CA") && r.stdout.contains("system-readable"), "\(r.stdout)")
        #expect(!r.stdout.contains("append=0"), "the CA bundle was writable: \(r.stdout)")
    }

    /// --dry-run prints the argv the run passes to bubblewrap, the session's
    /// view and decoy binds included (only the session's ID differs).
    @Test func dryRunPrintsTheWholeArgv() throws {
        let f = try Fixture()
        let record = f.root + "/bwrap-argv"
        let wrapper = f.root + "/bin/bwrap"
        try f.write(wrapper, "#!/bin/sh\nprintf '%s\\n' \"$@\" > '\(record)'\nexec /usr/bin/bwrap \"$@\"\n", mode: 0o755)
        let env = ["AGENTPEN_BWRAP": wrapper]
        let dry = try f.agentpen(["--dry-run", "--", "/bin/true"], env: env)
        #expect(dry.status == 0, "\(dry.stderr)")
        let run = try f.agentpen(["--quiet", "--", "/bin/true"], env: env)
        #expect(run.status == 0, "\(run.stderr)")
        let recorded = (f.read(record) ?? "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLast()
        // The dry run's bubblewrap block: one option a line, each ending in " \", values shell-quoted.
        guard let start = dry.stdout.range(of: "## bubblewrap\n") else {
            Issue.record("no bubblewrap section:\n\(dry.stdout)")
            return
        }
        var printed: [String] = []
        for line in dry.stdout[start.upperBound...].split(separator: "\n") {
            var l = line.trimmingCharacters(in: .whitespaces)
            if l.hasSuffix(" \\") { l.removeLast(2) }
            printed += shellWords(l)
        }
        printed.removeFirst()   // the program
        func unsession(_ a: [String]) -> [String] {
            a.map { $0.replacingOccurrences(of: #"/agentpen/sessions/[0-9]{8}-[0-9]{6}-[0-9]+"#, with: "/agentpen/sessions/ID",
                                             options: .regularExpression) }
        }
        #expect(recorded.contains { $0.contains("/agentpen/sessions/") }, "the run bound no session: \(recorded)")
        let a = unsession(printed), b = unsession(Array(recorded))
        let at = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        #expect(a == b, "the dry run's argv is not the run's from argument \(at): dry run \(a[at...].prefix(8)), run \(b[at...].prefix(8))")
    }
}

/// Splits one line the way DryRun.quote wrote it (plain words and '...' with '\'' inside).
func shellWords(_ line: String) -> [String] {
    var out: [String] = [], word = "", inQuote = false, any = false
    var chars = Array(line)[...]
    while let c = chars.first {
        chars = chars.dropFirst()
        if inQuote {
            if c == "'" { inQuote = false } else { word.append(c) }
        } else if c == "'" {
            inQuote = true; any = true
        } else if c == "\\", let next = chars.first {
            word.append(next); chars = chars.dropFirst(); any = true
        } else if c == " " {
            if any || !word.isEmpty { out.append(word) }
            word = ""; any = false
        } else {
            word.append(c); any = true
        }
    }
    if any || !word.isEmpty { out.append(word) }
    return out
}
