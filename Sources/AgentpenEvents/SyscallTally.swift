import FoundationEssentials
import Glibc

/// Counts refused syscalls so that a loop of them cannot flood the log, the
/// live lines or agentpen's memory: the first call of each (syscall, pid) is
/// an event naming the process; later ones are only counted, and `flush`
/// turns the counts into one event per entry at the end. At most
/// `entryLimit` entries are kept; calls beyond them are counted per syscall
/// name (names come from the policy's own number table, so they are bounded).
/// A pid the kernel later reuses counts under the process first seen with it.
public struct SyscallTally: Sendable {
    /// The process that made a call, as read from /proc on the host; `comm` and
    /// `exe` are the sandbox's text, unescaped (printing escapes them, once).
    public struct Process: Sendable, Equatable {
        public var pid: Int32
        public var comm: String
        public var exe: String
        public init(pid: Int32, comm: String, exe: String) { self.pid = pid; self.comm = comm; self.exe = exe }
    }

    struct Key: Hashable { var syscall: String; var pid: Int32 }
    struct Entry { var process: Process; var errno: String; var count: Int; var reported: Int }

    public static let entryLimit = 256
    private var entries: [Key: Entry] = [:]
    private var order: [Key] = []
    /// Calls beyond `entryLimit`, per syscall name, with the errno they got.
    private var unnamed: [String: (errno: String, count: Int)] = [:]

    public init() {}

    /// Whether a call from `pid` opens a new entry (the caller then reads the
    /// process from /proc, before answering, while the pid is certainly its).
    public func isNew(_ syscall: String, pid: Int32) -> Bool {
        entries[Key(syscall: syscall, pid: pid)] == nil && entries.count < Self.entryLimit
    }

    /// One refused call. Returns the event to record now (a new entry), or nil.
    public mutating func note(_ syscall: String, errno: String, pid: Int32, process: Process?) -> Event? {
        let key = Key(syscall: syscall, pid: pid)
        if entries[key] != nil {
            entries[key]!.count += 1
            return nil
        }
        guard entries.count < Self.entryLimit, let process else {
            unnamed[syscall, default: (errno, 0)].count += 1
            return nil
        }
        entries[key] = Entry(process: process, errno: errno, count: 1, reported: 1)
        order.append(key)
        return Self.event(syscall, errno: errno, process: process, count: 1,
                          reason: "refused \(errno) to \(process.comm) (pid \(process.pid), \(process.exe))")
    }

    /// The calls not yet in an event: one event per entry, then one per syscall
    /// counted beyond the entry limit. Counting starts again from here.
    public mutating func flush() -> [Event] {
        var out: [Event] = []
        for key in order {
            guard let e = entries[key], e.count > e.reported else { continue }
            let more = e.count - e.reported
            entries[key]!.reported = e.count
            out.append(Self.event(key.syscall, errno: e.errno, process: e.process, count: more,
                                  reason: "refused \(e.errno) to \(e.process.comm) (pid \(e.process.pid)) \(more) more times, \(e.count) in all"))
        }
        for (name, u) in unnamed.sorted(by: { $0.key < $1.key }) {
            out.append(Event(.syscallRefused, subject: .name(name),
                             reason: "refused \(u.errno) \(u.count) times to processes not named (over \(Self.entryLimit) entries)",
                             details: ["errno": u.errno, "attempts": String(u.count)]))
        }
        unnamed = [:]
        return out
    }

    static func event(_ syscall: String, errno: String, process: Process, count: Int, reason: String) -> Event {
        Event(.syscallRefused, subject: .name(syscall), reason: reason,
              details: ["errno": errno, "attempts": String(count), "pid": String(process.pid),
                        "comm": process.comm, "exe": process.exe])
    }
}
