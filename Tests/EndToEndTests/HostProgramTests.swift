import Foundation
import Testing

// Issue 7: the host side runs bubblewrap, pasta and nft by absolute path from the
// system directories (or an absolute AGENTPEN_* path outside anything the sandbox
// can write), never from the caller's PATH; the --log file cannot be turned
// against the user; --dry-run does not print secrets.

/// Stand-ins for the host programs in `dir` (a project directory put on PATH): each
/// records that it ran in `markers` (outside the sandbox's reach) and then hands over
/// to the real program, so a run that picks one still works and only the marker tells.
func plantHostPrograms(_ f: Fixture, in dir: String, markers: String) throws {
    try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
    for (name, real) in [("bwrap", "/usr/bin/bwrap"), ("pasta", "/usr/bin/pasta"), ("nft", "/usr/sbin/nft")] {
        try f.write(dir + "/" + name, "#!/bin/sh\necho \"$0 $*\" >> \(markers)/\(name)\nexec \(real) \"$@\"\n", mode: 0o755)
    }
}

/// The names of the stand-ins that ran.
func plantedThatRan(_ markers: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: markers)) ?? []).sorted()
}

@Suite struct HostProgramTests {
    /// A project's `.venv/bin` first on PATH, holding bwrap, pasta and nft: an
    /// offline run uses the system's bubblewrap and still works.
    @Test func plantedProgramsOnPathDoNotRunOffline() throws {
        let f = try Fixture()
        let bin = f.project + "/.venv/bin", markers = f.root + "/markers"
        try plantHostPrograms(f, in: bin, markers: markers)
        let r = try f.agentpen(["--", "/bin/echo", "RAN"], path: "\(bin):/usr/bin:/bin:/usr/sbin:/sbin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("RAN"), "\(r.stdout) \(r.stderr)")
        #expect(plantedThatRan(markers).isEmpty, "a program planted on PATH ran outside the sandbox: \(plantedThatRan(markers))")
    }

    /// `--dry-run` and `--check` say which binary each host program is, and name
    /// the system ones, not the stand-ins on PATH (and run none of them).
    @Test func checkAndDryRunNameTheSystemBinaries() throws {
        let f = try Fixture()
        let bin = f.project + "/.venv/bin", markers = f.root + "/markers"
        try plantHostPrograms(f, in: bin, markers: markers)
        let path = "\(bin):/usr/bin:/bin:/usr/sbin:/sbin"
        let dry = try f.agentpen(["--dry-run", "--allow", "example.com", "--", "/bin/true"], path: path)
        #expect(dry.status == 0, "\(dry.stderr)")
        for want in ["bwrap: /usr/bin/bwrap (system directory)", "pasta: /usr/bin/pasta (system directory)",
                     "nft: /usr/sbin/nft (system directory)"] {
            #expect(dry.stdout.contains(want), "--dry-run lacks \(want.debugDescription):\n\(dry.stdout)")
        }
        #expect(!dry.stdout.contains(bin + "/"), "--dry-run names a stand-in:\n\(dry.stdout)")
        #expect(dry.stdout.contains("environment of the namespace helper, pasta and nft: PATH=/usr/sbin:"), "\(dry.stdout)")
        let check = try f.agentpen(["--check"], path: path, timeout: 120)
        #expect(check.status == 0, "\(check.stdout)\n\(check.stderr)")
        for want in ["/usr/bin/bwrap", "/usr/bin/pasta", "/usr/sbin/nft"] {
            #expect(check.stdout.contains(want), "--check does not name \(want):\n\(check.stdout)")
        }
        #expect(!check.stdout.contains(bin + "/"), "--check names a stand-in:\n\(check.stdout)")
        #expect(plantedThatRan(markers).isEmpty, "a program planted on PATH ran: \(plantedThatRan(markers))")
    }

    /// AGENTPEN_BWRAP that the sandbox could have written (inside the project, the
    /// home or a --mount-rw directory, directly or through a symlink), or a relative
    /// one: refused with exit 2 naming the variable and the path, nothing run.
    @Test(arguments: ["project", "home", "relative", "symlink-into-project", "mount-rw"])
    func bwrapOverrideTheSandboxCouldWriteIsRefused(_ where_: String) throws {
        let f = try Fixture()
        let markers = f.root + "/markers"
        try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
        let script = "#!/bin/sh\necho ran >> \(markers)/bwrap\nexec /usr/bin/bwrap \"$@\"\n"
        var extra: [String] = []
        let value: String
        switch where_ {
        case "project":
            value = f.project + "/tools/bwrap"
            try f.write(value, script, mode: 0o755)
        case "home":
            value = f.home + "/bin/bwrap"
            try f.write(value, script, mode: 0o755)
        case "relative":
            try f.write(f.project + "/tools/bwrap", script, mode: 0o755)
            value = "tools/bwrap"
        case "symlink-into-project":
            try f.write(f.project + "/tools/bwrap", script, mode: 0o755)
            value = f.root + "/bwrap-link"
            try FileManager.default.createSymbolicLink(atPath: value, withDestinationPath: f.project + "/tools/bwrap")
        default:
            let shared = f.root + "/shared"
            value = shared + "/bwrap"
            try f.write(value, script, mode: 0o755)
            extra = ["--mount-rw", shared]
        }
        let r = try f.agentpen(extra + ["--", "/bin/echo", "RAN"], env: ["AGENTPEN_BWRAP": value])
        #expect(r.status == 2, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains("AGENTPEN_BWRAP") && r.stderr.contains(value), "the message names neither: \(r.stderr)")
        #expect(!r.stdout.contains("RAN"))
        #expect(plantedThatRan(markers).isEmpty, "the refused override ran")
    }

    /// --check refuses a bad override too, before trying anything.
    @Test func checkRefusesARelativeOverride() throws {
        let f = try Fixture()
        let r = try f.agentpen(["--check"], env: ["AGENTPEN_NFT": "nft"])
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("AGENTPEN_NFT=nft"), "\(r.stderr)")
    }

    /// AGENTPEN_BWRAP at the real binary works, and an override outside everything the
    /// sandbox can write is the binary that runs; --dry-run says where it came from.
    @Test func bwrapOverrideOutsideTheSandboxIsUsed() throws {
        let f = try Fixture()
        let real = try f.agentpen(["--", "/bin/echo", "RAN"], env: ["AGENTPEN_BWRAP": "/usr/bin/bwrap"])
        #expect(real.status == 0 && real.stdout.contains("RAN"), "\(real.status) \(real.stderr)")
        let markers = f.root + "/markers"
        try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
        let wrapper = f.root + "/tools/bwrap"
        try f.write(wrapper, "#!/bin/sh\necho ran >> \(markers)/bwrap\nexec /usr/bin/bwrap \"$@\"\n", mode: 0o755)
        let r = try f.agentpen(["--", "/bin/echo", "RAN"], env: ["AGENTPEN_BWRAP": wrapper])
        #expect(r.status == 0 && r.stdout.contains("RAN"), "\(r.status) \(r.stderr)")
        #expect(plantedThatRan(markers) == ["bwrap"], "the override was not used")
        let dry = try f.agentpen(["--dry-run", "--", "/bin/true"], env: ["AGENTPEN_BWRAP": wrapper])
        #expect(dry.stdout.contains("bwrap: \(wrapper) (from AGENTPEN_BWRAP)"), "\(dry.stdout)")
    }
}

@Suite struct LogFileTests {
    /// A symlink as the log (planted, say, by an earlier run): refused, its target
    /// untouched, nothing run.
    @Test func symlinkedLogIsRefused() throws {
        let f = try Fixture()
        let log = f.root + "/events.jsonl"
        try FileManager.default.createSymbolicLink(atPath: log, withDestinationPath: f.home + "/.bashrc")
        let r = try f.agentpen(["--log", log, "--", "/bin/echo", "RAN"])
        #expect(r.status == 2, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains(log), "\(r.stderr)")
        #expect(!r.stdout.contains("RAN"))
        #expect(f.read(f.home + "/.bashrc") == "# original bashrc\n", "the symlink's target was written")
    }

    /// Inside anything the sandbox can write: the project, a --mount-rw directory, or
    /// a path whose directory is a symlink into the project.
    @Test(arguments: ["project", "mount-rw", "parent-symlink"])
    func logWhereTheSandboxCanWriteIsRefused(_ where_: String) throws {
        let f = try Fixture()
        var extra: [String] = []
        let log: String
        switch where_ {
        case "project":
            log = f.project + "/events.jsonl"
        case "mount-rw":
            try FileManager.default.createDirectory(atPath: f.root + "/shared", withIntermediateDirectories: true)
            extra = ["--mount-rw", f.root + "/shared"]
            log = f.root + "/shared/events.jsonl"
        default:
            try FileManager.default.createDirectory(atPath: f.project + "/logs", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: f.root + "/logs", withDestinationPath: f.project + "/logs")
            log = f.root + "/logs/events.jsonl"
        }
        let r = try f.agentpen(["--log", log] + extra + ["--", "/bin/echo", "RAN"])
        #expect(r.status == 2, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains(log), "the message does not name the path: \(r.stderr)")
        #expect(!r.stdout.contains("RAN"))
        #expect(!FileManager.default.fileExists(atPath: f.project + "/events.jsonl")
                && !FileManager.default.fileExists(atPath: f.project + "/logs/events.jsonl")
                && !FileManager.default.fileExists(atPath: f.root + "/shared/events.jsonl"), "the log was created")
    }

    /// Not a regular file: a FIFO (with no reader: opening it must not hang) and a directory.
    @Test(arguments: ["fifo", "directory"])
    func logThatIsNotARegularFileIsRefused(_ kind: String) throws {
        let f = try Fixture()
        let log = f.root + "/log-" + kind
        if kind == "fifo" { #expect(mkfifo(log, 0o600) == 0) }
        else { try FileManager.default.createDirectory(atPath: log, withIntermediateDirectories: true) }
        let r = try f.agentpen(["--log", log, "--", "/bin/echo", "RAN"], timeout: 20)
        #expect(r.status == 2, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains(log), "\(r.stderr)")
        #expect(!r.stdout.contains("RAN"))
    }

    @Test func regularLogFileWorks() throws {
        let f = try Fixture()
        let log = f.root + "/events.jsonl"
        try f.write(log, "earlier line\n")
        let r = try f.agentpen(["--log", log, "--", "/bin/echo", "RAN"])
        #expect(r.status == 0 && r.stdout.contains("RAN"), "\(r.status) \(r.stderr)")
        #expect(f.read(log)?.hasPrefix("earlier line\n") == true, "the existing log was truncated")
        let fresh = f.root + "/fresh.jsonl"
        let r2 = try f.agentpen(["--log", fresh, "--", "/bin/echo", "RAN"])
        #expect(r2.status == 0 && r2.stdout.contains("RAN"), "\(r2.status) \(r2.stderr)")
        var st = stat()
        #expect(lstat(fresh, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG, "the log was not created")
    }
}

@Suite struct DryRunRedactionTests {
    @Test func secretLookingValuesAreRedacted() throws {
        let f = try Fixture()
        let secrets = ["OPENAI_API_KEY": "sk-secret-0123456789abcdef0123456789abcd", "GH_TOKEN": "ghp_tokenvalue123",
                       "my_password": "hunter2-very-secret", "CLIENT_SECRET": "cs-value-42"]
        let names = secrets.keys.sorted()
        let r = try f.agentpen(["--dry-run"] + names.flatMap { ["--env", $0] } + ["--env", "PLAIN", "--", "/bin/true"],
                               env: secrets.merging(["PLAIN": "plain-value"]) { $1 })
        #expect(r.status == 0, "\(r.stderr)")
        for (name, value) in secrets {
            #expect(!r.stdout.contains(value), "\(name)'s value is printed")
            #expect(r.stdout.contains("\(name)=<redacted, \(value.utf8.count) bytes>"), "\(name) not shown redacted:\n\(r.stdout)")
        }
        #expect(r.stdout.contains("PLAIN=plain-value"), "an ordinary variable is hidden too")
        // Redaction is for the printout only: the sandbox still gets the value.
        let run = try f.agentpen(["--env", "OPENAI_API_KEY", "--", "/bin/sh", "-c", "echo \"k=$OPENAI_API_KEY\""],
                                 env: ["OPENAI_API_KEY": secrets["OPENAI_API_KEY"]!])
        #expect(run.stdout.contains("k=" + secrets["OPENAI_API_KEY"]!), "\(run.stderr)")
    }
}

// MARK: - Networked: inside the test world

/// The environment of a live process, or nil when it cannot be read.
func environ(of pid: pid_t) -> [String]? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
    return String(decoding: data, as: UTF8.self).split(separator: "\0").map(String.init)
}

func cmdline(of pid: pid_t) -> String {
    String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self)
}

// Inside NetworkTests: the world is shared, so its suites run one test at a time.
extension NetworkTests {
@Suite struct HostProgramNetworkTests {
    /// The reproduction: the sandbox writes `nft` into a project directory on
    /// the caller's PATH; the namespace helper lists the firewall's counters after
    /// bubblewrap exits and must not run it.
    @Test func nftPlantedByTheSandboxDoesNotRun() throws {
        let f = try NetFixture()
        let bin = f.project + "/.venv/bin", marker = f.root + "/nft-ran"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let r = try f.sh(World.baseAllow, """
            printf '#!/bin/sh\\nls "$HOME" > \(marker); echo pwned >> \(marker)\\n' > .venv/bin/nft
            chmod +x .venv/bin/nft
            curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello
            """, path: "\(bin):/usr/bin:/bin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("hello from allowed.test"), "\(r.stdout) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker),
                "the planted nft ran outside the sandbox: \(f.f.read(marker) ?? "")")
    }

    /// Stand-ins for all three host programs on PATH before a networked run: none runs.
    @Test func plantedProgramsOnPathDoNotRun() throws {
        let f = try NetFixture()
        let bin = f.project + "/.venv/bin", markers = f.root + "/markers"
        try plantHostPrograms(f.f, in: bin, markers: markers)
        let r = try f.sh(World.baseAllow, "curl -sS --max-time 10 --cacert ca.pem https://allowed.test/hello",
                         path: "\(bin):/usr/bin:/bin:/usr/sbin:/sbin")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("hello from allowed.test"), "\(r.stdout) \(r.stderr)")
        #expect(plantedThatRan(markers).isEmpty, "planted programs ran: \(plantedThatRan(markers))")
    }

    /// The namespace helper, pasta and nft run with a fixed minimal environment:
    /// neither the caller's variables nor the sandbox's (whose values may be secrets)
    /// are in their environment or on any command line; the sandbox sees exactly the
    /// plan's. pasta and nft are observed through AGENTPEN_PASTA/AGENTPEN_NFT wrappers
    /// that record their environment (pasta makes itself undumpable, so its
    /// /proc/PID/environ is readable by root only; root checks that too).
    @Test func helpersRunWithAMinimalEnvironment() throws {
        let f = try NetFixture()
        let callerMarker = "caller-marker-\(Int.random(in: 100_000...999_999))"
        let sandboxMarker = "sandbox-secret-\(Int.random(in: 100_000...999_999))"
        let tools = f.root + "/tools"
        // pasta's path: the direct hop (the default) runs no pasta.
        var env = ["AGENTPEN_ODD_CALLER_VAR": callerMarker, "PASSED_IN": sandboxMarker, "AGENTPEN_HOP": "splice"]
        for (name, real) in [("pasta", "/usr/bin/pasta"), ("nft", "/usr/sbin/nft")] {
            try f.f.write(tools + "/" + name, "#!/bin/sh\n/usr/bin/env >> \(tools)/\(name).env\necho END >> \(tools)/\(name).env\nexec \(real) \"$@\"\n",
                          mode: 0o755)
            env["AGENTPEN_" + name.uppercased()] = tools + "/" + name
        }
        let args = World.baseAllow + ["--env", "PASSED_IN"]
        let dry = try f.f.agentpen(["--dry-run"] + args + ["--", "/usr/bin/python3"], env: env)
        #expect(dry.status == 0, "\(dry.stderr)")
        let planned = dry.stdout.components(separatedBy: "\n## ").first { $0.hasPrefix("environment") }?
            .split(separator: "\n").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) } ?? []
        #expect(planned.contains("PASSED_IN=\(sandboxMarker)"), "\(dry.stdout)")

        let ready = f.project + "/ready", gate = f.project + "/gate"
        #expect(mkfifo(gate, 0o666) == 0)
        // Python, not a shell: it adds no variables of its own.
        let script = "import os; open('inside.env', 'w').write(''.join(k + '=' + v + chr(10) for k, v in os.environ.items()));"
            + " open('ready', 'w').close(); open('gate').read()"
        var helperEnv: [String]?, pastaEnv: [String]?, commandLines: [String] = []
        let r = try NetworkTests.Faults.runToEnd(f, args + ["--", "/usr/bin/python3", "-c", script], env: env) { l in
            #expect(waitUntil(30) { FileManager.default.fileExists(atPath: ready) }, "the sandbox did not start: \(l.stderr)")
            let tree = l.tree.filter(\.isAlive)
            if let helper = tree.first(where: { cmdline(of: $0.pid).contains("__netns") }) { helperEnv = environ(of: helper.pid) }
            if let pasta = NetworkTests.Faults.attachedPasta(l) { pastaEnv = environ(of: pasta.pid) }
            commandLines = tree.map { cmdline(of: $0.pid) }
            let w = open(gate, O_WRONLY)
            if w >= 0 { _ = write(w, "x\n", 2); close(w) }
        }
        #expect(r.status == 0, "\(String(describing: r.status)) \(r.stderr)")
        #expect(helperEnv != nil, "the namespace helper's environment could not be read")
        if getuid() == 0 { #expect(pastaEnv != nil, "pasta's environment could not be read (as root)") }
        let recorded = ["pasta", "nft"].map { name in
            (name, (f.f.read(tools + "/\(name).env") ?? "").split(separator: "\n").map(String.init))
        }
        for (name, lines) in recorded {
            #expect(lines.contains("END"), "the \(name) wrapper never ran")
        }
        for (who, e) in [("namespace helper", helperEnv ?? []), ("pasta (/proc)", pastaEnv ?? [])] + recorded {
            #expect(!e.contains { $0.contains(callerMarker) }, "the caller's environment reached \(who): \(e)")
            #expect(!e.contains { $0.contains(sandboxMarker) }, "the sandbox's environment reached \(who): \(e)")
            #expect(!e.contains { $0.hasPrefix("HOME=") || ($0.hasPrefix("PATH=") && $0.contains(f.project)) },
                    "\(who): \(e)")
        }
        #expect(!commandLines.contains { $0.contains(sandboxMarker) }, "a variable's value on a command line: \(commandLines)")
        // Exactly the plan's environment inside (bubblewrap adds PWD for --chdir).
        let inside = (f.f.read(f.project + "/inside.env") ?? "").split(separator: "\n").map(String.init)
        #expect(inside.contains("PWD=\(f.project)"), "\(inside)")
        // The session adds its refusals file's variable at run time, after the plan.
        #expect(Set(inside.filter { !$0.hasPrefix("PWD=") }) == Set(planned + ["AGENTPEN_REFUSALS=/run/agentpen/session/refusals"]),
                "inside: \(inside.sorted())\nplanned: \(planned.sorted())")
    }
}
}
