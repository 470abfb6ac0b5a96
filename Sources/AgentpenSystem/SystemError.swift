import Glibc

/// The one errno error type of agentpen: which call failed, on what, and the
/// errno it got. The kernel edge (AgentpenKernel), the proxy (AgentpenProxy,
/// as `SocketError`) and the executable all throw it.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
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

    /// The proxy's spelling: what was attempted (call and subject in one) and errno.
    public init(_ operation: String, _ code: Int32) {
        self.init(operation, errno: code)
    }

    public var description: String {
        let what = subject.isEmpty ? call : "\(call) \(subject)"
        return "\(what): \(String(cString: strerror(errno)))"
    }
}
