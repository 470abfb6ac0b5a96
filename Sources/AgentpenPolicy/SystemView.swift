/// The sandbox's namespaces and what of the host system it sees: system
/// directories read-only, its own /proc, /dev and tmpfs mounts, and only the
/// /etc entries programs need. Nothing here depends on the project.
struct SystemView: Equatable {
    var arguments: [BwrapArgument]
    /// Host directories bound whole: anything beneath them is visible already.
    var visibleRoots: [String]

    /// Top-level entries of a merged-/usr or classic layout bound read-only.
    static let systemDirs = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt"]
    /// /etc entries programs need; everything else in /etc stays invisible.
    static let etcEntries = [
        "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "host.conf", "gai.conf",
        "ssl", "ca-certificates", "ca-certificates.conf", "pki", "crypto-policies", "alternatives",
        "localtime", "timezone", "locale.alias", "locale.conf", "default", "mime.types", "magic",
        "protocols", "services", "shells", "profile", "profile.d", "bash.bashrc", "bashrc",
        "inputrc", "terminfo", "environment", "gitconfig", "os-release", "lsb-release",
        "debian_version", "fedora-release", "redhat-release", "issue", "login.defs", "xdg", "fonts",
        "vim", "vimrc", "nanorc", "pip.conf", "npmrc", "java-17-openjdk", "perl", "python3",
        "selinux", "subuid", "subgid", "machine-id", "static", "zshrc", "zshenv", "zsh",
        "manpath.config", "mailcap", "security",
    ]
    static let nixRoots = ["/nix", "/run/current-system", "/run/booted-system"]

    static func plan(facts: HostFacts, network: NetworkMode, tmpfs sizes: TmpfsBudget.Sizes,
                     fs: any FileSystemView) -> SystemView {
        var a = namespaces(facts: facts, network: network)
        // System directories, read-only; symlinks (merged /usr) recreated as symlinks.
        var visibleRoots: [String] = []
        for name in systemDirs {
            let p = "/" + name
            switch fs.kind(p) {
            case .directory: a.append(.bind(source: p, destination: p, readOnly: true)); visibleRoots.append(p)
            case .symlink: if let t = fs.readLink(p) { a.append(.symlink(target: t, path: p)) }
            default: break
            }
        }
        if facts.isNixOS { visibleRoots += nixRoots.filter { fs.kind($0) != .missing } }
        a += kernelFileSystems(tmpfs: sizes)
        if fs.kind("/sys") == .directory { a.append(.bind(source: "/sys", destination: "/sys", readOnly: true)) }
        if facts.isNixOS {
            if fs.kind("/nix") == .directory { a.append(.bind(source: "/nix", destination: "/nix", readOnly: true)) }
            for p in nixRoots.dropFirst() {
                if let t = fs.readLink(p) { a.append(.symlink(target: t, path: p)) }
            }
        }
        // /etc: only what programs need (the identity and name files come from IdentityFiles).
        a.append(.dir("/etc", mode: 0o755))
        for name in etcEntries {
            let p = "/etc/" + name
            if fs.kind(p) != .missing { a.append(.bind(source: p, destination: p, readOnly: true)) }
        }
        return SystemView(arguments: a, visibleRoots: visibleRoots)
    }

    /// The real uid/gid, no capabilities, no nested user namespaces.
    static func namespaces(facts: HostFacts, network: NetworkMode) -> [BwrapArgument] {
        var a: [BwrapArgument] = [.unshareUser, .uid(facts.uid), .gid(facts.gid)]
        if facts.canDisableUserns { a.append(.disableUserns) }
        a += [.unsharePID, .unshareIPC, .unshareUTS, .unshareCgroupTry]
        if network == .none { a.append(.unshareNet) }
        return a + [.dieWithParent, .capDropAll, .hostname("agentpen")]
    }

    /// Every tmpfs bounded (TmpfsBudget). bwrap's --size applies only to
    /// --tmpfs, so /dev (bwrap's own tmpfs) is made read-only once /dev/shm is
    /// mounted on it; the device nodes and /dev/pts are mounts of their own and
    /// stay usable.
    static func kernelFileSystems(tmpfs sizes: TmpfsBudget.Sizes) -> [BwrapArgument] {
        [.proc("/proc"), .dev("/dev"), .tmpfs("/dev/shm", size: sizes.devShm, mode: nil), .remountReadOnly("/dev"),
         .tmpfs("/tmp", size: sizes.tmp, mode: nil), .tmpfs("/var/tmp", size: sizes.varTmp, mode: nil),
         .tmpfs("/run", size: sizes.run, mode: nil)]
    }
}

/// The generated /etc files: who the user is, and how names resolve.
enum IdentityFiles {
    static func arguments(facts: HostFacts, home: String, shell: String, network: NetworkMode) -> [BwrapArgument] {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n"
            + (facts.uid == 0 ? "" : "\(facts.user):x:\(facts.uid):\(facts.gid)::\(home):\(shell)\n")
            + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        let group = "root:x:0:\n" + (facts.gid == 0 ? "" : "\(facts.user):x:\(facts.gid):\n") + "nogroup:x:65534:\n"
        let hosts: String, resolv: String
        switch network {
        case .none:
            hosts = "127.0.0.1 localhost agentpen\n::1 localhost\n"
            resolv = "# agentpen: no network in this sandbox\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
        case .proxied(let h, let r):
            hosts = h; resolv = r
        }
        return [.data(path: "/etc/passwd", content: passwd), .data(path: "/etc/group", content: group),
                .data(path: "/etc/hostname", content: "agentpen\n"), .data(path: "/etc/hosts", content: hosts),
                .data(path: "/etc/resolv.conf", content: resolv)]
    }
}

/// Whether a path is visible inside already (beneath a system directory, an
/// extra mount or the project), so that nothing needs binding for it.
struct Visibility {
    var roots: [String]
    /// Merged-/usr links such as /bin → usr/bin: what lies beneath is visible through them.
    var linkedSystemDirs: [String]

    init(roots: [String], fs: any FileSystemView) {
        self.roots = roots
        linkedSystemDirs = SystemView.systemDirs.map { "/" + $0 }.filter { fs.kind($0) == .symlink }
    }

    func contains(_ path: String) -> Bool {
        roots.contains { Paths.isWithin(path, $0) } || linkedSystemDirs.contains { Paths.isWithin(path, $0) }
    }
}
