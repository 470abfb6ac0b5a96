import Testing
@testable import AgentpenPolicy

@Suite struct AddressPolicyTests {
    func ip(_ s: String) -> IPAddress {
        guard let a = IPAddress(s) else { fatalError("bad test address \(s)") }
        return a
    }

    @Test func parsesAndPrints() {
        #expect(IPAddress("1.2.3.4")?.bytes == [1, 2, 3, 4])
        #expect(IPAddress("::1")?.description == "::1")
        #expect(IPAddress("2001:DB8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress("::ffff:1.2.3.4")?.description == "::ffff:1.2.3.4")
        #expect(IPAddress("fe80::")?.description == "fe80::")
        #expect(IPAddress("1:2:3:4:5:6:7:8")?.description == "1:2:3:4:5:6:7:8")
        #expect(IPAddress("64:ff9b::8.8.8.8")?.description == "64:ff9b::808:808")
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", " 1.2.3.4", ":::", "1::2::3",
                    "1:2:3:4:5:6:7:8:9", "12345::", "fe80::1%eth0", "0x7f000001", "2130706433", "::g"] {
            #expect(IPAddress(bad) == nil, "\(bad.debugDescription)")
        }
    }

    @Test(arguments: [
        ("8.8.8.8", true), ("1.1.1.1", true), ("2606:4700::1111", true), ("2a00:1450:4001::200e", true),
        ("64:ff9b::8.8.8.8", true), ("2002:808:808::1", true), ("::ffff:8.8.8.8", true),
        // Beside them, the refused neighbours: the same forms wrapping a private,
        // loopback or metadata address, so a vet that allowed everything fails here.
        ("10.0.0.1", false), ("127.0.0.1", false), ("169.254.169.254", false), ("fd0c::1", false),
        ("64:ff9b::a00:1", false), ("2002:7f00:1::", false), ("::ffff:10.0.0.1", false), ("::ffff:127.0.0.1", false),
    ])
    func publicAddressesAreAllowedAndOnlyThey(_ s: String, _ ok: Bool) {
        #expect(AddressPolicy.vet(ip(s), allowPrivate: false).isAllowed == ok, "\(s)")
    }

    @Test(arguments: [
        ("127.0.0.1", AddressClass.loopback), ("127.255.255.254", .loopback), ("::1", .loopback),
        ("0.0.0.0", .unspecified), ("0.1.2.3", .unspecified), ("::", .unspecified),
        ("169.254.169.254", .linkLocal), ("169.254.0.1", .linkLocal), ("fe80::1", .linkLocal), ("febf::1", .linkLocal),
        ("224.0.0.1", .multicast), ("239.255.255.250", .multicast), ("ff02::1", .multicast),
        ("255.255.255.255", .broadcast),
        // Embedded IPv4 inherits the class of the embedded address.
        ("::ffff:127.0.0.1", .loopback), ("::ffff:169.254.169.254", .linkLocal), ("::127.0.0.1", .loopback),
        ("64:ff9b::7f00:1", .loopback), ("2002:7f00:1::", .loopback), ("2002:a9fe:a9fe::1", .linkLocal),
        ("::ffff:0.0.0.0", .unspecified),
    ])
    func alwaysRefused(_ s: String, _ cls: AddressClass) {
        #expect(AddressPolicy.classify(ip(s)) == cls)
        #expect(!AddressPolicy.vet(ip(s), allowPrivate: false).isAllowed)
        #expect(!AddressPolicy.vet(ip(s), allowPrivate: true).isAllowed, "\(s) must stay refused with --allow-private")
    }

    @Test(arguments: [
        "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255",
        "198.18.0.1", "198.19.255.255", "192.0.2.1", "198.51.100.7", "203.0.113.9", "240.0.0.1", "254.1.1.1",
        "192.0.0.8", "fd0c::1", "fc00::1", "2001:db8::1", "::ffff:10.0.0.1", "::ffff:198.18.0.5",
        "64:ff9b::a00:1", "2002:c0a8:101::1", "fec0::1", "2001::1", "3fff::1", "64:ff9b:1::1", "4000::1", "100::1",
    ])
    func privateRefusedUnlessAllowed(_ s: String) {
        guard case .privateUse = AddressPolicy.classify(ip(s)) else {
            Issue.record("\(s) is \(AddressPolicy.classify(ip(s)))"); return
        }
        guard case .refused(let why) = AddressPolicy.vet(ip(s), allowPrivate: false) else {
            Issue.record("\(s) allowed"); return
        }
        #expect(why.contains("--allow-private"))
        #expect(AddressPolicy.vet(ip(s), allowPrivate: true).isAllowed)
    }

    @Test func rangeEdges() {
        for s in ["172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0", "198.17.255.255", "198.20.0.0",
                  "9.255.255.255", "11.0.0.0", "223.255.255.255", "169.253.255.255", "126.255.255.255", "128.0.0.0",
                  "1.0.0.0"] {
            #expect(AddressPolicy.classify(ip(s)) == .publicUnicast, "\(s)")
        }
    }

    @Test func reasonsNameTheProblem() {
        guard case .refused(let why) = AddressPolicy.vet(ip("169.254.169.254"), allowPrivate: true) else {
            Issue.record("169.254.169.254 allowed"); return
        }
        #expect(why.contains("metadata"))
        guard case .refused(let why2) = AddressPolicy.vet(ip("::ffff:127.0.0.1"), allowPrivate: false) else {
            Issue.record("::ffff:127.0.0.1 allowed"); return
        }
        #expect(why2.contains("IPv4-mapped") && why2.contains("loopback"))
    }
}
