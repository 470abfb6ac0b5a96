// libFuzzer target: the event-line decoder agentpen reads the namespace
// helper's stream with, and the sanitizer every decoded name is printed
// through. Built with Sources/AgentpenEvents' Event.swift and
// TerminalText.swift; see fuzz/run.sh.
//
// Checks beyond "no crash": every decoded event re-encodes to a line with no
// raw control, DEL, C1 or bidi character that decodes to the same event, and
// escaped text (from the decoded strings and from the raw input bytes) holds
// no character that TerminalText calls dangerous and no newline.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvents(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let decoder = EventLineDecoder()
    var events: [Event] = []
    // Two chunks, split where the first byte says: lines cross read boundaries.
    let cut = size == 0 ? 0 : Int(bytes[0]) % (size + 1)
    events += decoder.feed(UnsafeRawBufferPointer(rebasing: bytes[0..<cut]))
    events += decoder.feed(UnsafeRawBufferPointer(rebasing: bytes[cut..<size]))
    let check = JSONDecoder()
    check.dateDecodingStrategy = .iso8601
    for e in events {
        let line = e.jsonLine()
        if line.unicodeScalars.contains(where: { TerminalText.isDangerous($0) }) {
            fatalError("log line holds a raw dangerous character: \(Array(line.utf8))")
        }
        guard let back = try? check.decode(Event.self, from: Data(line.utf8)) else {
            fatalError("log line does not decode: \(Array(line.utf8))")
        }
        // Dates round-trip to the second in the log format.
        if back.kind != e.kind || back.subject != e.subject || back.reason != e.reason || back.details != e.details {
            fatalError("log line decodes to another event: \(Array(line.utf8))")
        }
        for text in [e.subject, e.reason] + e.details.flatMap({ [$0.key, $0.value] }) {
            let shown: TerminalText = "\(text)"
            assertSafe(shown.rendered)
        }
    }
    let raw: TerminalText = "\(bytes: bytes)"
    assertSafe(raw.rendered)
    return 0
}

private func assertSafe(_ s: String) {
    if s.unicodeScalars.contains(where: { TerminalText.isDangerous($0) }) {
        fatalError("escaped text holds a dangerous character: \(Array(s.utf8))")
    }
}
