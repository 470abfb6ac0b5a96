import AgentpenPolicy
import Testing

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String, _ len: UInt8) -> IPPrefix { IPPrefix(ip(s), length: len)! }

/// The namespace as pasta leaves it (what NetlinkTests builds with iproute2):
/// lo #1, ap0 #2 with 198.18.5.2/24 and fd0c::2/64.
private let lo = NetworkLink(index: 1, name: "lo", isUp: true, isLoopback: true)
private let ap0 = NetworkLink(index: 2, name: "ap0", isUp: true, isLoopback: false)
private let v4Default = RouteInfo(family: .ipv4, destination: nil, gateway: ip("198.18.5.1"),
                                  interfaceIndex: 2, scope: .universe, table: RouteInfo.mainTable)
private let v4Subnet = RouteInfo(family: .ipv4, destination: net("198.18.5.0", 24), gateway: nil,
                                 interfaceIndex: 2, scope: .link, table: RouteInfo.mainTable)
private let v6Default = RouteInfo(family: .ipv6, destination: nil, gateway: ip("fd0c::1"),
                                  interfaceIndex: 2, scope: .universe, table: RouteInfo.mainTable)
private let kept = RouteInfo(family: .ipv4, destination: net("198.18.5.1", 32), gateway: nil,
                             interfaceIndex: 2, scope: .link, table: RouteInfo.mainTable)
private let v6Loopback = RouteInfo(family: .ipv6, destination: net("::1", 128), gateway: nil,
                                   interfaceIndex: 1, scope: .universe, table: RouteInfo.mainTable)

@Suite struct RoutePolicyTests {
    @Test func prefixLengthIsBoundedByTheFamily() {
        #expect(IPPrefix(ip("10.0.0.0"), length: 33) == nil)
        #expect(IPPrefix(ip("fd0c::"), length: 129) == nil)
        #expect(IPPrefix(ip("fd0c::"), length: 128) != nil)
        #expect(IPPrefix(host: ip("198.18.5.1")).description == "198.18.5.1/32")
        #expect(kept.description == "inet 198.18.5.1/32 dev #2 scope 253 table 254")
        #expect(v6Default.description == "inet6 default via fd0c::1 dev #2 scope 0 table 254")
    }

    @Test func uplinkWaitsForAnInterfaceARouteAndAnAddress() {
        let addresses: [Int32: [IPAddress]] = [2: [ip("198.18.5.2")]]
        // Nothing up but loopback.
        guard case .waiting(let why) = RoutePolicy.uplink(links: [lo, NetworkLink(index: 2, name: "ap0", isUp: false,
                                                                                     isLoopback: false)],
                                                          routes: [v4Default], ipv4Addresses: addresses) else {
            Issue.record("an interface that is down was taken as the uplink"); return
        }
        #expect(why == "no interface other than loopback is up")
        // Up, but no IPv4 default route yet (only IPv6's and a subnet route).
        #expect(RoutePolicy.uplink(links: [lo, ap0], routes: [v4Subnet, v6Default], ipv4Addresses: addresses)
                == .waiting("interfaces up: ap0; no IPv4 default route through one with an address"))
        // A default route, but the interface has no IPv4 address yet.
        #expect(RoutePolicy.uplink(links: [lo, ap0], routes: [v4Default], ipv4Addresses: [:])
                == .waiting("interfaces up: ap0; no IPv4 default route through one with an address"))
        // A default route through an interface that is not up (or loopback) does not count.
        let viaLo = RouteInfo(family: .ipv4, destination: nil, gateway: ip("127.0.0.2"), interfaceIndex: 1,
                              scope: .universe, table: RouteInfo.mainTable)
        #expect(RoutePolicy.uplink(links: [lo, ap0], routes: [viaLo], ipv4Addresses: [1: [ip("127.0.0.1")]])
                == .waiting("interfaces up: ap0; no IPv4 default route through one with an address"))
        // A default route in another table does not count.
        var otherTable = v4Default
        otherTable.table = 100
        #expect(RoutePolicy.uplink(links: [lo, ap0], routes: [otherTable], ipv4Addresses: addresses)
                != .configured(Uplink(interfaceIndex: 2, gateway: ip("198.18.5.1"), address: ip("198.18.5.2"))))
        // Configured.
        #expect(RoutePolicy.uplink(links: [lo, ap0], routes: [v6Default, v4Subnet, v4Default],
                                   ipv4Addresses: [2: [ip("198.18.5.2"), ip("198.18.5.3")]])
                == .configured(Uplink(interfaceIndex: 2, gateway: ip("198.18.5.1"), address: ip("198.18.5.2"))))
    }

    @Test func lockDownDeletesEveryMainRouteNotOnLoopback() {
        let loopbacks: Set<Int32> = [1]
        #expect(RoutePolicy.mustDelete(table: RouteInfo.mainTable, nextHopInterfaces: [2], loopbacks: loopbacks))
        // unreachable/blackhole: no next hop at all.
        #expect(RoutePolicy.mustDelete(table: RouteInfo.mainTable, nextHopInterfaces: [], loopbacks: loopbacks))
        // multipath with one hop off loopback.
        #expect(RoutePolicy.mustDelete(table: RouteInfo.mainTable, nextHopInterfaces: [1, 2], loopbacks: loopbacks))
        #expect(!RoutePolicy.mustDelete(table: RouteInfo.mainTable, nextHopInterfaces: [1], loopbacks: loopbacks))
        #expect(!RoutePolicy.mustDelete(table: RouteInfo.localTable, nextHopInterfaces: [2], loopbacks: loopbacks))
    }

    @Test func readBackAcceptsExactlyTheGatewayRoute() {
        let gw = ip("198.18.5.1")
        func verify(_ routes: [RouteInfo]) -> RoutePolicy.LockDownVerdict {
            RoutePolicy.verifyLockedDown(routes, gateway: gw, interfaceIndex: 2, loopbacks: [1])
        }
        #expect(RoutePolicy.keptRoute(gateway: gw, interfaceIndex: 2) == kept)
        #expect(verify([kept]) == .lockedDown)
        #expect(verify([v6Loopback, kept]) == .lockedDown)
        #expect(verify([]) == .missing(kept))
        #expect(verify([v6Loopback]) == .missing(kept))
        #expect(verify([kept, v4Default]) == .unexpected(v4Default))
        #expect(verify([v6Default, kept]) == .unexpected(v6Default))
        #expect(verify([kept, kept]) == .unexpected(kept))
        // Near misses of the kept route are unexpected, not kept.
        var wider = kept
        wider.destination = net("198.18.5.0", 24)
        var viaGateway = kept
        viaGateway.gateway = ip("198.18.5.9")
        var otherInterface = kept
        otherInterface.interfaceIndex = 3
        var universe = kept
        universe.scope = .universe
        let unreachable = RouteInfo(family: .ipv4, destination: net("10.0.0.0", 8), gateway: nil,
                                    interfaceIndex: 0, scope: .universe, table: RouteInfo.mainTable)
        let mpls = RouteInfo(family: .other(28), destination: nil, gateway: nil, interfaceIndex: 2,
                             scope: .universe, table: RouteInfo.mainTable)
        for near in [wider, viaGateway, otherInterface, universe, unreachable, mpls] {
            #expect(verify([near, kept]) == .unexpected(near), "\(near)")
        }
        #expect(verify([wider]) == .unexpected(wider))
    }
}
