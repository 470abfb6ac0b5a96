/// The sandbox's namespaces and what of the host system it sees: system
/// directories read-only, its own /proc, /dev and tmpfs mounts, and only the
/// /etc entries programs need. Nothing here depends on the project.
struct SystemView: Equatable {
    var arguments: [BwrapArgument]
    /// Host directories bound whole: anything beneath them is visible already.
    var visibleRoots: [String]
    /// The /etc entries left out, and why (for --dry-run).
    var notes: [String] = []
    /// Real directories bound whole: `visibleRoots` and the bound /etc directories.
    var wholeDirectories: [String] = []

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
        let etc = etcView(visibleRoots: visibleRoots, fs: fs)
        let etcDirs = etc.arguments.compactMap { arg -> String? in
            if case .bind(let s, let d, _) = arg, s == d, fs.kind(s) == .directory { return s }
            return nil
        }
        return SystemView(arguments: a + etc.arguments, visibleRoots: visibleRoots, notes: etc.notes,
                          wholeDirectories: visibleRoots.filter { fs.kind($0) == .directory } + etcDirs)
    }

    /// Each listed /etc entry the host has, as the fewest mounts that show it
    /// as the host has it. bubblewrap 0.8 re-reads /proc/self/mountinfo after
    /// every bind, so each mount costs more than the last; files need none:
    /// - a regular file: a copy in the root tmpfs (`--file`), which is
    ///   read-only once every mount is made (`SandboxPlan.bwrapArguments`);
    /// - a symlink whose every hop lies in what is visible anyway (the system
    ///   directories, /etc's bound directories): the same link (`--symlink`);
    ///   one that leaves them: a copy of the regular file it ends at, or a bind
    ///   of the directory (as before);
    /// - a directory: a read-only bind, as before.
    /// Nothing else is opened: a fifo or device could block the reader, a file
    /// agentpen cannot read could not be copied, a dangling link shows nothing.
    /// Each is left out (as a missing entry is) with a note, so /etc is never
    /// half made: bubblewrap copies whole files or fails the run.
    static func etcView(visibleRoots: [String], fs: any FileSystemView) -> (arguments: [BwrapArgument], notes: [String]) {
        var a: [BwrapArgument] = [], notes: [String] = []
        // Bound /etc directories (real ones only) count as visible for the links' hops.
        let boundDirs = etcEntries.map { "/etc/" + $0 }.filter { fs.kind($0) == .directory }
        let visible = Visibility(roots: visibleRoots + boundDirs, fs: fs)
        func skip(_ p: String, _ why: String) { notes.append("\(p): not in the sandbox (\(why))") }
        func copy(_ p: String, from source: String) {
            if fs.isReadable(source) { a.append(.copy(source: source, path: p)) }
            else { skip(p, source == p ? "agentpen cannot read it" : "agentpen cannot read \(source), where its link leads") }
        }
        for name in etcEntries {
            let p = "/etc/" + name
            switch fs.kind(p) {
            case .missing: continue
            case .directory: a.append(.bind(source: p, destination: p, readOnly: true))
            case .file: copy(p, from: p)
            case .other: skip(p, "not a regular file, directory or symlink")
            case .symlink:
                guard let final = Paths.resolve(p, in: fs) else { skip(p, "a dangling or looping symlink"); continue }
                if let target = fs.readLink(p), linkResolvesInside(p, visible: visible, fs: fs) {
                    a.append(.symlink(target: target, path: p))
                    continue
                }
                switch fs.kind(final) {
                case .file: copy(p, from: final)
                case .directory: a.append(.bind(source: p, destination: p, readOnly: true))
                default: skip(p, "its link leads to \(final), not a regular file or directory")
                }
            }
        }
        return (a, notes)
    }

    /// Whether the symlink at `link` (in /etc, a real directory inside as on the
    /// host) leads inside to the same file as on the host: resolved component by
    /// component, every path met on the way (each hop, each link's target)
    /// lies beneath a directory visible whole (a system directory, a bound /etc
    /// directory, or a merged-/usr link to one), and the chain ends at
    /// something that exists. A ".." is followed only where it leads a target
    /// (from a directory already resolved, so as the kernel would); one after
    /// another component could mean something else through a link, and such a
    /// target is not trusted to.
    static func linkResolvesInside(_ link: String, visible: Visibility, fs: any FileSystemView) -> Bool {
        func parts(_ target: String) -> [Substring]? {
            let p = target.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
            return p.drop(while: { $0 == ".." }).contains("..") ? nil : p
        }
        guard let first = fs.readLink(link), var pending = parts(first) else { return false }
        var done = first.hasPrefix("/") ? "/" : Paths.parent(link)
        var hops = 0
        while !pending.isEmpty {
            let part = pending.removeFirst()
            if part == ".." { done = Paths.parent(done); continue }
            let candidate = Paths.join(done, String(part))
            guard candidate == "/etc" || visible.contains(candidate) else { return false }
            switch fs.kind(candidate) {
            case .missing: return false
            case .symlink:
                hops += 1
                guard hops < 40, let target = fs.readLink(candidate), let more = parts(target) else { return false }
                if target.hasPrefix("/") { done = "/" }
                pending = more + pending
            default: done = candidate
            }
        }
        return true
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
        // Files in the root tmpfs (no mount each), read-only with it.
        return [.file(path: "/etc/passwd", content: passwd), .file(path: "/etc/group", content: group),
                .file(path: "/etc/hostname", content: "agentpen\n"), .file(path: "/etc/hosts", content: hosts),
                .file(path: "/etc/resolv.conf", content: resolv)]
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
