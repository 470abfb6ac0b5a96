import Glibc

/// The one error type of the kernel edge: which call failed, on what, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var subject: String
    public var errno: Int32

    public init(_ call: String, _ subject: String = "", errno: Int32) {
        self.call = call
        self.subject = subject
        self.errno = errno
    }

    /// From a shim return value (-errno).
    public init(_ call: String, _ subject: String = "", result: Int) {
        self.init(call, subject, errno: Int32(-result))
    }

    public var description: String {
        let what = subject.isEmpty ? call : "\(call) \(subject)"
        return "\(what): \(String(cString: strerror(errno)))"
    }
}
