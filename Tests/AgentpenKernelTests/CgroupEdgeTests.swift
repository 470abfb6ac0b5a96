import AgentpenKernel
import AgentpenPolicy
import Foundation
import Glibc
import Testing

/// The cgroup edge for real. Everyone: the facts agree with the host. Root,
/// on any cgroup2 mount: a child is created, a process enters it through a
/// descriptor opened beforehand (as the exec helper does), and removal kills
/// what is left and takes the directory away.
@Suite struct CgroupEdgeTests {
    static func cgroup2Mount() -> String? {
        let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in info.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    @Test func factsDescribeThisHost() throws {
        let facts = try #require(Cgroup.facts(uid: getuid()))
        #expect(facts.unified == FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers"))
        let own = (try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)).split(separator: "\n")
            .first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
        #expect(facts.ownPath == own)
        if facts.unified, let own, own != "/" {
            #expect(facts.ancestors.first?.path == Paths.parent(own))
            #expect(facts.ancestors.last?.path == "/")
        }
        #expect(facts.pid == getpid())
    }

    @Test func createEnterAndRemoveAsRoot() throws {
        guard getuid() == 0 else {
            // Unprivileged, nothing here is delegated: creating under the hierarchy root fails.
            if let mount = Self.cgroup2Mount() {
                #expect(throws: SystemError.self) { try Cgroup.create(mount + "/agentpen-kt-\(getpid())", writes: []) }
            }
            return
        }
        let mount = try #require(Self.cgroup2Mount(), "no cgroup2 mount on this host")
        let base = mount + "/agentpen-kt-\(getpid())"
        try Cgroup.create(base, writes: [])
        defer { Cgroup.remove(base) }
        // A write the hierarchy refuses (no such file) removes the half-made cgroup.
        #expect(throws: SystemError.self) { try Cgroup.create(base + "/bad", writes: [.init(file: "no.such.file", value: "1")]) }
        #expect(!FileManager.default.fileExists(atPath: base + "/bad"))

        let child = base + "/run"
        try Cgroup.create(child, writes: [])
        try Cgroup.create(child, writes: [])   // a stale directory of the same name is replaced
        let fd = try Cgroup.openProcs(child)
        var p: [Int32] = [0, 0]
        #expect(pipe(&p) == 0)
        var o = Spawn.Options()
        o.fds = [(fd, 7), (p[1], 1)]
        let pid = try Spawn.start(["/bin/sh", "-c", "echo 0 >&7 && exec 7>&- && echo entered && exec sleep 1000"], o)
        close(fd); close(p[1])
        var line = [UInt8](repeating: 0, count: 16)
        let n = read(p[0], &line, 16)
        close(p[0])
        #expect(String(decoding: line.prefix(max(n, 0)), as: UTF8.self) == "entered\n")
        let members = (try? String(contentsOfFile: child + "/cgroup.procs", encoding: .utf8)) ?? ""
        #expect(members.split(separator: "\n").contains(Substring(String(pid))), "\(members)")
        Cgroup.remove(child)   // sleep is still inside: killed, then removed
        #expect(!FileManager.default.fileExists(atPath: child))
        #expect(Spawn.wait(pid) == 128 + SIGKILL)
    }
}
