import AgentpenEvents
import AgentpenPolicy
import Foundation
import Testing
@testable import AgentpenProxy

/// The DNS responder's events carry typed subjects and detail values, and
/// render the same lines as before they were typed.
@Suite struct DNSEventTests {
    static let time = Date(timeIntervalSince1970: 1_700_000_000)

    @Test func eachDecisionLogsAsBefore() throws {
        let a = try #require(IPAddress("198.18.0.1"))
        let cases: [(DNSMessage.Decision, Event)] = [
            (.answered(name: "api.example.com", type: DNSMessage.typeA, pattern: "*.example.com", addresses: [a]),
             Event(.dnsAnswered, subject: "api.example.com", reason: "allowed by *.example.com",
                   details: ["type": "A", "answer": "198.18.0.1"], time: Self.time)),
            (.answered(name: "api.example.com", type: DNSMessage.typeAAAA, pattern: "*.example.com", addresses: []),
             Event(.dnsAnswered, subject: "api.example.com", reason: "allowed by *.example.com",
                   details: ["type": "AAAA", "answer": "(no data)"], time: Self.time)),
            (.nxDomain(name: "evil.test", reason: "not in the allowlist"),
             Event(.dnsRefused, subject: "evil.test", reason: "not in the allowlist",
                   details: ["rcode": "NXDOMAIN", "permit": "--allow evil.test"], time: Self.time)),
            (.error(.formErr, reason: "no question"),
             Event(.dnsRefused, subject: "(malformed query)", reason: "no question",
                   details: ["rcode": "formErr"], time: Self.time)),
            (.dropped("too short"),
             Event(.dnsRefused, subject: "(malformed query)", reason: "too short",
                   details: ["rcode": "(no reply)"], time: Self.time)),
        ]
        for (decision, expected) in cases {
            #expect(DNSResponder.event(for: decision, time: Self.time) == expected)
        }
    }
}
