import FoundationEssentials
import Glibc

extension Event {
    /// What an event is about, as the code that records it knows it: a name seen
    /// on the wire or on disk, or one of the things agentpen names itself. The
    /// event keeps the rendered text (`subject`, what the log and the summary
    /// print); this enum is where that text is written, once.
    ///
    /// The text of a sentinel is not reserved: a sandboxed process can ask DNS for
    /// "firewall". Nothing decides on `subject`; read `kind` and `details`.
    public enum Subject: Hashable, Sendable, CustomStringConvertible {
        /// A host name, DNS question, path or endpoint, as it was seen.
        case name(String)
        /// A connection blocked before it showed a server name.
        case noServerName
        /// A DNS datagram that could not be read as a query.
        case malformedQuery
        /// A connection to the proxy without agentpen's forwarder header.
        case forwarderHeader
        /// A connection refused as it was accepted, before anything was read.
        case client(endpoint: String)
        /// The sandbox's firewall (what its counters dropped).
        case firewall
        /// The stream of events from the network helper.
        case eventStream
        /// Refused flows counted but not itemised (beyond the distinct-destination bound).
        case refusedFlows
        /// A port published into the sandbox with --publish.
        case publishedPort(UInt16)

        public var description: String {
            switch self {
            case .name(let s): return s
            case .noServerName: return "(no SNI)"
            case .malformedQuery: return "(malformed query)"
            case .forwarderHeader: return "(forwarder header)"
            case .client(let endpoint): return "(client \(endpoint))"
            case .firewall: return "firewall"
            case .eventStream: return "event stream"
            case .refusedFlows: return "refused flows"
            case .publishedPort(let port): return "published port \(port)"
            }
        }
    }

    /// What the DNS responder answered an allowed name with (`details["answer"]`).
    public enum DNSAnswer: Hashable, Sendable, CustomStringConvertible {
        /// The addresses, in the order sent.
        case addresses([String])
        /// No record of the asked type (NODATA).
        case noData

        /// `.noData` when there is nothing to send.
        public init(_ addresses: [String]) { self = addresses.isEmpty ? .noData : .addresses(addresses) }

        public var description: String {
            switch self {
            case .addresses(let a): return a.joined(separator: ",")
            case .noData: return "(no data)"
            }
        }
    }

    /// How the DNS responder answered a refused query (`details["rcode"]`).
    public enum DNSRefusal: Hashable, Sendable, CustomStringConvertible {
        /// A reply with this response code (its name, e.g. "NXDOMAIN", "formErr").
        case rcode(String)
        /// No reply at all (too short to answer, or not a query).
        case noReply

        public var description: String {
            switch self {
            case .rcode(let name): return name
            case .noReply: return "(no reply)"
            }
        }
    }

    public init(_ kind: Kind, subject: Subject, reason: String,
                details: [String: String] = [:], time: Date = Date()) {
        self.init(kind, subject: subject.description, reason: reason, details: details, time: time)
    }
}
