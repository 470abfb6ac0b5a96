import AgentpenEvents
import AgentpenPolicy
import AgentpenSystem
import CShim
import Dispatch
import FoundationEssentials
import Glibc

/// Answers DNS over UDP inside the sandbox's namespace: allowed names get the
/// forwarder's address, everything else NXDOMAIN. It never sends a packet
/// anywhere but back to the asker, so DNS cannot carry data out.
/// `@unchecked Sendable`: `sockets` is only touched on the serial `queue`
/// (`start` and `stop` go through `queue.sync`; `serve` runs there).
public final class DNSResponder: @unchecked Sendable {
    let allowlist: Allowlist
    let events: any EventSink
    let answers: DNSMessage.AnswerConfig
    /// Per-name addresses (the direct hop): each name's A record is its own.
    let names: NameTable?
    private let queue = DispatchQueue(label: "agentpen.dns")
    private var sockets: [(fd: Int32, watch: Watch)] = []

    public init(allowlist: Allowlist, events: any EventSink, answers: DNSMessage.AnswerConfig = .init(),
                names: NameTable? = nil) {
        self.allowlist = allowlist
        self.events = events
        self.answers = answers
        self.names = names
    }

    /// Serves on a bound UDP socket made elsewhere (inside the sandbox's
    /// namespace, handed over by the namespace helper); now the responder's.
    public func adopt(_ socket: consuming Descriptor) throws {
        try Sock.check(ap_set_nonblocking(socket.raw), "O_NONBLOCK")
        serve(owning: socket)
    }

    private func serve(owning socket: consuming Descriptor) {
        let fd = socket.raw
        let w = Watch.read(owning: socket, queue: queue, group: nil) { [weak self] in self?.serve(fd) }
        queue.sync {
            sockets.append((fd, w))
            w.enable()
        }
    }

    /// Binds UDP `bindAddress:port` (0 picks a free port) and returns the port.
    /// Call once per address (e.g. 127.0.0.1 and ::1).
    @discardableResult
    public func start(bindAddress: String = "127.0.0.1", port: UInt16 = 53) throws -> UInt16 {
        let address = try Sock.parseAddress(bindAddress)
        let bound = try Sock.bindUDP(address, port: port)
        let port = bound.port
        serve(owning: bound.take())
        return port
    }

    public func stop() {
        queue.sync {
            for s in sockets { s.watch.cancel() }
            sockets = []
        }
    }

    private func serve(_ fd: Int32) {
        dispatchPrecondition(condition: .onQueue(queue))
        var packet = [UInt8](repeating: 0, count: 1500)
        var from = [UInt8](repeating: 0, count: 16)
        // Bounded per wake-up; the watch runs again if more is queued.
        for _ in 0..<64 {
            var fromLen: Int32 = 0
            var fromPort: UInt16 = 0
            let n = packet.withUnsafeMutableBytes { ap_recvfrom_ip(fd, $0.baseAddress, $0.count, &from, &fromLen, &fromPort) }
            if n < 0 { return }
            let names = self.names
            let reply = DNSMessage.reply(to: Array(packet[0..<n]), allowlist: allowlist, config: answers,
                                         unlisted: names?.unlisted ?? .refuse, address: names.map { t in { t.address(for: $0) } })
            record(reply.decision)
            if let bytes = reply.bytes, fromLen > 0 {
                _ = bytes.withUnsafeBytes { ap_sendto_ip(fd, $0.baseAddress, $0.count, from, fromLen, fromPort) }
            }
        }
    }

    private static func typeName(_ t: UInt16) -> String {
        switch t {
        case DNSMessage.typeA: return "A"
        case DNSMessage.typeAAAA: return "AAAA"
        case DNSMessage.typeANY: return "ANY"
        default: return "TYPE\(t)"
        }
    }

    private func record(_ d: DNSMessage.Decision) {
        events.record(Self.event(for: d, unlisted: names?.unlisted ?? .refuse))
    }

    /// The event a decision is logged as.
    static func event(for d: DNSMessage.Decision, unlisted: UnlistedNames = .refuse, time: Date = Date()) -> Event {
        switch d {
        case .answered(let name, let type, let pattern, let addresses):
            return Event(.dnsAnswered, subject: .name(name), reason: "allowed by \(pattern)",
                         details: ["type": typeName(type),
                                   "answer": Event.DNSAnswer(addresses.map(\.description)).description],
                         time: time)
        case .answeredUnlisted(let name, let type, let addresses):
            return Event(.dnsAnswered, subject: .name(name),
                         reason: "not in the allowlist; answered with its own address ("
                             + (unlisted == .pass ? "--audit: connections go through" : "--ask: connections wait for a decision") + ")",
                         details: ["type": typeName(type), "unlisted": "true",
                                   "answer": Event.DNSAnswer(addresses.map(\.description)).description],
                         time: time)
        case .nxDomain(let name, let why):
            var details = ["rcode": Event.DNSRefusal.rcode("NXDOMAIN").description]
            details["permit"] = Permit.allow(name)
            return Event(.dnsRefused, subject: .name(name), reason: why, details: details, time: time)
        case .error(let rcode, let why):
            return Event(.dnsRefused, subject: .malformedQuery, reason: why,
                         details: ["rcode": Event.DNSRefusal.rcode("\(rcode)").description], time: time)
        case .dropped(let why):
            return Event(.dnsRefused, subject: .malformedQuery, reason: why,
                         details: ["rcode": Event.DNSRefusal.noReply.description], time: time)
        }
    }
}
