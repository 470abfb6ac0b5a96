// libFuzzer target: the NFLOG records the namespace helper reads from the
// firewall's refusing rules (each carries the start of a packet the sandbox
// sent), and the firewall counters' nfnetlink dump read the same way
// (NftCounterDump, on NetlinkFraming). Built with Refusals.swift, NetlinkFraming.swift,
// NftCounterDump.swift, ByteCursor.swift, DNSMessage.swift, HostPattern.swift and
// AddressPolicy.swift; see fuzz/run.sh.
//
// Checks beyond "no crash": at most one flow per netlink message (a message
// is at least 16 bytes), a port only for TCP and UDP, a DNS query name only for
// UDP to port 53 and never longer than a DNS name can be.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNFLog(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let batch = NFLog.parse(bytes)
    if batch.flows.count > bytes.count / 16 { fatalError("\(batch.flows.count) flows from \(bytes.count) bytes") }
    for f in batch.flows {
        if f.port != nil && f.proto != .tcp && f.proto != .udp { fatalError("a port on \(f.proto)") }
        if let q = f.dnsQuery, f.proto != .udp || f.port != 53 || q.utf8.count > 255 { fatalError("query \(q) on \(f)") }
        _ = (f.subject, f.reason, f.details)
    }
    // The packet parser alone, on the raw bytes.
    _ = NFLog.flow(fromPacket: bytes)
    // The counter dump: at most one counter per message, each of the table asked for.
    let dump = NftCounterDump.parse(bytes, table: "agentpen")
    if dump.counters.count > bytes.count / 16 { fatalError("\(dump.counters.count) counters from \(bytes.count) bytes") }
    return 0
}
