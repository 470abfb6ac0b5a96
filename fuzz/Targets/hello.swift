// libFuzzer target: the proxy's ClientHello reassembly and parse (hostile bytes
// from the sandbox). Built with Sources/AgentpenPolicy's ClientHello.swift,
// HostPattern.swift and AddressPolicy.swift into one module; see fuzz/run.sh.
//
// Checks beyond "no crash": feeding the same bytes in chunks (sizes taken from
// the input itself) gives the same answer as one parse, the work stays linear,
// and a name is only ever one the allowlist syntax accepts.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHello(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let whole = ClientHello.parse(bytes)
    if case .serverName(let name) = whole.outcome {
        guard let p = try? HostPattern(name), p.name == name, !p.isWildcard else {
            fatalError("ClientHello yielded a name the allowlist syntax refuses: \(Array(name.utf8))")
        }
    }
    if isAccepted(whole) && (whole.length <= 0 || whole.length > size) {
        fatalError("ClientHello length \(whole.length) for \(size) input bytes")
    }
    // The same stream in chunks: 1..16 bytes, chosen by the bytes themselves.
    var r = ClientHello.Reassembler()
    var i = 0
    var chunked = ClientHello(.needMore)
    while i < size && chunked.outcome == .needMore {
        let k = min(size - i, Int(bytes[i] & 0x0f) + 1)
        chunked = r.feed(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + k)]))
        i += k
    }
    if chunked != whole {
        fatalError("chunked reassembly \(chunked) differs from one parse \(whole)")
    }
    if r.bytesExamined > 2 * size + 64 || r.bodyParses > 1 {
        fatalError("reassembly work \(r.bytesExamined) for \(size) bytes, \(r.bodyParses) parses")
    }
    return 0
}

private func isAccepted(_ h: ClientHello) -> Bool {
    switch h.outcome {
    case .serverName, .noServerName: return true
    default: return false
    }
}
