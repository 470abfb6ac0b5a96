// libFuzzer target: the in-namespace DNS responder's parse and reply (every
// datagram the sandbox sends to 127.0.0.1:53). Built with DNSMessage.swift,
// HostPattern.swift and AddressPolicy.swift; see fuzz/run.sh.
//
// Checks beyond "no crash": only a name the allowlist matches is answered,
// a reply is never bigger than a UDP answer can be, and it is a response
// (QR set) so two responders cannot bounce packets forever.
let allowlist = Allowlist([try! HostPattern("allowed.test"), try! HostPattern("*.wild.test")])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDNS(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let message = Array(UnsafeBufferPointer(start: data, count: size))
    let reply = DNSMessage.reply(to: message, allowlist: allowlist)
    if case .answered(let name, _, _, _) = reply.decision, allowlist.match(name) == nil {
        fatalError("answered \(Array(name.utf8)), which the allowlist does not match")
    }
    if let bytes = reply.bytes {
        if bytes.count > 12 + 260 + 4 + 2 * 28 { fatalError("reply of \(bytes.count) bytes") }
        if bytes.count < 12 || bytes[2] & 0x80 == 0 { fatalError("reply is not a DNS response") }
    }
    return 0
}
