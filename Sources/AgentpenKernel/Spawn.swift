import AgentpenPolicy
import AgentpenSystem
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

        /// What agentpen's own children get (the namespace helper, bubblewrap,
        /// pasta): they die with agentpen and ignore the terminal's SIGINT/SIGQUIT.
        public static func supervised(fds: [(src: Int32, dst: Int32)], env: [EnvironmentVariable]?) -> Options {
            var o = Options()
            o.fds = fds
            o.env = env
            o.dieWithParent = true
            o.ignoreInteractiveSignals = true
            return o
        }
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
    public static func run(_ argv: [String], input text: String? = nil, env: [EnvironmentVariable]? = nil,
                           extraFDs: [(src: Int32, dst: Int32)] = []) -> (status: Int32, output: String) {
        let output: Descriptor.Pipe
        do { output = try Descriptor.pipe() } catch { return (125, "pipe failed") }
        let input: Descriptor.Pipe
        do { input = try Descriptor.pipe() } catch { return (125, "pipe failed") }
        let outRead = output.read, inWrite = input.write
        var child = ChildDescriptors()
        child.add(input.read, at: 0)
        let outNumber = output.write.raw
        child.add(output.write, at: 1)
        child.add(borrowing: outNumber, at: 2)
        for fd in extraFDs { child.add(borrowing: fd.src, at: fd.dst) }
        var o = Options()
        o.env = env
        o.fds = child.mapping
        let pid: pid_t
        do { pid = try start(argv, o) } catch {
            return (error.errno == ENOENT ? 127 : 126, error.description)
        }
        // Only the child holds these now; the output ends when it exits.
        child.closeAll()
        if let text {
            _ = text.utf8CString.withUnsafeBufferPointer { write(inWrite.raw, $0.baseAddress, $0.count - 1) }
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

/// Descriptors for a child at the numbers it gets them there
/// (`Spawn.Options.fds`). Owned ones are closed when this ends or by
/// `closeAll` (once the child has its copies, or when set-up fails before the
/// spawn); borrowed ones belong to someone else and must outlive the spawn.
public struct ChildDescriptors: ~Copyable {
    /// Number here → number in the child, in the order added.
    public private(set) var mapping: [(src: Int32, dst: Int32)] = []
    private var owned = DescriptorList()

    public init() {}

    /// `d`, owned from now on, at `dst` in the child.
    public mutating func add(_ d: consuming Descriptor, at dst: Int32) {
        mapping.append((d.raw, dst))
        owned.append(d)
    }

    /// A number owned elsewhere (or added already, for a second number in the
    /// child): lent for the spawn, never closed here.
    public mutating func add(borrowing raw: Int32, at dst: Int32) {
        mapping.append((raw, dst))
    }

    /// Takes over `other`'s descriptors, after this one's.
    public mutating func append(_ other: consuming ChildDescriptors) {
        mapping += other.mapping
        for fd in other.owned.take() { owned.append(Descriptor(fd)) }
    }

    /// Closes the owned ones now (the child has its copies).
    public mutating func closeAll() {
        owned.closeAll()
        mapping = []
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
