import Foundation
import Testing

/// The real agents, installed by tests/agents/install.sh into a cache outside the
/// clone (AGENTPEN_AGENT_CACHE, default /var/cache/agentpen-test), and laid out in a
/// fixture's home the way their users have them. Hard links where the cache's owner
/// allows it (fs.protected_hardlinks), copies otherwise.
enum RealAgents {
    static var cache: String {
        let e = ProcessInfo.processInfo.environment["AGENTPEN_AGENT_CACHE"] ?? ""
        return e.isEmpty ? "/var/cache/agentpen-test" : e
    }

    /// NAME=VERSION lines written by install.sh.
    static var versions: [String: String] {
        var v: [String: String] = [:]
        for line in ((try? String(contentsOfFile: cache + "/versions", encoding: .utf8)) ?? "").split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { v[String(kv[0])] = String(kv[1]) }
        }
        return v
    }

    static var installed: Bool { ["claude", "codex", "aider"].allSatisfy { versions[$0] != nil } }
    /// Outside CI the suite skips without the agents; under CI=true it runs and fails.
    static var runnable: Bool { (installed && World.isUp) || Agentpen.isCI }
    static let skipReason: Comment = """
        the real agents are not installed (tests/agents/install.sh) or the test world is not up: run through tests/run.sh
        """

    static func version(_ name: String) throws -> String {
        guard let v = versions[name] else {
            throw TestFailure("\(name) is not installed in \(cache) (tests/agents/install.sh, run by tests/run.sh)")
        }
        return v
    }

    /// Hard link `src` at `dst` (parents created), or copy it.
    static func place(_ src: String, at dst: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: (dst as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if link(src, dst) == 0 { return }
        try fm.copyItem(atPath: src, toPath: dst)
    }

    /// A tree of hard links (cp -al), or a copy.
    static func placeTree(_ src: String, at dst: String) throws {
        try FileManager.default.createDirectory(atPath: (dst as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        let r = try runProgram("/bin/cp", ["-al", src, dst], env: [:], cwd: "/")
        if r.status == 0 { return }
        _ = try? runProgram("/bin/rm", ["-rf", dst], env: [:], cwd: "/")
        let c = try runProgram("/bin/cp", ["-a", src, dst], env: [:], cwd: "/")
        if c.status != 0 { throw TestFailure("cannot copy \(src) to \(dst): \(c.stderr)") }
    }

    /// Claude's native installer: ~/.local/bin/claude → ~/.local/share/claude/versions/V.
    /// Returns the PATH to run it with.
    @discardableResult
    static func installClaude(home: String) throws -> String {
        let v = try version("claude")
        let target = home + "/.local/share/claude/versions/" + v
        try place(cache + "/claude/\(v)/claude", at: target)
        try FileManager.default.createDirectory(atPath: home + "/.local/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: home + "/.local/bin/claude", withDestinationPath: target)
        return home + "/.local/bin:/usr/local/bin:/usr/bin:/bin"
    }

    /// Codex, standalone: the binary (and its helper) in ~/.local/bin.
    @discardableResult
    static func installCodexStandalone(home: String) throws -> String {
        let v = try version("codex")
        let pkg = cache + "/codex/\(v)/codex_cli_bin"
        try place(pkg + "/bin/codex", at: home + "/.local/bin/codex")
        try place(pkg + "/bin/codex-code-mode-host", at: home + "/.local/bin/codex-code-mode-host")
        return home + "/.local/bin:/usr/local/bin:/usr/bin:/bin"
    }

    /// Codex as `pip install openai-codex-cli-bin` lays it out in a virtualenv
    /// (outside the home, as a project's or a tool's venv); the wheel has no console
    /// script, so the venv's bin gets a link to the package's binary, as users make.
    static func codexVenv() throws -> (bin: String, path: String) {
        let v = try version("codex")
        let venv = cache + "/codex/\(v)/venv"
        let site = ((try? FileManager.default.contentsOfDirectory(atPath: venv + "/lib")) ?? []).first { $0.hasPrefix("python3") }
        guard let site else { throw TestFailure("no python3* in \(venv)/lib") }
        return (venv + "/lib/\(site)/site-packages/codex_cli_bin/bin/codex", venv + "/bin:/usr/local/bin:/usr/bin:/bin")
    }

    /// Aider in pipx's layout: ~/.local/share/pipx/venvs/aider-chat, ~/.local/bin/aider → its bin/aider.
    @discardableResult
    static func installAider(home: String) throws -> String {
        let v = try version("aider")
        let venv = home + "/.local/share/pipx/venvs/aider-chat"
        try placeTree(cache + "/aider/\(v)/pipx/venvs/aider-chat", at: venv)
        // pipx wrote the cache's path into the scripts' #! lines: rewrite aider's (a new file).
        let script = venv + "/bin/aider"
        let text = try String(contentsOfFile: script, encoding: .utf8)
        let body = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().joined()
        unlink(script)
        try ("#!" + venv + "/bin/python\n" + body).write(toFile: script, atomically: false, encoding: .utf8)
        chmod(script, 0o755)
        try FileManager.default.createDirectory(atPath: home + "/.local/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: home + "/.local/bin/aider", withDestinationPath: venv + "/bin/aider")
        return home + "/.local/bin:/usr/local/bin:/usr/bin:/bin"
    }

    /// The hosts `agentpen --dry-run` allows for this command (the preset's, and any
    /// endpoint it added), to give each one with --allow-private: the world's
    /// addresses are private.
    static func allowedHosts(_ f: Fixture, _ command: [String], env: [String: String], path: String) throws -> [String] {
        let r = try f.agentpen(["--dry-run", "--"] + command, env: env, path: path)
        let marker = "allowed hosts (TLS on port 443 only): "
        guard r.status == 0, let line = r.stdout.split(separator: "\n").first(where: { $0.contains(marker) }) else {
            throw TestFailure("agentpen --dry-run \(command) did not list the allowed hosts: \(r.stdout) \(r.stderr)")
        }
        return line.components(separatedBy: marker)[1].components(separatedBy: ", ").map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

/// One request the scripted model servers (tests/world/models.py) logged.
struct ModelRequest: CustomStringConvertible {
    var raw: [String: Any]
    var path: String { raw["path"] as? String ?? "" }
    var sni: String { raw["sni"] as? String ?? "" }
    var session: String? { raw["session"] as? String }
    var answer: String { raw["answer"] as? String ?? "" }
    var toolResults: [String] { raw["tool_results"] as? [String] ?? [] }
    var description: String {
        "\(sni) \(raw["method"] ?? "") \(path) session=\(session ?? "-") answer=\(answer) results=\(toolResults.count)"
    }
}

/// The model servers' request log, read from a mark on.
struct ModelLog {
    static var path: String { (World.dir ?? "/run/apw") + "/models.log" }
    let offset: UInt64

    static func mark() throws -> ModelLog {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw TestFailure("\(path) is missing: the world's model servers (tests/world/models.sh) are not up")
        }
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        return ModelLog(offset: (attrs[.size] as? NSNumber)?.uint64Value ?? 0)
    }

    func since() -> [ModelRequest] {
        guard let h = FileHandle(forReadingAtPath: Self.path) else { return [] }
        defer { try? h.close() }
        try? h.seek(toOffset: offset)
        let data = (try? h.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]).map(ModelRequest.init)
        }
    }
}

/// A scripted session: the prompt carries the steps (models.py answers them in order).
struct ModelScript {
    let tag = "apw-\(getpid())-\(Int.random(in: 100_000...999_999))"
    var steps: [String]
    var final: String

    var prompt: String {
        (["Follow the test script.", "APW-SESSION \(tag)"] + steps.map { "APW-STEP " + $0 } + ["APW-FINAL " + final])
            .joined(separator: "\n")
    }

    /// The session's requests that carried the main loop (the others are side requests).
    func requests(_ log: ModelLog) -> [ModelRequest] { log.since().filter { $0.session == tag } }

    /// The tool results the agent sent back, from the request that asked for the final answer.
    func results(_ log: ModelLog) -> [String] {
        requests(log).filter { $0.answer == "final" }.last?.toolResults ?? []
    }
}
