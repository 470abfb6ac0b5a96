import Foundation
import Testing
import AgentpenEvents

/// The text of agentpen's own subjects and detail values ("(no SNI)",
/// "firewall", "(no reply)") is written once, where `Event.Subject` and the
/// detail types render it. A caller that spells the text again (instead of
/// passing the typed value) would drift from it unnoticed, and a sandbox can
/// send the same text as a name: this scan of the sources catches it.
@Suite struct SentinelTextTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources")

    /// Where the renderings live; the only files allowed to spell them.
    static let renderingFiles: Set<String> = ["AgentpenEvents/EventSubject.swift"]

    /// Each sentinel as a Swift literal would start: the opening quote, then the text.
    static let literals: [String] = {
        let fixed: [Event.Subject] = [.noServerName, .malformedQuery, .forwarderHeader, .firewall, .eventStream,
                                      .refusedFlows]
        var out = fixed.map { "\"\($0.description)\"" }
        out += [Event.DNSAnswer.noData.description, Event.DNSRefusal.noReply.description].map { "\"\($0)\"" }
        // The subjects with a value: their fixed prefix, up to the interpolation.
        let marker = "\u{1}"
        for s in [Event.Subject.client(endpoint: marker)] {
            out.append("\"" + s.description.prefix { String($0) != marker })
        }
        out.append("\"" + Event.Subject.publishedPort(7).description.dropLast())
        return out
    }()

    @Test func sentinelTextIsWrittenOnlyWhereItIsRendered() throws {
        let root = Self.sources.path
        let files = try #require(FileManager.default.enumerator(atPath: root)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") }
        #expect(files.count > 50, "the scan did not find the sources under \(root)")
        var found: [String] = []
        for file in files where !Self.renderingFiles.contains(file) {
            let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            for literal in Self.literals where text.contains(literal) {
                found.append("\(file): \(literal)")
            }
        }
        #expect(found.isEmpty, "sentinel text spelled outside its rendering; pass the typed value:\n\(found.joined(separator: "\n"))")
    }
}
