/// One bubblewrap argument (an option with its values), as the plan decides it.
/// The plan is an ordered list of these (bubblewrap applies mounts in order);
/// `BwrapArgument.render` turns the list into argv, here and nowhere else.
///
/// Arguments that read a descriptor (`data`, `file`, `copy`, `bindOpened`, `seccomp`) carry no
/// number: the n-th of them in the list reads descriptor `firstDescriptor + n`,
/// so the argv, the runner's descriptors (`SandboxPlan.dataFiles`, `pathFDs`,
/// `seccompFD`) and the mounts cannot disagree.
public enum BwrapArgument: Sendable, Equatable {
    // Namespaces and identity.
    case unshareUser
    case uid(UInt32)
    case gid(UInt32)
    /// No nested user namespaces (bwrap --disable-userns).
    case disableUserns
    case unsharePID
    case unshareIPC
    case unshareUTS
    case unshareCgroupTry
    /// An empty network namespace of bubblewrap's own.
    case unshareNet
    case dieWithParent
    case capDropAll
    case hostname(String)

    // Mounts, applied in order.
    /// Host path `source` at `destination`.
    case bind(source: String, destination: String, readOnly: Bool)
    /// `path`, opened by the runner without following any symlink, bound onto
    /// itself from that descriptor (`--bind-fd`/`--ro-bind-fd`).
    case bindOpened(String, readOnly: Bool)
    /// A file agentpen generates, read-only at `path` (`--ro-bind-data`: a mount).
    case data(path: String, content: String)
    /// A file agentpen generates, written into the sandbox's root tmpfs at `path`
    /// (`--file`: no mount). Only where the root is beneath: the root is made
    /// read-only after every mount (`SandboxPlan.bwrapArguments`).
    case file(path: String, content: String)
    /// The content of the host's regular file `source`, copied into the root
    /// tmpfs at `path` (`--file`: no mount); the runner opens `source` and
    /// bubblewrap reads it. Read-only as `file` is.
    case copy(source: String, path: String)
    case symlink(target: String, path: String)
    /// A directory; `mode` nil leaves bubblewrap's default.
    case dir(String, mode: UInt16?)
    /// A tmpfs, bounded to `size` bytes when given.
    case tmpfs(String, size: UInt64?, mode: UInt16?)
    case remountReadOnly(String)
    case proc(String)
    case dev(String)

    // The process.
    case chdir(String)
    /// The seccomp program, read from a descriptor.
    case seccomp

    /// The descriptor the first argument that reads one is given; 0-9 stay free
    /// for the runner (3 is bubblewrap's status stream).
    public static let firstDescriptor: Int32 = 10

    /// Whether this argument reads a descriptor the runner passes.
    public var readsDescriptor: Bool {
        switch self {
        case .data, .file, .copy, .bindOpened, .seccomp: true
        default: false
        }
    }

    /// Every path this argument names (sources, destinations, link targets).
    public var paths: [String] {
        switch self {
        case .bind(let source, let destination, _): [source, destination]
        case .bindOpened(let p, _), .data(let p, _), .file(let p, _), .dir(let p, _), .tmpfs(let p, _, _), .remountReadOnly(let p),
             .proc(let p), .dev(let p), .chdir(let p): [p]
        case .symlink(let target, let path): [target, path]
        case .copy(let source, let path): [source, path]
        default: []
        }
    }

    /// bubblewrap's argv for `arguments`, in order.
    public static func render(_ arguments: [BwrapArgument]) -> [String] {
        options(arguments).flatMap { $0 }
    }

    /// The same argv as a list of bubblewrap options, each with its values
    /// (`["--size", "N"]`, `["--tmpfs", "/tmp"]`): the one place arguments
    /// become strings. --dry-run prints one option a line.
    public static func options(_ arguments: [BwrapArgument]) -> [[String]] {
        var out: [[String]] = []
        var next = firstDescriptor
        for a in arguments {
            let fd = a.readsDescriptor ? String(next) : ""
            if a.readsDescriptor { next += 1 }
            out += a.options(descriptor: fd)
        }
        return out
    }

    /// The descriptor each argument reads, nil for those that read none.
    public static func descriptors(_ arguments: [BwrapArgument]) -> [Int32?] {
        var next = firstDescriptor
        return arguments.map { a in
            guard a.readsDescriptor else { return nil }
            defer { next += 1 }
            return next
        }
    }

    private static func octal(_ mode: UInt16) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    private func options(descriptor fd: String) -> [[String]] {
        switch self {
        case .unshareUser: [["--unshare-user"]]
        case .uid(let n): [["--uid", String(n)]]
        case .gid(let n): [["--gid", String(n)]]
        case .disableUserns: [["--disable-userns"]]
        case .unsharePID: [["--unshare-pid"]]
        case .unshareIPC: [["--unshare-ipc"]]
        case .unshareUTS: [["--unshare-uts"]]
        case .unshareCgroupTry: [["--unshare-cgroup-try"]]
        case .unshareNet: [["--unshare-net"]]
        case .dieWithParent: [["--die-with-parent"]]
        case .capDropAll: [["--cap-drop", "ALL"]]
        case .hostname(let h): [["--hostname", h]]
        case .bind(let source, let destination, let readOnly): [[readOnly ? "--ro-bind" : "--bind", source, destination]]
        case .bindOpened(let p, let readOnly): [[readOnly ? "--ro-bind-fd" : "--bind-fd", fd, p]]
        case .data(let p, _): [["--ro-bind-data", fd, p]]
        // bubblewrap's --file would make 0666; these are read like the host's /etc files.
        case .file(let p, _), .copy(_, let p): [["--perms", "0644"], ["--file", fd, p]]
        case .symlink(let target, let path): [["--symlink", target, path]]
        case .dir(let p, let mode): (mode.map { [["--perms", Self.octal($0)]] } ?? []) + [["--dir", p]]
        case .tmpfs(let p, let size, let mode):
            (mode.map { [["--perms", Self.octal($0)]] } ?? []) + (size.map { [["--size", String($0)]] } ?? []) + [["--tmpfs", p]]
        case .remountReadOnly(let p): [["--remount-ro", p]]
        case .proc(let p): [["--proc", p]]
        case .dev(let p): [["--dev", p]]
        case .chdir(let p): [["--chdir", p]]
        case .seccomp: [["--seccomp", fd]]
        }
    }
}

extension SandboxPlan {
    /// What bubblewrap is given, in order: the plan's arguments, then the root
    /// tmpfs made read-only (`--remount-ro /`, not recursive: the tmpfs and
    /// binds on it keep their own flags). Last, so that every mount point, file
    /// and link the plan makes on the root, the session view and decoys added
    /// later too, is made before; and outside `bwrap`, so that no stage reading
    /// the plan (the decoys' planner) takes it for a mount over everything.
    /// With it the root's files (/etc's copies, the identity files), which
    /// bubblewrap creates owned by the sandbox's user, cannot be written,
    /// chmod-ed, renamed or removed, nor anything created beside them; Landlock
    /// refuses all of that but chmod as well.
    public var bwrapArguments: [BwrapArgument] { bwrap + [.remountReadOnly("/")] }

    /// bubblewrap's argv (after `bwrap --json-status-fd 3`, before `--`).
    public var bwrapArgs: [String] { BwrapArgument.render(bwrapArguments) }

    /// The descriptor bubblewrap reports on (`--json-status-fd`): whether the command started.
    public static let bwrapStatusFD: Int32 = 3

    /// bubblewrap's whole command line: `program`, its status stream, the
    /// plan's arguments, then the inner command.
    public func bwrapCommand(_ program: String) -> [String] {
        [program, "--json-status-fd", String(Self.bwrapStatusFD)] + bwrapArgs + ["--"] + innerCommand
    }

    /// The generated files, with the descriptor each is read from.
    public var dataFiles: [DataFile] {
        zip(bwrap, BwrapArgument.descriptors(bwrap)).compactMap { a, fd in
            switch a {
            case .data(let path, let content), .file(let path, let content):
                fd.map { DataFile(fd: $0, path: path, content: content) }
            default: nil
            }
        }
    }

    /// The host files copied into the sandbox (`BwrapArgument.copy`), with the
    /// descriptor the runner opens each at.
    public var fileCopies: [FileCopy] {
        zip(bwrap, BwrapArgument.descriptors(bwrap)).compactMap { a, fd in
            if case .copy(let source, let path) = a, let fd { return FileCopy(fd: fd, source: source, path: path) }
            return nil
        }
    }

    /// Paths the runner opens (O_PATH, no symlink in any component) and hands to
    /// bubblewrap as descriptors for `--bind-fd`/`--ro-bind-fd`: what is bound is
    /// what the plan checked, even if the project changes before the mount.
    public var pathFDs: [PathFD] {
        zip(bwrap, BwrapArgument.descriptors(bwrap)).compactMap { a, fd in
            if case .bindOpened(let path, _) = a, let fd { return PathFD(fd: fd, path: path) }
            return nil
        }
    }

    /// Descriptor number bubblewrap reads the seccomp program from.
    public var seccompFD: Int32 {
        zip(bwrap, BwrapArgument.descriptors(bwrap)).first { $0.0 == .seccomp }?.1 ?? 0
    }

    /// Descriptor number of the run cgroup's cgroup.procs for the exec helper:
    /// the one after every descriptor bubblewrap reads.
    public var cgroupFD: Int32 {
        BwrapArgument.firstDescriptor + Int32(bwrap.filter(\.readsDescriptor).count)
    }

    /// Descriptor number of the exec helper's socket back to agentpen, for the
    /// refused-syscall listener: the one after the cgroup's (always this number,
    /// whether or not a cgroup is used).
    public var syscallNotifyFD: Int32 { cgroupFD + 1 }

    /// The host paths the sandbox can write: the source of every read-write bind
    /// (the project, --mount-rw, a preset's read-write dirs, worktree git dirs …).
    public var hostWritable: [String] {
        var out: [String] = []
        for a in bwrap {
            switch a {
            case .bind(let source, _, readOnly: false), .bindOpened(let source, readOnly: false):
                if !out.contains(source) { out.append(source) }
            default: continue
            }
        }
        return out
    }
}
