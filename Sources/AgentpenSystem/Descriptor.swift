import Glibc

/// An open file descriptor that this value owns. It is closed exactly once:
/// when the value goes out of scope, or earlier by `close()`, unless ownership
/// is handed on with `take()`. Noncopyable, so two owners cannot both close it
/// and a closed one cannot be used again (the compiler refuses both).
public struct Descriptor: ~Copyable, Sendable {
    /// The descriptor number, for calls that take one. Valid while self lives.
    public let raw: Int32

    /// Takes ownership of an open descriptor.
    public init(_ raw: Int32) {
        precondition(raw >= 0, "Descriptor of \(raw)")
        self.raw = raw
    }

    /// Gives up ownership: the caller now closes the number, or hands it on.
    public consuming func take() -> Int32 {
        let r = raw
        discard self
        return r
    }

    /// Closes now rather than at the end of the scope: 0, or the errno of
    /// close(2) for a caller that must know the data reached the file.
    @discardableResult
    public consuming func close() -> Int32 {
        let rc = Glibc.close(raw)
        let e = rc == 0 ? 0 : errno
        discard self
        return e
    }

    deinit {
        _ = Glibc.close(raw)
    }
}

extension Descriptor {
    /// openat(2) of `path` relative to `dir` (AT_FDCWD: the working
    /// directory), owned; nil with errno set when it fails.
    public static func open(at dir: Int32 = AT_FDCWD, _ path: String, _ flags: Int32, mode: mode_t = 0) -> Descriptor? {
        let fd = Glibc.openat(dir, path, flags, mode)
        return fd >= 0 ? Descriptor(fd) : nil
    }
}
