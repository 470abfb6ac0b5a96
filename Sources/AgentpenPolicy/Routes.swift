// The network namespace's routes as plain values, and the decisions over them:
// which interface pasta configured as the uplink, which routes the lock-down
// deletes, and whether what is left is exactly the one route agentpen keeps.
// The kernel edge (AgentpenKernel/Netlink.swift) reads and changes the routing
// table with libnl and asks these functions what to do; nothing here touches the
// kernel, so every rule is unit-tested with plain values (RoutePolicyTests).

/// An address with a prefix length: a route's destination.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    /// 0...32 for IPv4, 0...128 for IPv6.
    public let length: UInt8

    public init?(_ address: IPAddress, length: UInt8) {
        guard length <= (address.isIPv4 ? 32 : 128) else { return nil }
        self.address = address
        self.length = length
    }

    /// The host route to one address (/32 or /128).
    public init(host address: IPAddress) {
        self.address = address
        self.length = address.isIPv4 ? 32 : 128
    }

    public var description: String { "\(address)/\(length)" }
}

/// One interface of the namespace.
public struct NetworkLink: Hashable, Sendable {
    public var index: Int32
    public var name: String
    public var isUp: Bool
    public var isLoopback: Bool

    public init(index: Int32, name: String, isUp: Bool, isLoopback: Bool) {
        self.index = index
        self.name = name
        self.isUp = isUp
        self.isLoopback = isLoopback
    }
}

/// One route of a routing table.
public struct RouteInfo: Hashable, Sendable, CustomStringConvertible {
    public enum Family: Hashable, Sendable {
        case ipv4, ipv6
        /// Another address family (e.g. MPLS); its number.
        case other(UInt8)
    }

    /// The kernel's route scopes agentpen names (rtnetlink RT_SCOPE_*).
    public struct Scope: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let universe = Scope(rawValue: 0)
        public static let link = Scope(rawValue: 253)
        public static let host = Scope(rawValue: 254)
    }

    /// The kernel's routing table ids agentpen names (RT_TABLE_*).
    public static let mainTable: UInt32 = 254
    public static let localTable: UInt32 = 255

    public var family: Family
    /// nil for a default route (prefix length 0).
    public var destination: IPPrefix?
    /// The first next hop's gateway.
    public var gateway: IPAddress?
    /// The first next hop's output interface (0 when the route has none, e.g. unreachable).
    public var interfaceIndex: Int32
    public var scope: Scope
    public var table: UInt32

    public init(family: Family, destination: IPPrefix?, gateway: IPAddress?, interfaceIndex: Int32,
                scope: Scope, table: UInt32) {
        self.family = family
        self.destination = destination
        self.gateway = gateway
        self.interfaceIndex = interfaceIndex
        self.scope = scope
        self.table = table
    }

    public var description: String {
        var s: String
        switch family {
        case .ipv4: s = "inet "
        case .ipv6: s = "inet6 "
        case .other(let n): s = "family \(n) "
        }
        s += destination?.description ?? "default"
        if let gateway { s += " via \(gateway)" }
        s += " dev #\(interfaceIndex) scope \(scope.rawValue) table \(table)"
        return s
    }
}

/// The interface pasta configured, with its IPv4 gateway and address.
public struct Uplink: Hashable, Sendable {
    public var interfaceIndex: Int32
    public var gateway: IPAddress
    public var address: IPAddress

    public init(interfaceIndex: Int32, gateway: IPAddress, address: IPAddress) {
        self.interfaceIndex = interfaceIndex
        self.gateway = gateway
        self.address = address
    }
}

public enum RoutePolicy {
    public enum UplinkState: Hashable, Sendable {
        case configured(Uplink)
        /// Not yet; the text says what is missing (for the time-out message).
        case waiting(String)
    }

    /// Whether pasta has finished configuring the namespace: an interface other
    /// than loopback is up with an IPv4 address and the main table has an IPv4
    /// default route with a gateway through it. `addresses` holds the IPv4
    /// addresses per interface index, in the kernel's order (the first is taken).
    public static func uplink(links: [NetworkLink], routes: [RouteInfo],
                              ipv4Addresses addresses: [Int32: [IPAddress]]) -> UplinkState {
        let up = links.filter { $0.isUp && !$0.isLoopback }
        if up.isEmpty { return .waiting("no interface other than loopback is up") }
        for route in routes where route.table == RouteInfo.mainTable && route.family == .ipv4
            && route.destination == nil {
            guard let gateway = route.gateway, gateway.isIPv4,
                  up.contains(where: { $0.index == route.interfaceIndex }),
                  let address = addresses[route.interfaceIndex]?.first(where: \.isIPv4) else { continue }
            return .configured(Uplink(interfaceIndex: route.interfaceIndex, gateway: gateway, address: address))
        }
        return .waiting("interfaces up: \(up.map(\.name).joined(separator: ", "));"
                        + " no IPv4 default route through one with an address")
    }

    /// Whether the lock-down deletes a route: every main-table route goes unless
    /// all its next hops are on loopback (a route without next hops, such as
    /// unreachable or blackhole, goes too).
    public static func mustDelete(table: UInt32, nextHopInterfaces: [Int32], loopbacks: Set<Int32>) -> Bool {
        guard table == RouteInfo.mainTable else { return false }
        return nextHopInterfaces.isEmpty || !nextHopInterfaces.allSatisfy { loopbacks.contains($0) }
    }

    /// The one route the lock-down keeps: `gateway/32 dev #interfaceIndex scope link`.
    public static func keptRoute(gateway: IPAddress, interfaceIndex: Int32) -> RouteInfo {
        RouteInfo(family: .ipv4, destination: IPPrefix(host: gateway), gateway: nil,
                  interfaceIndex: interfaceIndex, scope: .link, table: RouteInfo.mainTable)
    }

    public enum LockDownVerdict: Hashable, Sendable {
        case lockedDown
        /// A route that leads somewhere other than the gateway (the first one found).
        case unexpected(RouteInfo)
        /// The gateway route is not there.
        case missing(RouteInfo)
    }

    /// Reads back the main table after the lock-down: apart from routes on
    /// loopback, it must hold exactly the kept route, once.
    public static func verifyLockedDown(_ routes: [RouteInfo], gateway: IPAddress, interfaceIndex: Int32,
                                        loopbacks: Set<Int32>) -> LockDownVerdict {
        let kept = keptRoute(gateway: gateway, interfaceIndex: interfaceIndex)
        var sawKept = false
        for route in routes {
            if route.interfaceIndex != 0 && loopbacks.contains(route.interfaceIndex) { continue }
            if route == kept && !sawKept {
                sawKept = true
                continue
            }
            return .unexpected(route)
        }
        return sawKept ? .lockedDown : .missing(kept)
    }

    public enum LoopbackOnlyVerdict: Hashable, Sendable {
        case loopbackOnly
        /// An interface other than loopback exists.
        case strayLink(NetworkLink)
        /// A route through something other than loopback.
        case strayRoute(RouteInfo)
    }

    /// The direct hop's namespace: only a loopback interface, and every route on
    /// it (nothing can leave: there is nowhere to send a packet but loopback).
    public static func verifyLoopbackOnly(links: [NetworkLink], routes: [RouteInfo]) -> LoopbackOnlyVerdict {
        if let stray = links.first(where: { !$0.isLoopback }) { return .strayLink(stray) }
        let loopbacks = Set(links.map(\.index))
        if let stray = routes.first(where: { $0.interfaceIndex == 0 || !loopbacks.contains($0.interfaceIndex) }) {
            return .strayRoute(stray)
        }
        return .loopbackOnly
    }
}
