import AgentpenPolicy
import CNetlink
import Glibc

// The network namespace's routing table, read and changed over one rtnetlink
// socket (libnl-route-3). Used by the single-threaded network helper once pasta
// has configured the namespace: it waits for pasta to finish, then removes every
// route that could lead anywhere except the one /32 to the gateway. This file is
// only the libnl wrapper: the route model and every decision over it (which
// interface is the uplink, which routes go, what may be left) are pure values and
// functions in AgentpenPolicy/Routes.swift.

// Constants from kernel and libnl headers, spelled out (macros and enums that do
// not reliably import).
private let nlRoute: Int32 = 0            // NETLINK_ROUTE
private let tableMain = RouteInfo.mainTable
private let rtnUnicast: UInt8 = 1         // RTN_UNICAST
private let rtprotBoot: UInt8 = 3         // RTPROT_BOOT
private let iffUp: UInt32 = 0x1           // IFF_UP
private let iffLoopback: UInt32 = 0x8     // IFF_LOOPBACK
private let nlmFExcl: Int32 = 0x200       // NLM_F_EXCL
private let nlmFReplace: Int32 = 0x100    // NLM_F_REPLACE
private let tableLocal = RouteInfo.localTable
private let rtnLocal: UInt8 = 2           // RTN_LOCAL
private let rtprotKernel: UInt8 = 2       // RTPROT_KERNEL
private let rtaxQuickAck: Int32 = 15      // RTAX_QUICKACK

/// libnl reports its own error numbers (NLE_*); map them back to errno so the
/// project's one error type prints the usual text.
private func errnoFromNL(_ err: Int32) -> Int32 {
    switch abs(err) {
    case 2: return EINTR            // NLE_INTR
    case 3: return EBADF            // NLE_BAD_SOCK
    case 4: return EAGAIN           // NLE_AGAIN
    case 5: return ENOMEM           // NLE_NOMEM
    case 6: return EEXIST           // NLE_EXIST
    case 7: return EINVAL           // NLE_INVAL
    case 8: return ERANGE           // NLE_RANGE
    case 9: return EMSGSIZE         // NLE_MSGSIZE
    case 10: return EOPNOTSUPP      // NLE_OPNOTSUPP
    case 11: return EAFNOSUPPORT    // NLE_AF_NOSUPPORT
    case 12: return ESRCH           // NLE_OBJ_NOTFOUND (the kernel's "no such route")
    case 19: return EADDRNOTAVAIL   // NLE_NOADDR
    case 25: return EBUSY           // NLE_BUSY
    case 27: return EACCES          // NLE_NOACCESS
    case 28: return EPERM           // NLE_PERM
    case 31: return ENODEV          // NLE_NODEV
    default: return EIO
    }
}

private func nlError(_ call: String, _ subject: String, _ err: Int32) -> SystemError {
    let text = String(cString: nl_geterror(err))
    let what = subject.isEmpty ? "(\(text))" : "\(subject) (\(text))"
    return SystemError(call, what, errno: errnoFromNL(err))
}

/// The address of an nl_addr (without prefix length); nil if empty or neither IPv4 nor IPv6.
private func address(_ addr: OpaquePointer?) -> IPAddress? {
    guard let addr, let bin = nl_addr_get_binary_addr(addr) else { return nil }
    let len = Int(nl_addr_get_len(addr))
    guard len == 4 || len == 16 else { return nil }
    return IPAddress(bytes: UnsafeRawBufferPointer(start: bin, count: len))
}

/// A route's destination, nil for a default route (prefix length 0).
private func destination(_ addr: OpaquePointer?) -> IPPrefix? {
    guard let addr else { return nil }
    let prefix = nl_addr_get_prefixlen(addr)
    guard prefix > 0, prefix <= 128, let a = address(addr) else { return nil }
    return IPPrefix(a, length: UInt8(prefix))
}

private func family(_ f: Family) -> Int32 {
    switch f {
    case .ipv4: return AF_INET
    case .ipv6: return AF_INET6
    case .other(let n): return Int32(n)
    }
}

private func family(_ raw: UInt8) -> Family {
    switch Int32(raw) {
    case AF_INET: return .ipv4
    case AF_INET6: return .ipv6
    default: return .other(raw)
    }
}

/// A new nl_addr (caller puts it) from an address and prefix length.
private func makeAddr(_ address: IPAddress, prefix: UInt8) -> OpaquePointer? {
    var bytes = address.bytes
    let fam = address.isIPv4 ? AF_INET : AF_INET6
    guard let a = bytes.withUnsafeMutableBytes({ nl_addr_build(fam, $0.baseAddress, $0.count) }) else { return nil }
    nl_addr_set_prefixlen(a, Int32(prefix))
    return a
}

/// The all-zero address of a family, for a default route's destination.
private func anyAddress(_ f: Family) -> IPAddress? {
    switch f {
    case .ipv4: return IPAddress(0, 0, 0, 0)
    case .ipv6: return IPAddress(bytes: [UInt8](repeating: 0, count: 16))
    case .other: return nil
    }
}

private typealias Family = RouteInfo.Family

/// One rtnetlink socket. Not thread-safe: use it from one thread (the helper is
/// single-threaded anyway).
public final class NetlinkRoute {
    private let sock: OpaquePointer

    public init() throws {
        guard let s = nl_socket_alloc() else { throw SystemError("nl_socket_alloc", "rtnetlink", errno: ENOMEM) }
        let err = nl_connect(s, nlRoute)
        if err < 0 {
            nl_socket_free(s)
            throw nlError("nl_connect", "rtnetlink", err)
        }
        sock = s
    }

    deinit {
        nl_close(sock)
        nl_socket_free(sock)
    }

    // MARK: reading

    /// Calls `body` with every object of a freshly dumped cache, then frees it.
    private func withRouteCache<T>(_ body: ([OpaquePointer]) throws -> T) throws -> T {
        var cache: OpaquePointer?
        let err = rtnl_route_alloc_cache(sock, AF_UNSPEC, 0, &cache)
        guard err >= 0, let cache else { throw nlError("rtnl_route_alloc_cache", "routes", err) }
        defer { nl_cache_free(cache) }
        return try body(objects(cache))
    }

    private func objects(_ cache: OpaquePointer) -> [OpaquePointer] {
        var out: [OpaquePointer] = []
        var obj = nl_cache_get_first(cache)
        while let o = obj {
            out.append(o)
            obj = nl_cache_get_next(o)
        }
        return out
    }

    private func info(_ route: OpaquePointer) -> RouteInfo {
        var ifindex: Int32 = 0
        var gateway: IPAddress?
        let n = rtnl_route_get_nnexthops(route)
        if n > 0, let nh = rtnl_route_nexthop_n(route, 0) {
            ifindex = rtnl_route_nh_get_ifindex(nh)
            gateway = address(rtnl_route_nh_get_gateway(nh))
        }
        return RouteInfo(family: family(rtnl_route_get_family(route)),
                         destination: destination(rtnl_route_get_dst(route)),
                         gateway: gateway,
                         interfaceIndex: ifindex,
                         scope: RouteInfo.Scope(rawValue: rtnl_route_get_scope(route)),
                         table: rtnl_route_get_table(route))
    }

    /// Every next hop's interface of a route (empty for unreachable/blackhole routes).
    private func interfaces(_ route: OpaquePointer) -> [Int32] {
        let n = rtnl_route_get_nnexthops(route)
        return (0..<max(n, 0)).compactMap { rtnl_route_nexthop_n(route, $0).map { rtnl_route_nh_get_ifindex($0) } }
    }

    /// The main table's routes, IPv4 and IPv6.
    public func routes() throws -> [RouteInfo] {
        try withRouteCache { objs in
            objs
                .filter { rtnl_route_get_table($0) == tableMain }
                .map { info($0) }
        }
    }

    public func links() throws -> [NetworkLink] {
        var cache: OpaquePointer?
        let err = rtnl_link_alloc_cache(sock, AF_UNSPEC, &cache)
        guard err >= 0, let cache else { throw nlError("rtnl_link_alloc_cache", "links", err) }
        defer { nl_cache_free(cache) }
        return objects(cache).map { obj in
            let link = obj
            let flags = rtnl_link_get_flags(link)
            let name = rtnl_link_get_name(link).map { String(cString: $0) } ?? ""
            return NetworkLink(index: rtnl_link_get_ifindex(link), name: name,
                               isUp: flags & iffUp != 0, isLoopback: flags & iffLoopback != 0)
        }
    }

    /// The IPv4 addresses (without prefix length) on one interface.
    public func ipv4Addresses(interfaceIndex: Int32) throws -> [IPAddress] {
        try ipv4Addresses()[interfaceIndex] ?? []
    }

    /// Every interface's IPv4 addresses (without prefix length), in the kernel's order.
    public func ipv4Addresses() throws -> [Int32: [IPAddress]] {
        var cache: OpaquePointer?
        let err = rtnl_addr_alloc_cache(sock, &cache)
        guard err >= 0, let cache else { throw nlError("rtnl_addr_alloc_cache", "addresses", err) }
        defer { nl_cache_free(cache) }
        var out: [Int32: [IPAddress]] = [:]
        for a in objects(cache) where rtnl_addr_get_family(a) == AF_INET {
            guard let local = address(rtnl_addr_get_local(a)), local.isIPv4 else { continue }
            out[rtnl_addr_get_ifindex(a), default: []].append(local)
        }
        return out
    }

    // MARK: changing

    public func setLinkUp(index: Int32) throws {
        var orig: OpaquePointer?
        var err = rtnl_link_get_kernel(sock, index, nil, &orig)
        guard err >= 0, let orig else { throw nlError("rtnl_link_get_kernel", "interface #\(index)", err) }
        defer { rtnl_link_put(orig) }
        guard let change = rtnl_link_alloc() else { throw SystemError("rtnl_link_alloc", "", errno: ENOMEM) }
        defer { rtnl_link_put(change) }
        rtnl_link_set_flags(change, iffUp)
        err = rtnl_link_change(sock, orig, change, 0)
        if err < 0 { throw nlError("rtnl_link_change", "set interface #\(index) up", err) }
    }

    /// Deletes the main-table route matching `route` (family, destination, gateway,
    /// interface, scope, table).
    public func deleteRoute(_ route: RouteInfo) throws {
        guard let r = rtnl_route_alloc() else { throw SystemError("rtnl_route_alloc", "", errno: ENOMEM) }
        defer { rtnl_route_put(r) }
        rtnl_route_set_family(r, UInt8(family(route.family)))
        rtnl_route_set_table(r, route.table)
        rtnl_route_set_scope(r, route.scope.rawValue)
        // libnl defaults to protocol "static" and type "unicast"; 0 matches any.
        rtnl_route_set_protocol(r, 0)
        rtnl_route_set_type(r, 0)
        let dst: OpaquePointer?
        if let d = route.destination {
            dst = makeAddr(d.address, prefix: d.length)
        } else {
            dst = anyAddress(route.family).flatMap { makeAddr($0, prefix: 0) }
        }
        guard let dst else { throw SystemError("deleteRoute", "bad destination \(route)", errno: EINVAL) }
        defer { nl_addr_put(dst) }
        var err = rtnl_route_set_dst(r, dst)
        if err < 0 { throw nlError("rtnl_route_set_dst", route.description, err) }
        if route.interfaceIndex != 0 || route.gateway != nil {
            guard let nh = rtnl_route_nh_alloc() else { throw SystemError("rtnl_route_nh_alloc", "", errno: ENOMEM) }
            if route.interfaceIndex != 0 { rtnl_route_nh_set_ifindex(nh, route.interfaceIndex) }
            if let g = route.gateway {
                guard let ga = makeAddr(g, prefix: IPPrefix(host: g).length) else {
                    rtnl_route_nh_free(nh)
                    throw SystemError("deleteRoute", "bad gateway \(g)", errno: EINVAL)
                }
                rtnl_route_nh_set_gateway(nh, ga)
                nl_addr_put(ga)
            }
            rtnl_route_add_nexthop(r, nh)   // the route owns it now
        }
        err = rtnl_route_delete(sock, r, 0)
        if err < 0 { throw nlError("rtnl_route_delete", route.description, err) }
    }

    /// Adds `gateway/32 dev #interfaceIndex scope link` to the main table.
    public func addHostRoute(to gateway: IPAddress, interfaceIndex: Int32) throws {
        try addRoute(destination: gateway, prefix: 32, table: tableMain, type: rtnUnicast, scope: .link,
                         protocol: rtprotBoot, interfaceIndex: interfaceIndex, flags: nlmFExcl)
    }

    /// Marks the loopback routes (local table) `quickack`: TCP on the namespace's
    /// loopback then acknowledges at once. pasta's spliced socket writes small
    /// records without TCP_NODELAY and waits for each ACK, which a client's
    /// delayed ACK would hold for up to 40 ms on every new connection.
    public func setLoopbackQuickAck() throws {
        guard let lo = try links().first(where: { $0.isLoopback }) else {
            throw SystemError("setLoopbackQuickAck", "no loopback interface", errno: ENODEV)
        }
        for (destination, prefix) in [(IPAddress(127, 0, 0, 0), UInt8(8)), (IPAddress.loopbackV4, UInt8(32))] {
            try addRoute(destination: destination, prefix: prefix, table: tableLocal, type: rtnLocal,
                             scope: .host, protocol: rtprotKernel, interfaceIndex: lo.index,
                             preferredSource: .loopbackV4, quickAck: true, flags: nlmFReplace)
        }
    }

    /// A default route (IPv4 with source 127.0.0.1, and IPv6) on loopback: a
    /// connection to any address is then routable instead of failing with
    /// ENETUNREACH, and meets the firewall, which redirects TCP to the catch-all
    /// listener and drops (and logs) everything else. Nothing on loopback leaves
    /// the namespace. IPv6 is best effort: a namespace without IPv6 has none.
    public func addLoopbackDefaultRoutes() throws {
        guard let lo = try links().first(where: { $0.isLoopback }) else {
            throw SystemError("addLoopbackDefaultRoutes", "no loopback interface", errno: ENODEV)
        }
        try addRoute(destination: IPAddress(0, 0, 0, 0), prefix: 0, table: tableMain, type: rtnUnicast, scope: .link,
                     protocol: rtprotBoot, interfaceIndex: lo.index, preferredSource: .loopbackV4, flags: nlmFExcl)
        let any6 = IPAddress(bytes: [UInt8](repeating: 0, count: 16))!
        try? addRoute(destination: any6, prefix: 0, table: tableMain, type: rtnUnicast, scope: .universe,
                      protocol: rtprotBoot, interfaceIndex: lo.index, flags: nlmFExcl)
    }

    /// One route with a single next hop through `interfaceIndex` (IPv4 or IPv6, by `destination`).
    private func addRoute(destination: IPAddress, prefix: UInt8, table: UInt32, type: UInt8,
                              scope: RouteInfo.Scope, protocol proto: UInt8, interfaceIndex: Int32,
                              preferredSource: IPAddress? = nil,
                              quickAck: Bool = false, flags: Int32) throws {
        let what = "\(destination)/\(prefix) dev #\(interfaceIndex) table \(table)"
        guard let dst = makeAddr(destination, prefix: prefix) else {
            throw SystemError("addRoute", "not an address: \(destination)", errno: EINVAL)
        }
        defer { nl_addr_put(dst) }
        guard let r = rtnl_route_alloc() else { throw SystemError("rtnl_route_alloc", "", errno: ENOMEM) }
        defer { rtnl_route_put(r) }
        rtnl_route_set_family(r, UInt8(destination.isIPv4 ? AF_INET : AF_INET6))
        rtnl_route_set_table(r, table)
        rtnl_route_set_scope(r, scope.rawValue)
        rtnl_route_set_type(r, type)
        rtnl_route_set_protocol(r, proto)
        var err = rtnl_route_set_dst(r, dst)
        if err < 0 { throw nlError("rtnl_route_set_dst", what, err) }
        if let preferredSource {
            guard preferredSource.isIPv4 == destination.isIPv4,
                  let src = makeAddr(preferredSource, prefix: preferredSource.isIPv4 ? 32 : 128) else {
                throw SystemError("addRoute", "source \(preferredSource) of another family", errno: EINVAL)
            }
            defer { nl_addr_put(src) }
            err = rtnl_route_set_pref_src(r, src)
            if err < 0 { throw nlError("rtnl_route_set_pref_src", what, err) }
        }
        if quickAck {
            err = rtnl_route_set_metric(r, rtaxQuickAck, 1)
            if err < 0 { throw nlError("rtnl_route_set_metric", "quickack " + what, err) }
        }
        guard let nh = rtnl_route_nh_alloc() else { throw SystemError("rtnl_route_nh_alloc", "", errno: ENOMEM) }
        rtnl_route_nh_set_ifindex(nh, interfaceIndex)
        rtnl_route_add_nexthop(r, nh)
        err = rtnl_route_add(sock, r, flags)
        if err < 0 { throw nlError("rtnl_route_add", what, err) }
    }

    // MARK: the helper's two steps

    /// Waits until pasta has finished configuring the namespace (the decision is
    /// `RoutePolicy.uplink`). Polls every 5 ms; throws ETIMEDOUT after `timeout` s.
    public func waitForConfiguredUplink(timeout: Double) throws -> Uplink {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        func elapsed() -> Double {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            return Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) / 1e9
        }
        while true {
            let links = try links()
            // Routes and addresses only once an interface is up (as before: no dumps while waiting for one).
            let state = links.contains(where: { $0.isUp && !$0.isLoopback })
                ? RoutePolicy.uplink(links: links, routes: try routes(), ipv4Addresses: try ipv4Addresses())
                : RoutePolicy.uplink(links: links, routes: [], ipv4Addresses: [:])
            let lastState: String
            switch state {
            case .configured(let uplink): return uplink
            case .waiting(let why): lastState = why
            }
            if elapsed() >= timeout {
                throw SystemError("waitForConfiguredUplink",
                                  "pasta did not configure the namespace within \(timeout) s (\(lastState))",
                                  errno: ETIMEDOUT)
            }
            var ts = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            var rest = timespec()
            while nanosleep(&ts, &rest) < 0 && errno == EINTR { ts = rest }
        }
    }

    /// Leaves the main table with exactly one route that leaves the machine:
    /// `keepGateway/32 dev #interfaceIndex scope link`. Every IPv4 and IPv6 route
    /// not on loopback is deleted (default, subnet, link-local, unreachable…), IPv6
    /// is switched off on every non-loopback interface where the kernel allows it
    /// (so a router advertisement cannot bring a route back later), loopback is
    /// brought up, and the result is read back: any other route is an error that
    /// names it.
    public func lockDownRoutes(keepGateway: IPAddress, interfaceIndex: Int32) throws {
        guard keepGateway.isIPv4 else {
            throw SystemError("lockDownRoutes", "gateway is not an IPv4 address: \(keepGateway)", errno: EINVAL)
        }
        let allLinks = try links()
        let loopbacks = Set(allLinks.filter(\.isLoopback).map(\.index))
        guard allLinks.contains(where: { $0.index == interfaceIndex && !$0.isLoopback }) else {
            throw SystemError("lockDownRoutes", "no such uplink interface #\(interfaceIndex)", errno: ENODEV)
        }

        // IPv6 off on the uplinks: drops their addresses and routes and ignores
        // router advertisements from now on (pasta answers router solicitations).
        // Best effort: /proc/sys may be read-only; the routes are removed below
        // and the firewall drops IPv6 regardless.
        for link in allLinks where !link.isLoopback && !link.name.isEmpty && !link.name.contains("/") {
            writeSysctl("/proc/sys/net/ipv6/conf/\(link.name)/accept_ra", "0")
            writeSysctl("/proc/sys/net/ipv6/conf/\(link.name)/disable_ipv6", "1")
        }

        // Delete with the kernel's own route objects, so metric, type and protocol match exactly.
        try withRouteCache { objs in
            for obj in objs {
                let r = obj
                guard RoutePolicy.mustDelete(table: rtnl_route_get_table(r), nextHopInterfaces: interfaces(r),
                                             loopbacks: loopbacks) else { continue }
                let err = rtnl_route_delete(sock, r, 0)
                // ESRCH: already gone (e.g. taken away with IPv6 just above).
                if err < 0 && errnoFromNL(err) != ESRCH {
                    throw nlError("rtnl_route_delete", info(r).description, err)
                }
            }
        }

        try addHostRoute(to: keepGateway, interfaceIndex: interfaceIndex)
        for index in loopbacks { try setLinkUp(index: index) }

        // Read back.
        switch RoutePolicy.verifyLockedDown(try routes(), gateway: keepGateway, interfaceIndex: interfaceIndex,
                                            loopbacks: loopbacks) {
        case .lockedDown:
            return
        case .unexpected(let route):
            throw SystemError("lockDownRoutes", "unexpected route left after lock-down: \(route)", errno: EEXIST)
        case .missing:
            throw SystemError("lockDownRoutes", "route \(keepGateway)/32 dev #\(interfaceIndex) missing after lock-down",
                              errno: ENOENT)
        }
    }
}

private func writeSysctl(_ path: String, _ value: String) {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    let file = Descriptor(fd)
    _ = value.withCString { write(file.raw, $0, strlen($0)) }
}
