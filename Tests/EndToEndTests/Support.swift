import Foundation
import Testing

/// Runs the real agentpen binary. The tests run as whoever starts them (CI runs
/// them once as an unprivileged user and once as root) and never skip a layer
/// under CI=true.
enum Agentpen {
    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["AGENTPEN_BIN"] { return b }
        // The test bundle sits beside the built binary in .build/debug.
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return dir.appendingPathComponent("agentpen").path
    }

    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs agentpen with `args`, HOME set to `home`, cwd `cwd`; bounded by `timeout`.
    static func run(_ args: [String], home: String, cwd: String, extraEnv: [String: String] = [:],
                    path: String? = nil, timeout: Double = 60) throws -> Result {
        try runProgram(binary, args, env: environment(home: home, extra: extraEnv, path: path), cwd: cwd, timeout: timeout)
    }

    /// `tmp` is agentpen's TMPDIR: a fixture's own (`Fixture.environment`), else the
    /// suite's, never /tmp by default, so what one test's agentpen writes there
    /// (`--check`'s scratch directory) cannot look like another test's leftover.
    static func environment(home: String, extra: [String: String] = [:], path: String? = nil,
                            tmp: String? = nil) -> [String: String] {
        let me = ProcessInfo.processInfo.environment
        var env: [String: String] = [
            "HOME": home,
            "TMPDIR": tmp ?? me["TMPDIR"] ?? NSTemporaryDirectory(),
            "PATH": path ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "USER": me["USER"] ?? "test",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "SHELL": "/bin/sh",
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }
}

func runProgram(_ program: String, _ args: [String], env: [String: String], cwd: String,
                stdin: String? = nil, timeout: Double = 60) throws -> Agentpen.Result {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = args
    p.environment = env
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
    try? inp.fileHandleForWriting.close()
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        p.terminate()
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        throw TestFailure("timed out after \(timeout)s: \(program) \(args)")
    }
    p.waitUntilExit()
    let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    return .init(status: status, stdout: String(decoding: outData, as: UTF8.self),
                 stderr: String(decoding: errData, as: UTF8.self))
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A fake user's world: a home full of secrets, a project that is a git repo,
/// and a sibling repository. Removed when the test ends.
final class Fixture {
    let root: String
    var home: String { root + "/home/user" }
    var project: String { home + "/src/project" }
    var sibling: String { home + "/src/sibling" }
    /// This test's own TMPDIR, given to every agentpen it runs.
    var tmp: String { root + "/tmp" }

    static let secrets: [String: String] = [
        ".ssh/id_ed25519": "SECRET-SSH-KEY",
        ".aws/credentials": "SECRET-AWS",
        ".gnupg/private-keys-v1.d/key": "SECRET-GPG",
        ".config/gh/hosts.yml": "SECRET-GH",
        ".netrc": "SECRET-NETRC",
        ".git-credentials": "SECRET-GITCRED",
        ".docker/config.json": "SECRET-DOCKER",
        ".kube/config": "SECRET-KUBE",
        ".npmrc": "SECRET-NPM",
        ".pypirc": "SECRET-PYPI",
        ".bash_history": "SECRET-HISTORY",
        ".zsh_history": "SECRET-HISTORY",
        ".bashrc": "# original bashrc\n",
    ]

    /// `base`: the directory the fixture is made in (default AGENTPEN_TEST_DIR, else TMPDIR).
    init(gitInit: Bool = true, base: String? = nil) throws {
        let base = base ?? ProcessInfo.processInfo.environment["AGENTPEN_TEST_DIR"] ?? NSTemporaryDirectory()
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        var template = Array((base + "/e2e.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        root = String(cString: made)
        chmod(root, 0o755)
        for (path, content) in Self.secrets { try write(home + "/" + path, content) }
        try write(sibling + "/README", "SECRET-SIBLING")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: project, withIntermediateDirectories: true)
        if gitInit {
            try git(["init", "-q"])
            try git(["-c", "user.email=t@e.st", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init"])
        }
    }

    deinit {
        // Make everything removable (tests may leave read-only directories behind).
        _ = try? runProgram("/bin/chmod", ["-R", "u+rwX", root], env: [:], cwd: "/")
        try? FileManager.default.removeItem(atPath: root)
    }

    func write(_ path: String, _ content: String, mode: Int = 0o644) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try content.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, mode_t(mode))
    }

    /// The environment agentpen runs with in this fixture (its home, its TMPDIR).
    func environment(extra: [String: String] = [:], path: String? = nil) -> [String: String] {
        Agentpen.environment(home: home, extra: extra, path: path, tmp: tmp)
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    @discardableResult
    func git(_ args: [String], in dir: String? = nil) throws -> Agentpen.Result {
        let r = try runProgram("/usr/bin/git", args, env: Agentpen.environment(home: home), cwd: dir ?? project)
        if r.status != 0 { throw TestFailure("git \(args) failed: \(r.stderr)") }
        return r
    }

    /// agentpen in the project, with this fixture's home.
    func agentpen(_ args: [String], env: [String: String] = [:], path: String? = nil,
                  cwd: String? = nil, timeout: Double = 60) throws -> Agentpen.Result {
        try runProgram(Agentpen.binary, args, env: environment(extra: env, path: path), cwd: cwd ?? project, timeout: timeout)
    }

    /// Shell snippet run confined.
    func sh(_ script: String, _ extra: [String] = [], env: [String: String] = [:]) throws -> Agentpen.Result {
        try agentpen(extra + ["--", "/bin/sh", "-c", script], env: env)
    }
}

/// What a run of agentpen left behind, looked for only where it could write. Every
/// agentpen a test runs gets the fixture's own TMPDIR, so all of agentpen's own
/// temporary files go there and every new name in it counts. The host programs
/// (bubblewrap, pasta) run in a fixed environment without TMPDIR, so in /tmp only
/// names they could create count (owned by this user). An unrelated process's
/// file in /tmp (another test or checkout, e.g. an `agentpen-check.*` of a run
/// without a TMPDIR, or the machine's /tmp/sap) cannot fail the check;
/// LeftoverCheckTests shows that a real leftover does.
struct Leftovers {
    static let hostPrefixes = ["bwrap", ".bubblewrap", "pasta", "passt"]
    let tmpdir: String
    let tmpRoot: String
    private let before: Set<String>

    init(tmpdir: String, tmpRoot: String = "/tmp") {
        self.tmpdir = tmpdir
        self.tmpRoot = tmpRoot
        before = Self.scan(tmpdir, tmpRoot)
    }

    init(_ f: Fixture) { self.init(tmpdir: f.tmp) }

    static func couldBeHostPrograms(_ name: String) -> Bool { hostPrefixes.contains { name.hasPrefix($0) } }

    private static func scan(_ tmpdir: String, _ tmpRoot: String) -> Set<String> {
        let mine = ((try? FileManager.default.contentsOfDirectory(atPath: tmpdir)) ?? []).map { tmpdir + "/" + $0 }
        let shared = ((try? FileManager.default.contentsOfDirectory(atPath: tmpRoot)) ?? []).filter { name in
            var st = stat()
            return couldBeHostPrograms(name) && lstat(tmpRoot + "/" + name, &st) == 0 && st.st_uid == getuid()
        }.map { tmpRoot + "/" + $0 }
        return Set(mine + shared)
    }

    /// Paths that appeared since this check was made.
    func fresh() -> [String] { Self.scan(tmpdir, tmpRoot).subtracting(before).sorted() }
}

/// Processes whose command line is exactly `argv`, system-wide.
func processes(running argv: [String]) -> [Int32] {
    let wanted = argv.joined(separator: "\0") + "\0"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data, as: UTF8.self) == wanted
    }
}

/// Polls `condition` every 20 ms until true or `timeout` seconds pass (on the
/// monotonic clock: a wall-clock step cannot cut a wait short).
func waitUntil(_ timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = DispatchTime.now() + timeout
    while DispatchTime.now() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34), which Swift's Glibc
/// module does not export; nil where the C library has none.
private let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(sym, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()

/// Starts `argv` in its own process group with stdin from /dev/null and stdout and
/// stderr to files (stderr to `stderr`, or to `stdout` when nil), and no other
/// descriptor of the test process: a daemon it leaves (a tmux server) must not
/// hold another test's pipes or Foundation's exit-watch sockets open. Every
/// signal default and none blocked, as from a shell: the test runner's threads
/// block most signals, and a tmux pane that inherited a blocked SIGHUP outlived
/// `kill-server` (its server waiting on it), one leaked server per test.
func spawn(_ argv: [String], env: [String: String]? = nil, cwd: String? = nil, stdout: String,
           stderr: String? = nil) throws -> pid_t {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    posix_spawnattr_setpgroup(&attr, 0)
    var none = sigset_t(), all = sigset_t()
    sigemptyset(&none)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &none)
    posix_spawnattr_setsigdefault(&attr, &all)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if let stderr {
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    } else {
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }
    _ = addCloseFrom?(&actions, 3)
    let environment = env ?? ProcessInfo.processInfo.environment
    // The working directory through env(1), which then execs the program (same PID).
    let argv = cwd.map { ["/usr/bin/env", "-C", $0, "--"] + argv } ?? argv
    let argvC: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    let envC: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argvC + envC).forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attr, argvC, envC)
    if rc != 0 { throw TestFailure("posix_spawn \(argv[0]): \(rc)") }
    return pid
}
