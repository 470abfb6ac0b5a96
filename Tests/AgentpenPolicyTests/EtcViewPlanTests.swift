import AgentpenCommandLine
import Testing
@testable import AgentpenPolicy

/// How /etc is planned (issue 11, etcfiles): files as copies in the root tmpfs,
/// links as links where they resolve the same inside, directories as binds,
/// nothing opened that is not a readable regular file.
@Suite struct EtcViewPlanTests {
    static let system: [String: FakeFS.Node] = [
        "/usr/bin/sh": .file("", exec: true), "/usr/lib/os-release": .file("ID=x", exec: false),
        "/usr/share/zoneinfo/Etc/UTC": .file("TZ", exec: false), "/bin": .link("usr/bin"), "/lib": .link("usr/lib"),
        "/usr/share/escape": .link("/srv/real"), "/srv/real/f": .file("", exec: false),
        "/srv/dir/x": .file("", exec: false), "/srv/file": .file("", exec: false),
    ]

    static func plan(_ etc: [String: FakeFS.Node], unreadable: Set<String> = []) -> (arguments: [BwrapArgument], notes: [String]) {
        var fs = FakeFS(system.merging(etc) { $1 })
        fs.unreadable = unreadable
        return SystemView.etcView(visibleRoots: ["/usr"], fs: fs)
    }

    @Test func aRegularFileIsACopyNotAMount() {
        let p = Self.plan(["/etc/protocols": .file("tcp 6", exec: false)])
        #expect(p.arguments == [.copy(source: "/etc/protocols", path: "/etc/protocols")])
        #expect(p.notes.isEmpty)
    }

    @Test func aDirectoryStaysABind() {
        let p = Self.plan(["/etc/ssl/certs/a": .file("", exec: false)])
        #expect(p.arguments == [.bind(source: "/etc/ssl", destination: "/etc/ssl", readOnly: true)])
    }

    @Test func aMissingEntryIsLeftOutSilently() {
        let p = Self.plan([:])
        #expect(p.arguments.isEmpty && p.notes.isEmpty)
    }

    @Test func linksThatResolveInsideStayLinks() {
        let p = Self.plan(["/etc/localtime": .link("/usr/share/zoneinfo/Etc/UTC"), "/etc/os-release": .link("../usr/lib/os-release"),
                           "/etc/issue": .link("/lib/os-release")])
        #expect(p.arguments == [.symlink(target: "/usr/share/zoneinfo/Etc/UTC", path: "/etc/localtime"),
                                .symlink(target: "../usr/lib/os-release", path: "/etc/os-release"),
                                .symlink(target: "/lib/os-release", path: "/etc/issue")])
    }

    /// A link through a bound /etc directory resolves inside as well.
    @Test func aLinkIntoABoundEtcDirectoryStaysALink() {
        let p = Self.plan(["/etc/alternatives/x": .file("", exec: false), "/etc/vimrc": .link("alternatives/x")])
        #expect(p.arguments.contains(.symlink(target: "alternatives/x", path: "/etc/vimrc")), "\(p.arguments)")
    }

    /// Leaving what is visible (directly, or through a link inside /usr, or by a
    /// ".." after a component) would show something else inside: the content is copied.
    @Test func linksThatLeaveTheVisibleDirectoriesAreCopied() {
        let p = Self.plan(["/etc/timezone": .link("/srv/file"), "/etc/magic": .link("/usr/share/escape/f"),
                           "/etc/shells": .link("/usr/lib/../lib/os-release")])
        #expect(p.arguments == [.copy(source: "/srv/real/f", path: "/etc/magic"),
                                .copy(source: "/usr/lib/os-release", path: "/etc/shells"),
                                .copy(source: "/srv/file", path: "/etc/timezone")].sorted { order($0) < order($1) })
    }

    @Test func aLinkToADirectoryOutsideIsABind() {
        let p = Self.plan(["/etc/pki": .link("/srv/dir")])
        #expect(p.arguments == [.bind(source: "/etc/pki", destination: "/etc/pki", readOnly: true)])
    }

    /// A fifo or device is never opened (a read could block); nor what a link to one leads to.
    @Test func aFifoOrDeviceIsNeverOpened() {
        let p = Self.plan(["/etc/services": .special, "/etc/protocols": .link("/srv/fifo"), "/srv/fifo": .special])
        #expect(p.arguments.isEmpty, "\(p.arguments)")
        #expect(p.notes.count == 2 && p.notes.allSatisfy { $0.contains("not in the sandbox") }, "\(p.notes)")
    }

    /// Fail closed: what agentpen cannot read is left out and said, never a half-made /etc.
    @Test func anUnreadableFileIsLeftOutAndNoted() {
        let p = Self.plan(["/etc/subuid": .file("", exec: false), "/etc/magic": .link("/srv/file"),
                           "/etc/shells": .file("", exec: false)], unreadable: ["/etc/subuid", "/srv/file"])
        #expect(p.arguments == [.copy(source: "/etc/shells", path: "/etc/shells")])
        #expect(p.notes.sorted() == ["/etc/magic: not in the sandbox (agentpen cannot read /srv/file, where its link leads)",
                                     "/etc/subuid: not in the sandbox (agentpen cannot read it)"])
    }

    @Test func aDanglingLinkIsLeftOutAndNoted() {
        let p = Self.plan(["/etc/localtime": .link("/usr/share/zoneinfo/Nowhere")])
        #expect(p.arguments.isEmpty)
        #expect(p.notes == ["/etc/localtime: not in the sandbox (a dangling or looping symlink)"])
    }

    /// The whole plan: no /etc file is a mount, the identity files are generated
    /// files, every descriptor is numbered once, and the root is made read-only last.
    @Test func thePlanMountsNoEtcFileAndSealsTheRootLast() throws {
        let nodes = debianLike.merging(["/etc/protocols": .file("", exec: false), "/etc/localtime": .link("/usr/lib/x")]) { $1 }
        let plan = try SandboxPlan.make(options: try Options.parse(["--", "/bin/sh"]), facts: facts(), project: "/home/u/src/p",
                                        preset: nil, network: .none, fs: FakeFS(nodes))
        for a in plan.bwrap {
            if case .bind(let s, let d, _) = a, d.hasPrefix("/etc/") {
                #expect(FakeFS(nodes).kind(s) == .directory, "\(d) is still a bind")
            }
            if case .data(let p, _) = a { #expect(!p.hasPrefix("/etc/"), "\(p) is still --ro-bind-data") }
        }
        #expect(plan.bwrap.contains(.copy(source: "/etc/nsswitch.conf", path: "/etc/nsswitch.conf")))
        #expect(plan.bwrap.contains(.symlink(target: "/usr/lib/x", path: "/etc/localtime")))
        #expect(plan.bwrap.contains(.file(path: "/etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")))
        #expect(!plan.bwrap.contains(.copy(source: "/etc/shadow", path: "/etc/shadow")))
        #expect(plan.bwrapArguments.last == .remountReadOnly("/"))
        #expect(Array(plan.bwrapArgs.suffix(2)) == ["--remount-ro", "/"])
        #expect(!plan.bwrap.contains(.remountReadOnly("/")), "the seal is not a stage of the plan")
        // Descriptors: the generated files, the copies and the rest, each its own number, in order.
        let fds = plan.dataFiles.map(\.fd) + plan.fileCopies.map(\.fd) + plan.pathFDs.map(\.fd) + [plan.seccompFD]
        #expect(Set(fds).count == fds.count && fds.allSatisfy { $0 >= BwrapArgument.firstDescriptor })
        #expect(plan.cgroupFD == BwrapArgument.firstDescriptor + Int32(fds.count))
        let copy = try #require(plan.fileCopies.first { $0.path == "/etc/protocols" })
        let argv = plan.bwrapArgs
        let i = try #require(argv.firstIndex(of: "/etc/protocols"))
        #expect(Array(argv[(i - 4)...i]) == ["--perms", "0644", "--file", String(copy.fd), "/etc/protocols"])
    }

    /// A CA bundle named by several variables is bound once; one beneath a
    /// directory the system view binds whole is not bound at all; --mount still binds.
    @Test func caBundlesAreBoundOnceAndNeverOverTheSystemView() throws {
        let nodes = debianLike.merging(["/srv/ca.pem": .file("", exec: false), "/usr/share/ca.pem": .file("", exec: false)]) { $1 }
        let f = facts(["SSL_CERT_FILE": "/etc/ssl/certs/x", "REQUESTS_CA_BUNDLE": "/srv/ca.pem", "NODE_EXTRA_CA_CERTS": "/srv/ca.pem"])
        let plan = try SandboxPlan.make(options: try Options.parse(["--", "/bin/sh"]), facts: f, project: "/home/u/src/p",
                                        preset: nil, network: .none, fs: FakeFS(nodes))
        func binds(_ p: String) -> Int { plan.bwrap.filter { $0 == .bind(source: p, destination: p, readOnly: true) }.count }
        #expect(binds("/srv/ca.pem") == 1)
        #expect(binds("/etc/ssl/certs/x") == 0 && binds("/etc/ssl") == 1)
        #expect(plan.env.contains(EnvironmentVariable("SSL_CERT_FILE", "/etc/ssl/certs/x")))
        #expect(plan.env.contains(EnvironmentVariable("NODE_EXTRA_CA_CERTS", "/srv/ca.pem")))
        let usr = try SandboxPlan.make(options: try Options.parse(["--mount", "/usr/share/ca.pem", "--", "/bin/sh"]),
                                       facts: facts(["SSL_CERT_FILE": "/usr/share/ca.pem"]), project: "/home/u/src/p",
                                       preset: nil, network: .none, fs: FakeFS(nodes))
        #expect(usr.bwrap.filter { $0 == .bind(source: "/usr/share/ca.pem", destination: "/usr/share/ca.pem", readOnly: true) }.count == 1,
                "an explicit --mount is kept")
    }

    /// The session's binds, added after the plan, still come before the seal.
    @Test func bindsAddedLaterPrecedeTheSeal() throws {
        var plan = try SandboxPlan.make(options: try Options.parse(["--", "/bin/sh"]), facts: facts(), project: "/home/u/src/p",
                                        preset: nil, network: .none, fs: FakeFS(debianLike))
        plan.addSessionView(hostDir: "/s/ID/view")
        #expect(Array(plan.bwrapArgs.suffix(5)) == ["--ro-bind", "/s/ID/view", SessionPolicy.insideDir, "--remount-ro", "/"])
    }
}

private func order(_ a: BwrapArgument) -> Int {
    SystemView.etcEntries.firstIndex { a.paths.last == "/etc/" + $0 } ?? Int.max
}
