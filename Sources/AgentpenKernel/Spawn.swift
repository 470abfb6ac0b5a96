import AgentpenPolicy
import CShim
import Glibc

/// The one way agentpen starts programs: fork+exec in C with an explicit list
/// of descriptors to hand over, every other descriptor closed, signals reset.
public struct Spawn {
    public struct Options {
        /// Descriptor in this process → number in the child (0, 1, 2 are inherited unless remapped).
        public var fds: [(src: Int32, dst: Int32)] = []
        /// SIGKILL the child when the spawning thread dies. Spawn from the main thread.
        public var dieWithParent = false
        /// SIGINT and SIGQUIT ignored in the child (they survive exec): the terminal's
        /// Ctrl-C then reaches only a program that resets them (the agent).
        public var ignoreInteractiveSignals = false
        /// Nil keeps agentpen's own environment.
        public var env: [EnvironmentVariable]? = nil
        public init() {}
    }

    /// Starts `argv[0]` (an absolute path). Throws with the exec error (ENOENT, EACCES …).
    public static func start(_ argv: [String], _ options: Options = Options()) throws(SystemError) -> pid_t {
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv: [UnsafeMutablePointer<CChar>?]? = options.env.map { $0.map { strdup($0.entry) } + [nil] }
        defer {
            cArgs.forEach { free($0) }
            cEnv?.forEach { free($0) }
        }
        var maps = options.fds.map { ap_fd_map(src: $0.src, dst: $0.dst) }
        var flags: Int32 = 0
        if options.dieWithParent { flags |= Int32(AP_SPAWN_PDEATHSIG) }
        if options.ignoreInteractiveSignals { flags |= Int32(AP_SPAWN_IGNORE_INTERACTIVE) }
        let pid: pid_t = cArgs.withUnsafeBufferPointer { args in
            maps.withUnsafeMutableBufferPointer { m in
                if let cEnv {
                    return cEnv.withUnsafeBufferPointer { e in
                        ap_spawn(argv[0], args.baseAddress, e.baseAddress, m.baseAddress, Int32(m.count), flags)
                    }
                }
                return ap_spawn(argv[0], args.baseAddress, nil, m.baseAddress, Int32(m.count), flags)
            }
        }
        if pid < 0 { throw SystemError("exec", argv[0], errno: -pid) }
        return pid
    }

    /// Waits for `pid`; returns the shell-style status (exit code, or 128+signal).
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return 125 }
        }
        return shellStatus(status)
    }

    public static func shellStatus(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        if sig == 0 { return (status >> 8) & 0xff }
        return 128 + sig
    }

    /// Runs a program to completion, capturing its output (for probes and nft).
    public static func run(_ argv: [String], input: String? = nil, env: [EnvironmentVariable]? = nil,
                           extraFDs: [(src: Int32, dst: Int32)] = []) -> (status: Int32, output: String) {
        var fds: [Int32] = [0, 0]
        guard ap_pipe2(&fds, AP_O_CLOEXEC) == 0 else { return (125, "pipe failed") }
        let outRead = Descriptor(fds[0]), outWrite = Descriptor(fds[1])
        guard ap_pipe2(&fds, AP_O_CLOEXEC) == 0 else { return (125, "pipe failed") }
        let inRead = Descriptor(fds[0]), inWrite = Descriptor(fds[1])
        var o = Options()
        o.env = env
        o.fds = [(inRead.raw, 0), (outWrite.raw, 1), (outWrite.raw, 2)] + extraFDs
        let pid: pid_t
        do { pid = try start(argv, o) } catch {
            return (error.errno == ENOENT ? 127 : 126, error.description)
        }
        // Only the child holds these now; the output ends when it exits.
        outWrite.close()
        inRead.close()
        if let input {
            _ = input.utf8CString.withUnsafeBufferPointer { write(inWrite.raw, $0.baseAddress, $0.count - 1) }
        }
        inWrite.close()
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = read(outRead.raw, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if out.count < 1 << 20 { out += buf[..<n] }
        }
        outRead.close()
        return (wait(pid), String(decoding: out, as: UTF8.self))
    }
}

/// An anonymous in-memory file holding `content`, positioned at its start:
/// bubblewrap reads generated files and the seccomp program from these.
public func memoryFile(_ name: String, _ bytes: [UInt8]) throws(SystemError) -> Int32 {
    let created = ap_memfd_create(name, UInt32(AP_MFD_CLOEXEC))
    guard created >= 0 else { throw SystemError("memfd_create", name, result: Int(created)) }
    let file = Descriptor(created)
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { write(file.raw, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; let e = errno; throw SystemError("write", name, errno: e) }
        off += n
    }
    lseek(file.raw, 0, SEEK_SET)
    return file.take()
}
