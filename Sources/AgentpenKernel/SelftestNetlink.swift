import AgentpenPolicy
import CNetlink
import Glibc

// What `agentpen selftest` needs to build its throwaway world (a veth pair
// between its "host" and "internet" network namespaces), over the same libnl
// socket type the network helper uses. Thin: which names and addresses is the
// caller's (addresses in 198.18.0.0/15 only).
extension NetlinkRoute {
    /// Creates the veth pair `name` (here) – `peer` (moved into the network
    /// namespace open at `peerNamespaceFD`).
    public func addVeth(name: String, peer: String, peerNamespaceFD: Int32) throws {
        guard let link = rtnl_link_veth_alloc() else { throw SystemError("rtnl_link_veth_alloc", name, errno: ENOMEM) }
        defer { rtnl_link_veth_release(link) }
        rtnl_link_set_name(link, name)
        guard let other = rtnl_link_veth_get_peer(link) else { throw SystemError("rtnl_link_veth_get_peer", name, errno: ENOMEM) }
        rtnl_link_set_name(other, peer)
        rtnl_link_set_ns_fd(other, peerNamespaceFD)
        rtnl_link_put(other)
        let err = rtnl_link_add(sock, link, 0x400 | 0x200)   // NLM_F_CREATE | NLM_F_EXCL
        if err < 0 { throw nlError("rtnl_link_add", "veth \(name)", err) }
    }

    /// The index of the interface called `name`.
    public func index(of name: String) throws -> Int32 {
        guard let link = try links().first(where: { $0.name == name }) else {
            throw SystemError("links", "no interface \(name)", errno: ENODEV)
        }
        return link.index
    }

    /// `ip address add ADDRESS/PREFIX dev #interfaceIndex`.
    public func addAddress(_ address: IPAddress, prefix: UInt8, interfaceIndex: Int32) throws {
        guard let a = rtnl_addr_alloc() else { throw SystemError("rtnl_addr_alloc", "", errno: ENOMEM) }
        defer { rtnl_addr_put(a) }
        guard let local = makeAddr(address, prefix: prefix) else { throw SystemError("addAddress", "\(address)", errno: EINVAL) }
        defer { nl_addr_put(local) }
        rtnl_addr_set_ifindex(a, interfaceIndex)
        // IFA_F_NODAD: an IPv6 address is usable at once, not tentative for a second.
        if !address.isIPv4 { rtnl_addr_set_flags(a, 0x02) }
        var err = rtnl_addr_set_local(a, local)
        if err < 0 { throw nlError("rtnl_addr_set_local", "\(address)", err) }
        err = rtnl_addr_add(sock, a, 0)
        if err < 0 { throw nlError("rtnl_addr_add", "\(address)/\(prefix) dev #\(interfaceIndex)", err) }
    }

    /// `ip route add default via GATEWAY dev #interfaceIndex` (the gateway's family).
    public func addDefaultRoute(via gateway: IPAddress, interfaceIndex: Int32) throws {
        let any = gateway.isIPv4 ? IPAddress(0, 0, 0, 0) : IPAddress(bytes: [UInt8](repeating: 0, count: 16))!
        guard let dst = makeAddr(any, prefix: 0), let gw = makeAddr(gateway, prefix: gateway.isIPv4 ? 32 : 128) else {
            throw SystemError("addDefaultRoute", "\(gateway)", errno: EINVAL)
        }
        defer { nl_addr_put(dst); nl_addr_put(gw) }
        guard let r = rtnl_route_alloc() else { throw SystemError("rtnl_route_alloc", "", errno: ENOMEM) }
        defer { rtnl_route_put(r) }
        rtnl_route_set_family(r, UInt8(gateway.isIPv4 ? AF_INET : AF_INET6))
        rtnl_route_set_table(r, RouteInfo.mainTable)
        rtnl_route_set_scope(r, 0)   // RT_SCOPE_UNIVERSE
        rtnl_route_set_type(r, 1)    // RTN_UNICAST
        var err = rtnl_route_set_dst(r, dst)
        if err < 0 { throw nlError("rtnl_route_set_dst", "default", err) }
        guard let nh = rtnl_route_nh_alloc() else { throw SystemError("rtnl_route_nh_alloc", "", errno: ENOMEM) }
        rtnl_route_nh_set_ifindex(nh, interfaceIndex)
        rtnl_route_nh_set_gateway(nh, gw)
        rtnl_route_add_nexthop(r, nh)
        err = rtnl_route_add(sock, r, 0x400)   // NLM_F_CREATE
        if err < 0 { throw nlError("rtnl_route_add", "default via \(gateway)", err) }
    }
}
