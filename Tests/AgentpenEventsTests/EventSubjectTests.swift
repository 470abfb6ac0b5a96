import Foundation
import Testing
import AgentpenEvents

/// The typed subjects render exactly the text the log, the summary and the
/// end-to-end tests have always seen.
@Suite struct EventSubjectTests {
    @Test(arguments: [
        (Event.Subject.noServerName, "(no SNI)"),
        (.malformedQuery, "(malformed query)"),
        (.client(endpoint: "127.0.0.1:5555"), "(client 127.0.0.1:5555)"),
        (.forwarderHeader, "(forwarder header)"),
        (.firewall, "firewall"),
        (.publishedPort(8080), "published port 8080"),
        (.refusedFlows, "refused flows"),
        (.eventStream, "event stream"),
        (.name("api.example.com"), "api.example.com"),
        (.name("/p/.git/hooks/pre-commit"), "/p/.git/hooks/pre-commit"),
    ])
    func rendersAsBefore(_ subject: Event.Subject, _ text: String) {
        #expect(subject.description == text)
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        let typed = Event(.connectionBlocked, subject: subject, reason: "r", details: ["k": "v"], time: time)
        let plain = Event(.connectionBlocked, subject: text, reason: "r", details: ["k": "v"], time: time)
        #expect(typed == plain)
        #expect(typed.jsonLine() == plain.jsonLine())
    }

    @Test func dnsDetailValuesRenderAsBefore() {
        #expect(Event.DNSAnswer([]) == .noData)
        #expect(Event.DNSAnswer([]).description == "(no data)")
        #expect(Event.DNSAnswer(["198.18.0.1", "fd0c::1"]).description == "198.18.0.1,fd0c::1")
        #expect(Event.DNSRefusal.noReply.description == "(no reply)")
        #expect(Event.DNSRefusal.rcode("NXDOMAIN").description == "NXDOMAIN")
    }
}
