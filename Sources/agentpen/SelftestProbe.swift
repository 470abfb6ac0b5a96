import AgentpenKernel
import AgentpenPolicy
import AgentpenSystem
import CShim
import FoundationEssentials
import Glibc

/// `agentpen __probe selftest offline|network PROJECT HOME PORT`, run inside the
/// sandbox by `agentpen selftest`: tries each escape once and prints
/// `selftest.KEY=VALUE` (OK, an errno name, or what came back). It decides
/// nothing; the host side judges (AgentpenPolicy/Selftest.swift).
enum SelftestProbe {
    static func say(_ key: String, _ value: String) {
        print("selftest.\(key)=\(value)")
    }

    static func errnoName(_ e: Int32) -> String {
        switch e {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EACCES: "EACCES"
        case EROFS: "EROFS"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case EINVAL: "EINVAL"
        case ESRCH: "ESRCH"
        case ENOTTY: "ENOTTY"
        case ENOSYS: "ENOSYS"
        case EAFNOSUPPORT: "EAFNOSUPPORT"
        case ECONNREFUSED: "ECONNREFUSED"
        case ENETUNREACH: "ENETUNREACH"
        case EHOSTUNREACH: "EHOSTUNREACH"
        case ECONNRESET: "ECONNRESET"
        case EADDRNOTAVAIL: "EADDRNOTAVAIL"
        case ENOTDIR: "ENOTDIR"
        case EXDEV: "EXDEV"
        default: "E\(e)"
        }
    }
    /// "OK" for a non-negative result, else the errno name of -rc.
    static func result(_ rc: Int) -> String { rc >= 0 ? "OK" : errnoName(Int32(-rc)) }
    static func lastErrno(_ rc: Int32) -> String { rc >= 0 ? "OK" : errnoName(errno) }

    static func main(_ args: [String]) -> Never {
        guard args.count == 4, let port = UInt16(args[3]) else { exit(2) }
        let project = args[1], home = args[2]
        say("probe", "ran")
        files(project: project, home: home)
        kernel()
        say("host_service", connect(.loopbackV4, port))
        if args[0] == "network" { network(port: port) }
        say("probe-end", "ran")
        exit(0)
    }

    // MARK: files

    static func files(project: String, home: String) {
        for (key, path) in [("secret_ssh", home + "/.ssh/id_ed25519"), ("secret_aws", home + "/.aws/credentials")] {
            if let content = Host.readFile(path) {
                // Empty: agentpen's decoy at that path (SecretDecoys), not the secret.
                say(key, content.isEmpty ? "empty" : "OK")
                // What was read goes to the output: the host looks for its marker there.
                say(key + "_content", content.split(separator: "\n").first.map(String.init) ?? "")
            } else {
                say(key, errnoName(errno))
            }
        }
        say("project_write", write(project + "/selftest-written", "written\n", create: true))
        say("git_hook", write(project + "/.git/hooks/pre-commit", "#!/bin/sh\necho planted\n", create: true, mode: 0o755))
        say("git_config", write(project + "/.git/config", "[core]\n\tfsmonitor = echo planted\n", create: false))
        say("git_rename", lastErrno(rename(project + "/.git", project + "/.git-aside")))

        // A nested repository with an executable hook: allowed to plant, the audit must disarm it.
        let nested = project + "/nested/.git"
        let dirs: [String] = [project + "/nested", nested, nested + "/objects", nested + "/refs", nested + "/hooks"]
        var planted: [String] = []
        for dir in dirs { planted.append(lastErrno(mkdir(dir, 0o755))) }
        planted.append(write(nested + "/HEAD", "ref: refs/heads/main\n", create: true))
        planted.append(write(nested + "/config", "[core]\n\trepositoryformatversion = 0\n", create: true))
        planted.append(write(nested + "/hooks/post-checkout", "#!/bin/sh\necho planted\n", create: true, mode: 0o755))
        say("nested_hook", planted.first { $0 != "OK" } ?? "OK")

        // Inside, the home is a tmpfs: writing there is fine, none of it may reach the host.
        _ = mkdir(home + "/.ssh", 0o700)
        let homeWrites = [write(home + "/.bashrc", "echo planted\n", create: true),
                          write(home + "/.ssh/authorized_keys", "ssh-ed25519 AAAA planted\n", create: true)]
        say("home_write", homeWrites.first { $0 != "OK" } ?? "OK")
    }

    static func write(_ path: String, _ text: String, create: Bool, mode: mode_t = 0o644) -> String {
        let flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_TRUNC : O_APPEND)
        guard let file = Descriptor.open(path, flags, mode: mode) else { return errnoName(errno) }
        let bytes = Array(text.utf8)
        let n = Glibc.write(file.raw, bytes, bytes.count)
        let state = n == bytes.count ? "OK" : errnoName(errno)
        file.close()
        return state
    }

    // MARK: kernel surface

    static func kernel() {
        say("ptrace", result(ap_ptrace_peek(getppid())))
        var source: UInt64 = 0x5e1f7e57, copy: UInt64 = 0
        say("process_vm_readv", result(ap_process_vm_readv_self(&copy, &source, MemoryLayout<UInt64>.size)))
        say("keyctl", result(ap_keyctl_session_keyring()))
        say("unshare", result(Int(ap_unshare(AP_CLONE_NEWUSER))))
        say("mount", result(Int(ap_mount_tmpfs("/tmp"))))
        // On /dev/null, not a terminal: without the filter the kernel says ENOTTY
        // and nothing is typed anywhere; the filter says EPERM whatever the fd.
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        say("tiocsti", null >= 0 ? result(Int(ap_ioctl_tiocsti(null, 0x20))) : "no /dev/null: \(errnoName(errno))")
        if null >= 0 { Descriptor(null).close() }
        let vsock = ap_socket_family(40)
        say("vsock", result(Int(vsock)))
        if vsock >= 0 { Descriptor(vsock).close() }
        let fs = RealFileSystem()
        say("pid_ns", fs.readLink("/proc/self/ns/pid") ?? "unreadable: \(errnoName(errno))")
        // The host's `agentpen selftest` is running right now: a /proc that shows
        // the host's processes shows it (its argv[1] is "selftest").
        var seen = 0, visible = 0
        for name in RealFileSystem().list("/proc") where Int(name) != nil {
            seen += 1
            let argv = (Host.readFile("/proc/\(name)/cmdline") ?? "").split(separator: "\0", omittingEmptySubsequences: false)
            if argv.count > 1, argv[1] == "selftest" { visible += 1 }
        }
        say("processes", "\(seen)")
        say("host_selftest_visible", "\(visible)")
    }

    // MARK: network

    static func network(port: UInt16) {
        // Routes that leave through an interface other than loopback, and their masks.
        let table = (Host.readFile("/proc/net/route") ?? "").split(separator: "\n").dropFirst()
            .map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }) }
        let out = table.filter { $0.count > 7 && $0[0] != "lo" }
        say("routes_out", "\(out.count)")
        say("routes_out_masks", out.isEmpty ? "none" : out.map { String($0[7]) }.joined(separator: ","))
        say("literal_v4", connect(IPAddress(Selftest.literalV4)!, 443))
        say("literal_v6", connect(IPAddress(Selftest.literalV6)!, 443))
        say("dns_unlisted", resolve(Selftest.unlistedName))
        say("dns_allowed", resolve(Selftest.allowedName))
        say("udp", udp(IPAddress(Selftest.literalV4)!, 53))
        // The host's own address on the veth: a host service listening on every address is there.
        say("host_address_service", connect(IPAddress(Selftest.hostV4)!, port))
        tls()
    }

    /// One UDP datagram: OK when it was sent, else the errno name.
    static func udp(_ address: IPAddress, _ port: UInt16) -> String {
        let raw = ap_socket(Int32(address.bytes.count), 1)
        guard raw >= 0 else { return "socket: \(errnoName(-raw))" }
        let socket = Descriptor(raw)
        var byte: UInt8 = 0
        let n = address.withUnsafeBufferPointer { ap_sendto_ip(socket.raw, &byte, 1, $0.baseAddress, Int32($0.count), port) }
        socket.close()
        return n >= 0 ? "OK" : errnoName(Int32(-n))
    }

    /// Waits up to two seconds for `events` on `fd`: an escape that is not
    /// refused at once (a SYN dropped further away) shows as TIMEOUT, which fails.
    static func wait(_ fd: Int32, _ events: Int16) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let n = poll(&p, 1, 2000)
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }

    /// A TCP connection attempt: an errno name (refused at connect, or reset at
    /// the first read, as the namespace's catch-all does), TIMEOUT (no answer to
    /// the SYN), "open" (connected and held: something accepted it) or
    /// "answered"/"closed" (something spoke or closed).
    static func connect(_ address: IPAddress, _ port: UInt16) -> String {
        let (state, fd) = connected(address, port)
        guard fd >= 0 else { return state }
        defer { Descriptor(fd).close() }
        guard wait(fd, Int16(POLLIN)) else { return "open" }
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return n > 0 ? "answered" : n == 0 ? "closed" : errnoName(errno)
    }

    /// A TCP connect: its state and, when OK, the connected descriptor (else -1).
    static func connected(_ address: IPAddress, _ port: UInt16) -> (String, Int32) {
        let fd = ap_socket(Int32(address.bytes.count), 0)
        guard fd >= 0 else { return ("socket: \(errnoName(-fd))", -1) }
        let rc = address.withUnsafeBufferPointer { ap_connect_ip(fd, $0.baseAddress, Int32($0.count), port) }
        var state = "OK"
        if rc != 0 {
            if rc != -EINPROGRESS {
                state = errnoName(-rc)
            } else if !wait(fd, Int16(POLLOUT)) {
                state = "TIMEOUT"
            } else {
                let e = ap_so_error(fd)
                if e != 0 { state = errnoName(e < 0 ? -e : e) }
            }
        }
        if state == "OK" { return (state, fd) }
        Descriptor(fd).close()
        return (state, -1)
    }

    /// An A query to the resolver inside (127.0.0.1:53): NXDOMAIN, the answer's
    /// address, another rcode, or what failed.
    static func resolve(_ name: String) -> String {
        var query: [UInt8] = [0x5e, 0x1f, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") { query += [UInt8(label.utf8.count)] + Array(label.utf8) }
        query += [0, 0, 1, 0, 1]
        let raw = ap_socket(4, 1)
        guard raw >= 0 else { return "socket: \(errnoName(-raw))" }
        let socket = Descriptor(raw)
        return exchange(socket.raw, query)
    }

    static func exchange(_ fd: Int32, _ query: [UInt8]) -> String {
        let sent = IPAddress.loopbackV4.withUnsafeBufferPointer { ap_sendto_ip(fd, query, query.count, $0.baseAddress, 4, 53) }
        guard sent >= 0 else { return "send: \(errnoName(Int32(-sent)))" }
        guard wait(fd, Int16(POLLIN)) else { return "TIMEOUT" }
        var reply = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &reply, reply.count, 0)
        guard n >= 12, reply[0] == 0x5e, reply[1] == 0x1f else { return n < 0 ? errnoName(errno) : "malformed reply" }
        let rcode = reply[3] & 0x0f
        if rcode == 3 { return "NXDOMAIN" }
        let answers = Int(reply[6]) << 8 | Int(reply[7])
        // One A answer and no other records: its address is the last 4 bytes.
        if rcode == 0, answers == 1, n >= 16 { return IPAddress(bytes: reply[(n - 4)..<n])!.description }
        return "rcode \(rcode), \(answers) answers"
    }

    /// A ClientHello for the unlisted name to the proxy's port inside: the proxy
    /// must close without a byte back (and without dialling anything).
    static func tls() {
        let (state, fd) = connected(.loopbackV4, 443)
        say("proxy_connect", state)
        guard fd >= 0 else { return }
        say("sni_unlisted", refusedHello(fd))
        Descriptor(fd).close()
        // The allowed name, through the proxy to the world's internet and back.
        let (allowedState, allowed) = connected(.loopbackV4, 443)
        guard allowed >= 0 else { say("tls_allowed", "connect: \(allowedState)"); return }
        say("tls_allowed", allowedHello(allowed))
        Descriptor(allowed).close()
    }

    static func allowedHello(_ fd: Int32) -> String {
        let hello = clientHello(Selftest.allowedName)
        guard ap_send_nosignal(fd, hello, hello.count) == hello.count else { return "send failed" }
        guard wait(fd, Int16(POLLIN)) else { return "no answer" }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buf, buf.count, 0)
        guard n > 0 else { return n == 0 ? "closed" : errnoName(errno) }
        return String(decoding: buf[..<n], as: UTF8.self).hasPrefix(Selftest.internetBanner) ? "answered" : "answered \(n) other bytes"
    }

    static func refusedHello(_ fd: Int32) -> String {
        let hello = clientHello(Selftest.unlistedName)
        let sent = ap_send_nosignal(fd, hello, hello.count)
        guard sent == hello.count else { return "send: \(sent < 0 ? errnoName(Int32(-sent)) : "short")" }
        guard wait(fd, Int16(POLLIN)) else { return "held open" }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buf, buf.count, 0)
        return n == 0 || (n < 0 && errno == ECONNRESET) ? "closed" : n > 0 ? "answered \(n) bytes" : errnoName(errno)
    }

    /// A minimal TLS 1.3 ClientHello naming `sni`, in one record.
    static func clientHello(_ sni: String) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
        func ext(_ type: Int, _ body: [UInt8]) -> [UInt8] { u16(type) + u16(body.count) + body }
        let name = Array(sni.utf8)
        let entry: [UInt8] = [0] + u16(name.count) + name
        var exts = ext(0, u16(entry.count) + entry)
        exts += ext(43, [2, 3, 4])
        let share = u16(0x001d) + u16(32) + [UInt8](repeating: 0x5a, count: 32)
        exts += ext(51, u16(share.count) + share)
        var body: [UInt8] = [3, 3] + [UInt8](repeating: 0x11, count: 32) + [0]
        body += u16(2) + [0x13, 0x01] + [1, 0]
        body += u16(exts.count) + exts
        let message: [UInt8] = [1, 0] + u16(body.count) + body
        return [22, 3, 1] + u16(message.count) + message
    }
}
