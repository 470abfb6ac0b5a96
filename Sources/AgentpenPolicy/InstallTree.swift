/// Finds the agent's command on the caller's PATH and works out what must be
/// visible inside for it to run: the symlinks leading to it, its install tree,
/// and the same again for the interpreter named on its `#!` line (npm global,
/// nvm, pipx, uv tools, virtualenvs, pip --user, single-file installers).
public struct InstallTree: Sendable, Equatable {
    /// Symlinks to recreate inside (path → stored target).
    public var symlinks: [Symlink] = []
    /// Directories or files to bind read-only at the same path.
    public var readOnly: [String] = []
    /// Why a bind is smaller than the heuristic wanted (for --dry-run).
    public var notes: [String] = []

    public struct Symlink: Sendable, Equatable, Hashable {
        public var path: String
        public var target: String
    }

    public enum LookupError: Error, Equatable, CustomStringConvertible {
        case notFound(String)
        case notExecutable(String)
        /// The install tree lies inside a credential store: nothing of it can be bound.
        case insideCredentialStore(bind: String, store: String)
        public var description: String {
            switch self {
            case .notFound(let c): return "\(c): command not found"
            case .notExecutable(let c): return "\(c): not executable"
            case .insideCredentialStore(let bind, let store):
                return "refusing to bind the agent's install tree \(bind): it lies inside the credential store \(store); install the agent elsewhere or pass its directory with --mount"
            }
        }
    }

    /// Finds `command` like execvp: a name with a slash is taken as a path
    /// (relative to `cwd`), otherwise each PATH entry is tried in order.
    public static func locate(_ command: String, path: String, cwd: String,
                              fs: any FileSystemView) throws(LookupError) -> String {
        if command.contains("/") {
            let p = Paths.join(cwd, command)
            guard let real = Paths.resolve(p, in: fs), fs.kind(real) != .missing else { throw .notFound(command) }
            guard fs.kind(real) == .file, fs.isExecutable(real) else { throw .notExecutable(command) }
            return p
        }
        var sawNonExecutable = false
        for dir in path.split(separator: ":") where dir.hasPrefix("/") {
            let p = Paths.join(String(dir), command)
            guard let real = Paths.resolve(p, in: fs) else { continue }
            if fs.kind(real) == .file && fs.isExecutable(real) { return p }
            if fs.kind(real) == .file { sawNonExecutable = true }
        }
        throw sawNonExecutable ? .notExecutable(command) : .notFound(command)
    }

    /// What to mount so that `executable` runs inside. `visible` says whether a
    /// path is already visible inside (system directories); `home` is never
    /// mounted whole, nor any of its ancestors.
    /// A bind that would contain a credential store (`CredentialStores`) is
    /// narrowed to the program and the parts of its tree that hold none; one
    /// lying inside a store is refused.
    public static func plan(for executable: String, home: String, callerPath: String,
                            visible: (String) -> Bool, fs: any FileSystemView) throws(LookupError) -> InstallTree {
        var tree = InstallTree()
        try tree.add(executable, home: home, callerPath: callerPath, visible: visible, fs: fs, depth: 0)
        // A link inside a tree that is bound whole comes with it.
        tree.symlinks.removeAll { link in tree.readOnly.contains { Paths.isWithin(link.path, $0) } }
        return tree
    }

    private mutating func add(_ executable: String, home: String, callerPath: String,
                              visible: (String) -> Bool, fs: any FileSystemView, depth: Int) throws(LookupError) {
        guard depth < 4, let chain = Paths.linkChain(executable, in: fs) else { return }
        for link in chain.links where !visible(link.path) {
            let s = Symlink(path: link.path, target: link.target)
            if !symlinks.contains(s) { symlinks.append(s) }
        }
        let final = chain.final
        if !visible(final) {
            let roots = try Self.withoutCredentials(Self.installRoots(of: final, home: home, fs: fs), program: final,
                                                    home: home, fs: fs, notes: &notes)
            for root in roots where !readOnly.contains(where: { Paths.isWithin(root, $0) }) {
                readOnly.removeAll { Paths.isWithin($0, root) }
                readOnly.append(root)
            }
        }
        // The interpreter on the #! line needs the same treatment.
        if let interp = Self.interpreter(of: final, fs: fs) {
            var target = interp
            if !interp.contains("/") {
                guard let found = try? Self.locate(interp, path: callerPath, cwd: "/", fs: fs) else { return }
                target = found
            }
            try add(target, home: home, callerPath: callerPath, visible: visible, fs: fs, depth: depth + 1)
        }
    }

    /// Parts of a narrowed tree worth keeping beside the program itself.
    static let narrowedParts = ["lib", "lib64", "pyvenv.cfg"]

    /// `roots` with every bind that would expose a credential store replaced by
    /// the program file and those of `narrowedParts` that hold no store.
    static func withoutCredentials(_ roots: [String], program: String, home: String, fs: any FileSystemView,
                                   notes: inout [String]) throws(LookupError) -> [String] {
        var out: [String] = []
        let credentials = CredentialStores.Resolved(home: home, fs: fs)
        for root in roots {
            if let store = credentials.enclosing(root) {
                throw .insideCredentialStore(bind: root, store: store)
            }
            let stores = credentials.contained(in: root)
            if stores.isEmpty { out.append(root); continue }
            var kept = [program]
            for part in narrowedParts {
                let p = root + "/" + part
                guard fs.kind(p) != .missing, !Paths.isWithin(program, p),
                      credentials.contained(in: p).isEmpty,
                      credentials.enclosing(p) == nil else { continue }
                kept.append(p)
            }
            notes.append("agent install tree \(root) narrowed to \(kept.joined(separator: ", ")): it holds the credential store \(stores.joined(separator: ", "))")
            out += kept.filter { !out.contains($0) }
        }
        return out
    }

    /// `#!/usr/bin/env node` → "node"; `#!/opt/x/bin/python3 -u` → "/opt/x/bin/python3".
    static func interpreter(of file: String, fs: any FileSystemView) -> String? {
        let head = fs.head(file, bytes: 256)
        guard head.starts(with: Array("#!".utf8)) else { return nil }
        let line = String(decoding: head.dropFirst(2).prefix { $0 != 10 }, as: UTF8.self)
        var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { return nil }
        if Paths.basename(words[0]) == "env" {
            words.removeFirst()
            while let w = words.first, w.hasPrefix("-") { words.removeFirst() }   // env -S, -u …
            return words.first
        }
        return words[0]
    }

    /// The smallest directories that hold everything the program at `file` needs.
    static func installRoots(of file: String, home: String, fs: any FileSystemView) -> [String] {
        func acceptable(_ dir: String) -> Bool {
            dir != "/" && !Paths.isWithin(home, dir) && Paths.basename(dir) != "" && dir.split(separator: "/").count >= 2
        }
        // A virtualenv (pipx, uv tool, python -m venv): the directory holding pyvenv.cfg.
        var dir = Paths.parent(file)
        while dir != "/" {
            if fs.kind(dir + "/pyvenv.cfg") == .file, acceptable(dir) { return [dir] }
            dir = Paths.parent(dir)
        }
        // An npm package: the package directory under the outermost node_modules.
        let parts = file.split(separator: "/").map(String.init)
        if let nm = parts.firstIndex(of: "node_modules"), nm + 1 < parts.count - 1 {
            let take = parts[nm + 1].hasPrefix("@") && nm + 2 < parts.count - 1 ? nm + 3 : nm + 2
            return ["/" + parts[..<take].joined(separator: "/")]
        }
        // A prefix (nvm's node, a toolchain): .../PREFIX/bin/tool with PREFIX/lib beside it.
        let parent = Paths.parent(file)
        if Paths.basename(parent) == "bin" {
            let prefix = Paths.parent(parent)
            if prefix == Paths.join(home, ".local") {
                // pip --user: the scripts need ~/.local/lib, never all of ~/.local.
                let lib = prefix + "/lib"
                let isScript = interpreter(of: file, fs: fs) != nil
                return isScript && fs.kind(lib) == .directory ? [file, lib] : [file]
            }
            if acceptable(prefix), fs.kind(prefix + "/lib") == .directory { return [prefix] }
        }
        // A single binary in a directory of its own (e.g. versions/1.2.3): the file itself.
        return [file]
    }
}

extension InstallTree.Symlink: CustomStringConvertible {
    public var description: String { "\(path) -> \(target)" }
}

extension InstallTree {
    /// The agent's executable as found on the caller's PATH (relative to the
    /// project), and what must be bound for it to run.
    static func forAgent(_ command: String, callerPath: String, project: String, home: String,
                         visible: Visibility, fs: any FileSystemView) throws(PlanError) -> (executable: String, tree: InstallTree) {
        let executable: String
        do {
            executable = try locate(command, path: callerPath, cwd: project, fs: fs)
        } catch .notFound { throw PlanError(.commandNotFound, "\(command): command not found") }
        catch .notExecutable(let c) { throw PlanError(.notExecutable, LookupError.notExecutable(c).description) }
        catch { throw PlanError(.internal, error.description) }
        do { return (executable, try plan(for: executable, home: home, callerPath: callerPath, visible: visible.contains, fs: fs)) }
        catch { throw PlanError(.usage, error.description) }
    }

    /// The tree read-only at its own paths, and the links leading to the agent.
    var arguments: [BwrapArgument] {
        readOnly.map { .bind(source: $0, destination: $0, readOnly: true) } + symlinks.map { .symlink(target: $0.target, path: $0.path) }
    }

    /// What --dry-run says of it.
    var bindNotes: [String] { notes + readOnly.map { "agent install tree \($0) read-only" } }
}
