@testable import AgentpenKernel
import AgentpenPolicy
import AgentpenSystem
import CSeccomp
import CShim
import Foundation
import Glibc
import Testing

// The notifying filter's program (issue 11, startpath): agentpen compiles it
// while bubblewrap works and hands it to the exec helper in a sealed memfd; the
// helper loads it as it is. The program is libseccomp's for the policy, byte
// for byte; nothing but a sealed, well-formed program the kernel accepts is
// ever loaded, and a program the helper cannot load stops the run (125) before
// the agent starts. Loading is an exit test: a fresh child, never this process.

private var agentpenBinary: String {
    if let b = ProcessInfo.processInfo.environment["AGENTPEN_BIN"] { return b }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("agentpen").path
}

private func contents(_ fd: Int32) -> [UInt8] {
    var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
    var off: off_t = 0
    while true {
        let n = pread(fd, &buf, buf.count, off)
        if n <= 0 { return out }
        out += buf[0..<n]
        off += off_t(n)
    }
}

/// A memfd holding `bytes`; sealed against every change when `sealed`.
private func memfd(_ bytes: [UInt8], sealed: Bool) -> Int32 {
    let fd = ap_memfd_create("test-program", UInt32(AP_MFD_CLOEXEC) | AP_MFD_ALLOW_SEALING)
    precondition(fd >= 0)
    if !bytes.isEmpty { precondition(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count) }
    if sealed { precondition(ap_memfd_seal_all(fd) == 0) }
    return fd
}

/// The Seccomp: line of this thread's status (0: no filter on it; a filter
/// loaded without TSYNC is on the calling thread only).
private func seccompMode() -> String {
    let status = (try? String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)) ?? ""
    return status.split(separator: "\n").first { $0.hasPrefix("Seccomp:") }.map { String($0.dropFirst(8)).trimmingCharacters(in: .whitespaces) } ?? "?"
}

@Suite struct NotifyingProgramTests {
    @Test func theExportIsLibseccompsProgramForThePolicySealed() throws {
        let fd = try SeccompFilter.exportNotifying()
        defer { close(fd) }
        // libseccomp's own export of the same policy, as the helper compiled it before.
        let ctx = try SeccompFilter.context(SyscallPolicy.reportedRules, notify: true)
        defer { seccomp_release(ctx) }
        let reference = memfd([], sealed: false)
        defer { close(reference) }
        #expect(seccomp_export_bpf(ctx, reference) == 0)
        let exported = contents(fd), expected = contents(reference)
        #expect(!exported.isEmpty && exported.count % 8 == 0)
        #expect(exported == expected)
        // Sealed: no write, no truncation, no growth, no new seal's removal.
        #expect(ap_memfd_sealed(fd) == 1)
        var byte: UInt8 = 0
        #expect(pwrite(fd, &byte, 1, 0) < 0 && errno == EPERM)
        #expect(ftruncate(fd, 0) < 0 && errno == EPERM)
        #expect(ftruncate(fd, off_t(exported.count + 8)) < 0 && errno == EPERM)
        #expect(contents(fd) == expected)
    }

    @Test func theSealedProgramLoadsAndGivesAListener() async {
        await #expect(processExitsWith: .success) {
            guard let fd = try? SeccompFilter.exportNotifying() else { exit(3) }
            guard let listener = try? SeccompFilter.loadNotifying(program: fd) else { exit(4) }
            exit(listener >= 0 && seccompMode() == "2" ? 0 : 5)
        }
    }

    /// Each is refused, and no filter is on the thread afterwards.
    @Test(arguments: ["unsealed", "empty", "partial", "invalid", "oversized"])
    func aProgramThatIsNotSealedAndWholeIsNeverLoaded(_ kind: String) async {
        await #expect(processExitsWith: .success) { [kind = kind as String] in
            guard let good = try? SeccompFilter.exportNotifying() else { exit(3) }
            let bytes = contents(good)
            let fd: Int32
            switch kind {
            case "unsealed": fd = memfd(bytes, sealed: false)
            case "empty": fd = memfd([], sealed: true)
            case "partial": fd = memfd(Array(bytes.dropLast(3)), sealed: true)
            // BPF_LD|BPF_W|BPF_ABS at an offset past seccomp_data: the kernel's checker refuses it.
            case "invalid": fd = memfd([0x20, 0, 0, 0, 0x00, 0x10, 0, 0] + [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f], sealed: true)
            default: fd = memfd([UInt8](repeating: 0, count: 4097 * 8), sealed: true)
            }
            do {
                _ = try SeccompFilter.loadNotifying(program: fd)
                exit(1)
            } catch {
                exit(seccompMode() == "0" ? 0 : 2)
            }
        }
    }

    /// The helper itself: given a program it cannot load (or none), it stops
    /// with 125 and the reason, and never runs the command.
    @Test(arguments: ["invalid", "unsealed", "none", "listener-tag"])
    func theExecHelperStopsWithoutALoadableProgram(_ kind: String) async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) { [kind = kind as String] in
            // bubblewrap sets no_new_privs before the helper runs; Landlock needs it.
            guard ap_set_no_new_privs() == 0, let pair = try? Descriptor.socketPair() else { exit(3) }
            let ours = pair.first, theirs = pair.second
            switch kind {
            case "invalid":
                let fd = memfd([0x20, 0, 0, 0, 0x00, 0x10, 0, 0] + [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f], sealed: true)
                guard (try? SyscallListener.sendProgram(fd, over: ours.raw)) != nil else { exit(4) }
            case "unsealed":
                guard let good = try? SeccompFilter.exportNotifying() else { exit(3) }
                let fd = memfd(contents(good), sealed: false)
                guard (try? SyscallListener.sendProgram(fd, over: ours.raw)) != nil else { exit(4) }
            case "listener-tag":
                // The right program under the listener's tag: not the program.
                guard let good = try? SeccompFilter.exportNotifying() else { exit(3) }
                guard (try? SyscallListener.send(good, over: ours.raw)) != nil else { exit(4) }
            default:
                ours.close()   // agentpen gone: nothing will come
            }
            let (status, out) = Spawn.run([agentpenBinary, "__exec", "--syscall-notify", "5", "--rw", "/tmp", "--",
                                           "/bin/echo", "agent-started"], extraFDs: [(theirs.raw, 5)])
            let line = "status=\(status) output=\(out)\n"
            _ = line.withCString { write(1, $0, strlen($0)) }
            exit(status == 125 && !out.contains("agent-started") && out.contains("cannot install the syscall filter") ? 0 : 1)
        }
        let out = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        #expect(out.contains("status=125"), "\(out)")
    }

    @Test func theExecHelperRunsTheCommandWithTheSealedProgram() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) {
            // bubblewrap sets no_new_privs before the helper runs; Landlock needs it.
            guard ap_set_no_new_privs() == 0, let pair = try? Descriptor.socketPair() else { exit(3) }
            let ours = pair.first, theirs = pair.second
            guard let good = try? SeccompFilter.exportNotifying(),
                  (try? SyscallListener.sendProgram(good, over: ours.raw)) != nil else { exit(4) }
            // The listener comes back (answered by nobody here: /bin/echo makes no reported call).
            let (status, out) = Spawn.run([agentpenBinary, "__exec", "--syscall-notify", "5", "--rw", "/tmp", "--",
                                           "/bin/echo", "agent-started"], extraFDs: [(theirs.raw, 5)])
            theirs.close()   // whatever the helper did, the receive below cannot wait
            var back = false
            if let listener = SyscallListener.receive(over: ours.raw) { back = listener.fd >= 0 }
            let line = "status=\(status) listener=\(back) output=\(out)\n"
            _ = line.withCString { write(1, $0, strlen($0)) }
            exit(status == 0 && back && out.contains("agent-started") ? 0 : 1)
        }
        let out = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        #expect(out.contains("status=0"), "\(out)")
    }

    /// Fail closed (moved here from SyscallEventTests: the driver now sends the
    /// program first): the exec helper run directly, its listener received by a
    /// driver that closes it while a refused call waits, and again before the
    /// next call. The kernel answers ENOSYS both times; the call never runs.
    @Test func callsFailClosedWithoutTheListener() async throws {
        var template = Array(((ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/notify.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp", errno: errno) }
        let dir = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inner = dir + "/inner.py"
        try #"""
        import ctypes, errno, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        def raw(name, nr, *args):
            ctypes.set_errno(0)
            rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
            e = ctypes.get_errno()
            print(name + "=" + ("OK" if rc >= 0 else errno.errorcode.get(e, str(e))), flush=True)
        n = 250 if os.uname().machine == "x86_64" else 219
        os.read(int(sys.argv[1]), 1)
        raw("waiting", n, 0, -3, 0)
        raw("after", n, 0, -3, 0)
        # With agentpen's listener gone the kernel would take a new one (it refuses a second
        # listener only while the first exists); the filter still refuses to create it.
        raw("relisten", 317 if os.uname().machine == "x86_64" else 277, 1, 8, 0)
        """#.write(toFile: inner, atomically: true, encoding: .utf8)
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) { [inner = inner as String] in
            guard ap_set_no_new_privs() == 0, let pair = try? Descriptor.socketPair(), let go = try? Descriptor.pipe() else { exit(3) }
            let ours = pair.first, theirs = pair.second, goRead = go.read, goWrite = go.write
            guard let program = try? SeccompFilter.exportNotifying(),
                  (try? SyscallListener.sendProgram(program, over: ours.raw)) != nil else { exit(4) }
            var options = Spawn.Options()
            options.fds = [(theirs.raw, 5), (goRead.raw, 6)]
            guard let pid = try? Spawn.start([agentpenBinary, "__exec", "--syscall-notify", "5", "--rw", "/tmp", "--",
                                              "/usr/bin/python3", inner, "6"], options) else { exit(5) }
            theirs.close()
            goRead.close()
            let say = { (line: String) in _ = line.withCString { write(1, $0, strlen($0)) } }
            if let listener = SyscallListener.receive(over: ours.raw) {
                say("received=1\n")
                var byte: UInt8 = 0x67
                _ = write(goWrite.raw, &byte, 1)
                // A pending notification makes the listener readable: the call is waiting on us.
                _ = listener.waitForCall()
                _ = consume listener   // closed with the call still waiting
            }
            say("status=\(Spawn.wait(pid))\n")
            exit(0)
        }
        let out = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        for line in ["received=1", "waiting=ENOSYS", "after=ENOSYS", "relisten=ENOSYS", "status=0"] {
            #expect(out.contains(line), "\(out)")
        }
    }

    /// The direct hop's gate (moved here from StartupGateTests, which could not
    /// send a program): the helper does all its own work (Landlock, the filter,
    /// the listener to agentpen) while the firewall loads, and waits at the gate
    /// last, just before the agent's exec. A gate at end of file, or none open,
    /// never starts the command (125, silently); one byte starts it.
    @Test(arguments: ["eof", "closed", "open"])
    func theGateIsTheLastStepBeforeTheAgent(_ gate: String) async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) { [gate = gate as String] in
            guard ap_set_no_new_privs() == 0, let pair = try? Descriptor.socketPair(), let pipe = try? Descriptor.pipe() else { exit(3) }
            let ours = pair.first, theirs = pair.second, gateRead = pipe.read, gateWrite = pipe.write
            guard let program = try? SeccompFilter.exportNotifying(),
                  (try? SyscallListener.sendProgram(program, over: ours.raw)) != nil else { exit(4) }
            var options = Spawn.Options()
            options.fds = [(theirs.raw, 5)] + (gate == "closed" ? [] : [(gateRead.raw, Int32(6))])
            guard let pid = try? Spawn.start([agentpenBinary, "__exec", "--gate", "6", "--syscall-notify", "5", "--rw", "/tmp", "--",
                                              "/bin/echo", "agent-started"], options) else { exit(5) }
            theirs.close()
            gateRead.close()
            let say = { (line: String) in _ = line.withCString { write(1, $0, strlen($0)) } }
            // Shut (at end of file or never open): the listener still comes, the
            // helper did its work before it stopped at the gate.
            if gate == "open" {
                var byte: UInt8 = 0x67
                _ = write(gateWrite.raw, &byte, 1)
            }
            gateWrite.close()
            var listened = false
            if let listener = SyscallListener.receive(over: ours.raw) { listened = listener.fd >= 0 }
            say("listener=\(listened)\n")
            say("status=\(Spawn.wait(pid))\n")
            exit(0)
        }
        let out = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        #expect(out.contains("listener=true"), "\(out)")
        if gate == "open" {
            #expect(out.contains("agent-started") && out.contains("status=0"), "\(out)")
        } else {
            #expect(!out.contains("agent-started") && out.contains("status=125"), "\(out)")
            #expect(!out.contains("syscall filter"), "\(out)")
        }
    }
}
