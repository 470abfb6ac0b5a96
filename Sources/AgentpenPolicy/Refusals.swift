// Refused flows as plain values: what one is called for the user, what the
// firewall's NFLOG records say (parsed as hostile bytes: the packet inside each
// one is the sandbox's own), and the bound on how many are itemised. Pure; the
// catch-all listener and the NFLOG reader (AgentpenProxy) feed it.

/// One flow the sandbox tried to make and agentpen refused.
public struct RefusedFlow: Hashable, Sendable {
    public enum Proto: String, Hashable, Sendable {
        case tcp, udp, icmp, icmpv6
        /// Another IP protocol; its number is in `protocolNumber`.
        case other
    }

    public var proto: Proto
    public var address: IPAddress
    /// TCP and UDP: the destination port.
    public var port: UInt16?
    /// ICMP and ICMPv6: the message type ("echo-request", "type 13").
    public var icmpType: String?
    public var protocolNumber: UInt8
    /// UDP to port 53 whose payload reads as a DNS query: the name asked for.
    public var dnsQuery: String?
    /// The allowed name the address stands for, when one does.
    public var name: String?

    public init(proto: Proto, address: IPAddress, port: UInt16? = nil, icmpType: String? = nil,
                protocolNumber: UInt8 = 0, dnsQuery: String? = nil, name: String? = nil) {
        self.proto = proto
        self.address = address
        self.port = port
        self.icmpType = icmpType
        self.protocolNumber = protocolNumber
        self.dnsQuery = dnsQuery
        self.name = name
    }

    /// "198.18.0.10:8080", "[fd0c::10]:8080", or the bare address without a port.
    public var destination: String {
        guard let port else { return address.description }
        return address.endpoint(port: port)
    }

    /// The firewall counter that counted this flow's packets when the firewall
    /// dropped it (`Firewall.counterNames`).
    public var counterName: String {
        switch proto {
        case .tcp: return "blocked_tcp"
        case .udp: return "blocked_udp"
        case .icmp, .icmpv6: return "blocked_icmp"
        case .other: return "blocked_other"
        }
    }

    /// What the summary and the live line call it: "tcp 198.18.0.10:8080",
    /// "icmp 198.18.0.10", "ip-proto 132 198.18.0.10".
    public var subject: String {
        switch proto {
        case .other: return "ip-proto \(protocolNumber) \(destination)"
        default: return "\(proto.rawValue) \(destination)"
        }
    }

    public var reason: String {
        let named = name.map { " (\($0))" } ?? ""
        switch proto {
        case .tcp:
            return "refused\(named): only TLS to an allowed name leaves the sandbox, through agentpen's proxy"
        case .udp:
            if let dnsQuery {
                return "DNS query for \(dnsQuery) to an outside resolver refused: the sandbox's resolver answers allowed names"
            }
            return "refused\(named): no UDP leaves the sandbox (QUIC falls back to TCP)"
        case .icmp, .icmpv6:
            return "refused\(named): no ICMP leaves the sandbox"
        case .other:
            return "refused\(named): only TCP to the proxy leaves the sandbox"
        }
    }

    /// The facts, for --log: protocol, address, port, and what else is known.
    public var details: [String: String] {
        var d = ["protocol": proto.rawValue, "address": address.description]
        if let port { d["port"] = String(port) }
        if let icmpType { d["icmp-type"] = icmpType }
        if proto == .other { d["ip-protocol"] = String(protocolNumber) }
        if let dnsQuery { d["query"] = dnsQuery }
        if let name { d["name"] = name }
        return d
    }
}

/// Which refused flows are itemised: the first attempt at each destination is,
/// up to `distinctLimit` destinations; repeats and destinations beyond the
/// limit are only counted. So a sandbox hammering one port or sweeping every
/// port costs a bounded number of events and bounded memory.
public struct RefusalTally: Sendable {
    public static let distinctLimit = 1000

    /// Destinations seen, in the order first seen, with the repeats after the first.
    public private(set) var order: [RefusedFlow] = []
    private var repeats: [String: Int] = [:]
    /// Attempts at destinations beyond the limit.
    public private(set) var unitemised = 0
    public let limit: Int

    public init(limit: Int = RefusalTally.distinctLimit) { self.limit = limit }

    /// Counts `flow`; true when it is to be reported now (the first at its destination).
    public mutating func note(_ flow: RefusedFlow) -> Bool {
        let key = flow.subject
        if let n = repeats[key] {
            repeats[key] = n + 1
            return false
        }
        guard repeats.count < limit else {
            unitemised += 1
            return false
        }
        repeats[key] = 0
        order.append(flow)
        return true
    }

    /// Each destination attempted more than once, with the attempts after the first.
    public var repeated: [(flow: RefusedFlow, repeats: Int)] {
        order.compactMap { f in repeats[f.subject].flatMap { $0 > 0 ? (f, $0) : nil } }
    }
}

/// NFLOG (nfnetlink_log) records of the firewall's refusing rules, and the one
/// message that binds a log group. Netlink headers are in host byte order
/// (little-endian on the architectures agentpen runs on), the group number and
/// the packet in network order.
public enum NFLog {
    /// The group the firewall's `log group` statements send to.
    public static let group: UInt16 = 11
    /// Bytes of each refused packet copied into its record: the IP and UDP
    /// headers and a DNS question up to the longest name.
    public static let snapLength = 512

    static let subsysULOG: UInt16 = 4
    static let msgPacket: UInt16 = 0, msgConfig: UInt16 = 1
    static let nlmsgError: UInt16 = 2
    static let attrPayload: UInt16 = 9
    static let cfgCmd: UInt16 = 1, cmdBind: UInt8 = 1

    /// `NFULNL_MSG_CONFIG` with `NFULA_CFG_CMD` = bind, for `group`, asking for an ack.
    public static func bindMessage(group: UInt16, sequence: UInt32) -> [UInt8] {
        func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)] }
        let attr = le16(5) + le16(cfgCmd) + [cmdBind, 0, 0, 0]          // nla_len 5, padded to 8
        let body = [0, 0, UInt8(group >> 8), UInt8(group & 0xff)] + attr // nfgenmsg: AF_UNSPEC, v0, res_id (network order)
        let length = UInt32(16 + body.count)
        let flags: UInt16 = 0x1 | 0x4                                     // NLM_F_REQUEST | NLM_F_ACK
        return le32(length) + le16(subsysULOG << 8 | msgConfig) + le16(flags) + le32(sequence) + le32(0) + body
    }

    /// What one receive buffer holds.
    public struct Batch: Equatable, Sendable {
        public var flows: [RefusedFlow] = []
        /// Records whose packet could not be read (counted, not itemised).
        public var unreadable = 0
        /// Netlink errors the kernel sent (an ack is error 0 and not counted): their errno values.
        public var errors: [Int32] = []
    }

    /// Parses one datagram from the NFLOG socket: at most `maxMessages` netlink
    /// messages, every length checked against what is left; reading stops at the
    /// first message that does not fit.
    public static func parse(_ buffer: [UInt8], maxMessages: Int = 256) -> Batch {
        var out = Batch()
        let (messages, cut) = NetlinkFraming.messages(buffer, max: maxMessages)
        for m in messages {
            if m.type == nlmsgError {
                if let e = NetlinkFraming.errno(buffer, m) { out.errors.append(e) }
            } else if m.type == subsysULOG << 8 | msgPacket {
                if let flow = record(buffer, m.body) { out.flows.append(flow) }
                else { out.unreadable += 1 }
            }
        }
        if cut { out.unreadable += 1 }
        return out
    }

    /// One NFULNL_MSG_PACKET body (nfgenmsg, then attributes): the flow of its payload.
    static func record(_ b: [UInt8], _ body: Range<Int>) -> RefusedFlow? {
        guard body.count >= 4 else { return nil }
        let payload = NetlinkFraming.attributes(b, in: (body.lowerBound + 4)..<body.upperBound).list.first { $0.type == attrPayload }
        return payload.flatMap { flow(fromPacket: Array(b[$0.payload])) }
    }

    /// The destination of an IPv4 or IPv6 packet (the first bytes of it suffice).
    public static func flow(fromPacket p: [UInt8]) -> RefusedFlow? {
        guard let first = p.first else { return nil }
        var proto: UInt8
        var l4: Int
        let address: IPAddress
        var fragment = false
        switch first >> 4 {
        case 4:
            let ihl = Int(first & 0x0f) * 4
            guard ihl >= 20, p.count >= ihl else { return nil }
            proto = p[9]
            address = IPAddress(bytes: Array(p[16..<20]))!
            fragment = (Int(p[6] & 0x1f) << 8 | Int(p[7])) != 0
            l4 = ihl
        case 6:
            guard p.count >= 40 else { return nil }
            proto = p[6]
            address = IPAddress(bytes: Array(p[24..<40]))!
            l4 = 40
            // Extension headers, a bounded number of them.
            var hops = 0
            while [0, 43, 44, 60].contains(proto), hops < 8 {
                hops += 1
                guard l4 + 8 <= p.count else { return RefusedFlow(proto: .other, address: address, protocolNumber: proto) }
                let next = p[l4]
                if proto == 44 {
                    fragment = (Int(p[l4 + 2]) << 8 | Int(p[l4 + 3])) & ~7 != 0
                    l4 += 8
                } else {
                    l4 += (Int(p[l4 + 1]) + 1) * 8
                }
                proto = next
            }
        default:
            return nil
        }
        let haveHeader = !fragment && l4 + 4 <= p.count
        switch proto {
        case 6, 17:
            let port = haveHeader ? UInt16(p[l4 + 2]) << 8 | UInt16(p[l4 + 3]) : nil
            var flow = RefusedFlow(proto: proto == 6 ? .tcp : .udp, address: address, port: port, protocolNumber: proto)
            if proto == 17, port == 53, l4 + 8 < p.count,
               case .query(let q) = DNSMessage.parseQuery(Array(p[(l4 + 8)...])), q.question.isPlausibleHostName {
                flow.dnsQuery = q.question.name
            }
            return flow
        case 1, 58:
            let type = haveHeader ? p[l4] : nil
            let echo: UInt8 = proto == 1 ? 8 : 128
            return RefusedFlow(proto: proto == 1 ? .icmp : .icmpv6, address: address,
                               icmpType: type.map { $0 == echo ? "echo-request" : "type \($0)" }, protocolNumber: proto)
        default:
            return RefusedFlow(proto: .other, address: address, protocolNumber: proto)
        }
    }
}
