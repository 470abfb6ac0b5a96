import AgentpenKernel
import CSeccomp
import Foundation
import Glibc
import Testing

// The spawn primitive and the exec helper fail closed when the kernel refuses a
// call they rely on (an old kernel, a seccomp policy around agentpen). Each test
// is an exit test: a fresh child loads a seccomp filter that makes the call fail,
// then does what agentpen does.

/// Loads a filter into this process (every thread): each named syscall fails with
/// its errno; with an argument index, only when that argument is non-zero.
private func deny(_ rules: [(name: String, errno: Int32, nonZeroArg: UInt32?)]) -> Bool {
    guard let ctx = seccomp_init(UInt32(SCMP_ACT_ALLOW)) else { return false }
    defer { seccomp_release(ctx) }
    guard seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) == 0 else { return false }
    for rule in rules {
        var nr = seccomp_syscall_resolve_name(rule.name)
        if nr == __NR_SCMP_ERROR {
            guard rule.name == "close_range" else { continue }   // setrlimit is absent on aarch64
            nr = 436   // close_range has one number on every architecture
        }
        var cmps = rule.nonZeroArg.map { [scmp_arg_cmp(arg: $0, op: SCMP_CMP_NE, datum_a: 0, datum_b: 0)] } ?? []
        let rc = cmps.withUnsafeMutableBufferPointer {
            seccomp_rule_add_array(ctx, 0x0005_0000 | UInt32(rule.errno), nr, UInt32($0.count), $0.baseAddress)
        }
        if rc < 0 { return false }
    }
    return seccomp_load(ctx) == 0
}

private var agentpenBinary: String {
    if let b = ProcessInfo.processInfo.environment["AGENTPEN_BIN"] { return b }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("agentpen").path
}

@Suite struct FailClosedTests {
    /// Nothing refused, close_range refused (ENOSYS, as on kernels before 5.9), and
    /// getdents64 too (no /proc listing): the child gets only the descriptors handed to it.
    @Test(arguments: [[], ["close_range"], ["close_range", "getdents64"]])
    func descriptorsAreClosedOneByOneWhenCloseRangeFails(_ refused: [String]) async {
        let refusedList = refused.joined(separator: ",")   // exit tests capture Codable values
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) { [refusedList = refusedList as String] in
            var limit = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            limit.rlim_cur = min(limit.rlim_max, 4096)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            // Descriptors without close-on-exec, low and high, that must not reach the child.
            for _ in 0..<64 { _ = dup(2) }
            _ = dup2(2, 1000)
            let handed = dup(2)
            guard deny(refusedList.split(separator: ",").map { (String($0), ENOSYS, nil) }) else {   // none: an empty filter
                exit(3)
            }
            let (status, out) = Spawn.run(["/bin/sh", "-c",
                "for f in $(/usr/bin/seq 3 1100); do [ -e /proc/$$/fd/$f ] && echo $f; done; exit 0"],
                extraFDs: [(handed, 5)])
            let open = out.split(separator: "\n").map(String.init)
            let line = "status=\(status) open=\(open)\n"
            _ = line.withCString { write(1, $0, strlen($0)) }
            exit(status == 0 && open == ["5"] ? 0 : 1)
        }
        let out = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        #expect(out.contains("status=0 open=[\"5\"]"), "descriptors reached the child: \(out)")
    }

    /// The exec helper stops the run (125, naming the limit) when it cannot set a
    /// resource limit, instead of starting the agent without it.
    @Test func failedRlimitStopsTheRun() async {
        let result = await #expect(processExitsWith: .exitCode(125), observing: [\.standardErrorContent]) {
            // prlimit64 with a new limit (setrlimit), not without (getrlimit).
            guard deny([("prlimit64", EPERM, 2), ("setrlimit", EPERM, nil)]) else { exit(3) }
            let binary = agentpenBinary
            let words: [String] = [binary, "__exec", "--rw", "/tmp", "--", "/bin/true"]
            let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
            execv(binary, argv)
            exit(4)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("RLIMIT_"), "the message does not name the limit: \(stderr)")
    }
}
