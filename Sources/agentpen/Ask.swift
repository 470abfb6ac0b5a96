import AgentpenConfig
import AgentpenKernel
import AgentpenPolicy
import CShim
import FoundationEssentials
import Glibc
import Synchronization

/// `--ask`'s host-side helpers: the desktop notification and the saved hosts.
enum Ask {
    /// A process in the sandbox's network namespace (the namespace helper), once it runs.
    static let namespacePID = Mutex<Int32>(0)

    /// "pid 12 curl": the sandbox's process that owns the connecting socket, if found.
    static func processOf(_ client: String) -> String? {
        let pid = namespacePID.withLock { $0 }
        guard pid > 0, let colon = client.lastIndex(of: ":"), let port = UInt16(client[client.index(after: colon)...]),
              let address = IPAddress(String(client[..<colon])) else { return nil }
        return SocketOwners.owner(netnsPID: pid, local: address, port: port)
    }

    /// A notification per held connection where `notify-send` exists (a host
    /// program: found in the system directories like bwrap, started with a fixed
    /// environment, its output to /dev/null: nothing reaches the agent's terminal).
    static func notifier(_ p: Prepared) -> @Sendable (String, String?) -> Void {
        guard let program = p.programs.path(.notifySend) else { return { _, _ in } }
        let uid = p.facts.uid
        return { host, process in
            // The host passed HostPattern (letters, digits, '-', '.'); the process name is cleaned.
            let who = process.map { " (" + String($0.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || " ._-".unicodeScalars.contains($0)) }.map(Character.init)) + ")" } ?? ""
            let argv = [program, "--app-name=agentpen", "agentpen: \(host) is waiting",
                        "A sandboxed connection\(who) waits for your decision: agentpen watch, or agentpen allow \(host)"]
            var options = Spawn.Options()
            guard let devNull = Descriptor.open("/dev/null", O_RDWR | O_CLOEXEC) else { return }
            let null = devNull.raw    // the child gets copies; ours is closed at the end of the scope
            options.fds = [(null, 0), (null, 1), (null, 2)]
            options.env = HostPrograms.environment + [EnvironmentVariable("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/\(uid)/bus")]
            options.ignoreInteractiveSignals = true
            // Reaped by the run's wait loop (it waits for any child).
            _ = try? Spawn.start(argv, options)
        }
    }

    /// Saves a host approved with --save into allowed.toml beside the user's config.
    static func saver(_ p: Prepared, agent: String) -> @Sendable (String, ApprovalChoice) -> String {
        let dir = p.config.locations.configDir
        let path = p.config.locations.allowedFile
        let hasPreset = p.preset != nil
        let project = p.project
        let lock = Mutex(())
        return { host, choice in lock.withLock { _ in
            guard let pattern = try? HostPattern(host) else { return "not saved: \(host) is not a host name" }
            var saved = SavedHosts(path: path)
            switch ConfigFiles.read(path, limit: ConfigFile.globalSizeLimit) {
            case .missing: break
            case .refused(let why): return "not saved: \(path): \(why)"
            case .bytes(let b):
                do { saved = try SavedHosts.parse(b, path: path) } catch { return "not saved: \(error)" }
            }
            switch choice {
            case .saveAgent:
                guard hasPreset else { return "not saved: this run has no agent preset (save it for the project)" }
                saved.add(pattern, agent: agent)
            case .saveProject:
                saved.add(pattern, project: project)
            default:
                return "not saved"
            }
            if let why = ConfigFiles.replace(dir: dir, name: SavedHosts.fileName, saved.text) { return "not saved: \(path): \(why)" }
            return "saved in \(path)" + (choice == .saveAgent ? " for agent \(agent)" : " for project \(project)")
        } }
    }
}
