import AgentpenPolicy
import TOMLKit

/// `$XDG_CONFIG_HOME/agentpen/allowed.toml`: the hosts `agentpen allow --save`
/// approved, per agent and per project. Written only by agentpen (the user's own
/// config.toml is never rewritten), read as trusted like config.toml: a problem
/// in it stops the run naming the file. Format:
///
///     [agent.claude]
///     hosts = ["api.example.com"]
///     [project."/home/me/src/app"]
///     hosts = ["registry.example.org"]
public struct SavedHosts: Sendable, Equatable {
    public static let fileName = "allowed.toml"
    public var path: String
    public private(set) var agents: [String: [HostPattern]] = [:]
    public private(set) var projects: [String: [HostPattern]] = [:]

    public init(path: String) { self.path = path }

    public static func parse(_ bytes: [UInt8], path: String) throws(ConfigError) -> SavedHosts {
        var out = SavedHosts(path: path)
        guard let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else {
            throw ConfigError(file: path, message: "is not UTF-8 text")
        }
        let table: TOMLTable
        do { table = try TOMLTable(string: text) }
        catch let e as TOMLParseError { throw ConfigError(file: path, line: e.source.begin.line, message: e.description) }
        catch { throw ConfigError(file: path, message: "cannot be parsed as TOML") }
        for (key, value) in table {
            guard key == "agent" || key == "project" else {
                throw ConfigError(file: path, key: key, message: "unknown key (only [agent.NAME] and [project.\"PATH\"] tables)")
            }
            guard let sub = value.table else { throw ConfigError(file: path, key: key, message: "expected tables") }
            for (name, body) in sub {
                let k = "\(key).\(name)"
                guard let t = body.table else { throw ConfigError(file: path, key: k, message: "expected a table") }
                var hosts: [HostPattern] = []
                for (field, v) in t {
                    guard field == "hosts" else { throw ConfigError(file: path, key: "\(k).\(field)", message: "unknown key (only hosts)") }
                    guard let array = v.array else { throw ConfigError(file: path, key: "\(k).hosts", message: "expected a list of host names") }
                    for item in array {
                        guard let s = item.string, let p = try? HostPattern(s) else {
                            throw ConfigError(file: path, key: "\(k).hosts", message: "not a host name: \(item)")
                        }
                        hosts.append(p)
                    }
                }
                if key == "agent" {
                    guard Profiles.isValidName(name) else { throw ConfigError(file: path, key: k, message: "not an agent name") }
                    out.agents[name] = hosts
                } else {
                    guard name.hasPrefix("/") else { throw ConfigError(file: path, key: k, message: "a project is an absolute path") }
                    out.projects[name] = hosts
                }
            }
        }
        return out
    }

    /// Adds `host` for the agent or the project; false when it was there already.
    @discardableResult
    public mutating func add(_ host: HostPattern, agent: String) -> Bool {
        if agents[agent, default: []].contains(host) { return false }
        agents[agent, default: []].append(host)
        return true
    }

    @discardableResult
    public mutating func add(_ host: HostPattern, project: String) -> Bool {
        if projects[project, default: []].contains(host) { return false }
        projects[project, default: []].append(host)
        return true
    }

    /// The file's text: sorted, one table per agent and project.
    public var text: String {
        func quoted(_ s: String) -> String {
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                default:
                    if u.value < 0x20 || u.value == 0x7f {
                        let h = String(u.value, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                    } else { out.unicodeScalars.append(u) }
                }
            }
            return out + "\""
        }
        var t = "# Written by agentpen allow --save; read as yours, like config.toml (which agentpen never rewrites).\n"
        for (name, hosts) in agents.sorted(by: { $0.key < $1.key }) where !hosts.isEmpty {
            t += "\n[agent.\(quoted(name))]\nhosts = [" + hosts.map { quoted($0.description) }.joined(separator: ", ") + "]\n"
        }
        for (path, hosts) in projects.sorted(by: { $0.key < $1.key }) where !hosts.isEmpty {
            t += "\n[project.\(quoted(path))]\nhosts = [" + hosts.map { quoted($0.description) }.joined(separator: ", ") + "]\n"
        }
        return t
    }
}
