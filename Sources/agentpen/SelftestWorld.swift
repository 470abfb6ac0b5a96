import AgentpenKernel
import AgentpenPolicy
import AgentpenSystem
import CShim
import Glibc

/// The selftest's own small world, made by the world helper while it is still
/// single-threaded: an outer user namespace (the caller's uid and gid mapped to
/// themselves, so the sandboxes run in it as the caller, without capabilities,
/// once exec'd) owning a mount namespace and the "host" network namespace, and
/// an "internet" network namespace joined to it by a veth pair:
///
///   host 198.18.0.1/24 fd0c::1/64 (ap-st-host, default routes) ── internet 198.18.0.2/24 fd0c::2/64 (ap-st-inet)
///
/// The internet holds TCP listeners on port 443 (both families); the host's /etc/hosts (a
/// bind in the world's mount namespace) names the allowed host there, and
/// nsswitch's hosts line is `files`, so nothing is ever asked of a real resolver.
enum SelftestWorld {
    static let hostAddress = IPAddress(198, 18, 0, 1)
    static let internetAddress = IPAddress(Selftest.literalV4)!
    static let hostAddress6 = IPAddress(Selftest.hostV6)!
    static let internetAddress6 = IPAddress(Selftest.literalV6)!
    /// What the internet's server answers: the probe looks for it.
    static let banner = Selftest.internetBanner + "\n"

    typealias Failure = SelftestRun.WorldFailure

    /// Builds the world; returns the internet's listening sockets (IPv4 and
    /// IPv6, non-blocking), owned by the caller.
    static func build(_ world: String) throws(Failure) -> DescriptorList {
        func check(_ rc: Int32, _ what: String) throws(Failure) {
            if rc < 0 { throw Failure(message: "world: \(what): \(String(cString: strerror(-rc)))") }
        }
        let uid = getuid(), gid = getgid()
        try check(ap_unshare(AP_CLONE_NEWUSER | AP_CLONE_NEWNET | AP_CLONE_NEWNS),
                  "cannot create a user namespace (run agentpen --check)")
        do {
            try NetHelper.writeFile("/proc/self/setgroups", "deny")
            try NetHelper.writeFile("/proc/self/uid_map", "\(uid) \(uid) 1")
            try NetHelper.writeFile("/proc/self/gid_map", "\(gid) \(gid) 1")
        } catch { throw Failure(message: "world: cannot map the user namespace: \(error)") }

        // Names: the allowed host lives in the internet; only files answer.
        try check(ap_mount_private_root(), "mount --make-rprivate /")
        try check(mkdir(world + "/etc", 0o700) == 0 ? 0 : -errno, "mkdir \(world)/etc")
        let hosts = "127.0.0.1 localhost\n::1 localhost\n\(internetAddress) \(Selftest.allowedName)\n"
        let nsswitch = (Host.readFile("/etc/nsswitch.conf") ?? "").split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("hosts:") }.joined(separator: "\n") + "\nhosts: files\n"
        for (name, text) in [("hosts", hosts), ("nsswitch.conf", nsswitch)] {
            let path = world + "/etc/" + name
            guard let file = Descriptor.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o644) else { throw Failure(message: "world: create \(path): \(String(cString: strerror(errno)))") }
            let bytes = Array(text.utf8)
            let n = Glibc.write(file.raw, bytes, bytes.count)
            file.close()
            try check(n == bytes.count ? 0 : -EIO, "write \(path)")
            if access("/etc/" + name, F_OK) == 0 || name == "hosts" {
                try check(ap_mount_bind(path, "/etc/" + name), "bind \(path) over /etc/\(name)")
            }
        }

        do {
            let hostLink = try NetlinkRoute()
            try hostLink.setLinkUp(index: try hostLink.index(of: "lo"))
            guard let hostNamespace = Descriptor.open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC) else {
                throw Failure(message: "world: open the host namespace: \(String(cString: strerror(errno)))")
            }
            let hostNS = hostNamespace.raw

            // The internet: its own namespace, entered only to open what lives there.
            try check(ap_unshare(AP_CLONE_NEWNET), "create the internet namespace")
            guard let internetNamespace = Descriptor.open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC) else {
                throw Failure(message: "world: open the internet namespace: \(String(cString: strerror(errno)))")
            }
            let internetNS = internetNamespace.raw
            let internetLink = try NetlinkRoute()
            try internetLink.setLinkUp(index: try internetLink.index(of: "lo"))
            let server = ap_socket(4, 0)
            try check(server, "the internet's socket")
            try check(IPAddress(0, 0, 0, 0).withUnsafeBufferPointer { ap_bind_ip(server, $0.baseAddress, 4, 443) }, "bind the internet's :443")
            try check(ap_listen(server, 64), "listen on the internet's :443")
            let server6 = ap_socket(16, 0)
            try check(server6, "the internet's IPv6 socket")
            try check(ap_setns(hostNS, AP_CLONE_NEWNET), "back to the host namespace")

            try hostLink.addVeth(name: "ap-st-host", peer: "ap-st-inet", peerNamespaceFD: internetNS)
            let hostIndex = try hostLink.index(of: "ap-st-host")
            try hostLink.addAddress(hostAddress, prefix: 24, interfaceIndex: hostIndex)
            try hostLink.setLinkUp(index: hostIndex)
            let internetIndex = try internetLink.index(of: "ap-st-inet")
            try internetLink.addAddress(internetAddress, prefix: 24, interfaceIndex: internetIndex)
            try internetLink.setLinkUp(index: internetIndex)
            try hostLink.addDefaultRoute(via: internetAddress, interfaceIndex: hostIndex)
            try hostLink.addAddress(hostAddress6, prefix: 64, interfaceIndex: hostIndex)
            try internetLink.addAddress(internetAddress6, prefix: 64, interfaceIndex: internetIndex)
            try hostLink.addDefaultRoute(via: internetAddress6, interfaceIndex: hostIndex)
            // Bound to its own address (the IPv4 socket holds the wildcard :443).
            try check(internetAddress6.withUnsafeBufferPointer { ap_bind_ip(server6, $0.baseAddress, 16, 443) }, "bind the internet's [\(internetAddress6)]:443")
            try check(ap_listen(server6, 64), "listen on the internet's IPv6 :443")
            // The control: from the host, both of the internet's addresses answer.
            for (address, listener) in [(internetAddress, server), (internetAddress6, server6)] {
                try check(reaches(address, listener) ? 0 : -EHOSTUNREACH, "the host cannot reach the internet at \(address)")
            }
            return DescriptorList(taking: [server, server6])
        } catch let e as Failure {
            throw e
        } catch {
            throw Failure(message: "world: \(error)")
        }
    }

    /// Whether a connection from here to `address`:443 arrives at `listener`
    /// (accepted and closed, so it is not counted later).
    static func reaches(_ address: IPAddress, _ listener: Int32) -> Bool {
        let raw = ap_socket(Int32(address.bytes.count), 0)
        guard raw >= 0 else { return false }
        let socket = Descriptor(raw)
        let fd = socket.raw
        let rc = address.withUnsafeBufferPointer { ap_connect_ip(fd, $0.baseAddress, Int32($0.count), 443) }
        guard rc == 0 || rc == -EINPROGRESS else { return false }
        var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 2000) > 0 else { return false }
        var addr = [UInt8](repeating: 0, count: 16)
        var len: Int32 = 0, port: UInt16 = 0
        let c = ap_accept_ip(listener, &addr, &len, &port)
        guard c >= 0 else { return false }
        Descriptor(c).close()
        return true
    }

    /// Runs `argv` to completion like Spawn.run, serving the internet meanwhile:
    /// each connection's first bytes (up to 16 KiB, two seconds) are recorded in
    /// `arrivals` and answered with the banner.
    static func serve(_ argv: [String], env: [EnvironmentVariable], internet: [Int32],
                      arrivals: inout [[UInt8]]) -> (status: Int32, output: String) {
        let output: Descriptor.Pipe
        do { output = try Descriptor.pipe() } catch { return (125, "pipe failed") }
        let outRead = output.read
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard null >= 0 else { return (125, "cannot open /dev/null: \(String(cString: strerror(errno)))") }
        var child = ChildDescriptors()
        child.add(Descriptor(null), at: 0)
        let outNumber = output.write.raw
        child.add(output.write, at: 1)
        child.add(borrowing: outNumber, at: 2)
        var o = Spawn.Options()
        o.env = env
        o.fds = child.mapping
        let pid: pid_t
        do { pid = try Spawn.start(argv, o) } catch {
            return (125, error.description)
        }
        child.closeAll()
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        var polls = [pollfd(fd: outRead.raw, events: Int16(POLLIN), revents: 0)]
            + internet.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        outer: while true {
            guard poll(&polls, nfds_t(polls.count), -1) >= 0 else { if errno == EINTR { continue }; break }
            for i in 1..<polls.count where polls[i].revents & Int16(POLLIN) != 0 {
                var addr = [UInt8](repeating: 0, count: 16)
                var len: Int32 = 0, port: UInt16 = 0
                let c = ap_accept_ip(polls[i].fd, &addr, &len, &port)
                if c >= 0 { arrivals.append(answer(c)) }
            }
            if polls[0].revents != 0 {
                let n = read(outRead.raw, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break outer }
                if out.count < 1 << 20 { out += buf[..<n] }
            }
        }
        outRead.close()
        return (Spawn.wait(pid), String(decoding: out, as: UTF8.self))
    }

    /// Reads what a client sends first, answers the banner, closes.
    static func answer(_ fd: Int32) -> [UInt8] {
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while got.count < 16384, poll(&p, 1, 2000) > 0 {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            got += buf[..<n]
            // A whole TLS record is enough.
            if got.count >= 5, got.count >= 5 + (Int(got[3]) << 8 | Int(got[4])) { break }
        }
        let banner = Array(banner.utf8)
        _ = ap_send_nosignal(fd, banner, banner.count)
        Descriptor(fd).close()
        return got
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }
}
