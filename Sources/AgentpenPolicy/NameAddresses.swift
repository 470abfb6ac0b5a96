/// Per-name addresses: each allowed name has its own loopback address inside the
/// sandbox, so the listener a connection reaches tells, before its first byte,
/// which name it was meant for (`getsockname` on the accepted socket).
///
/// Exact names are numbered in allowlist order from 127.0.1.1 and written into the
/// sandbox's /etc/hosts; names under a wildcard get an address from a bounded pool
/// (127.0.16.1 on) the first time the DNS responder is asked for them, and keep it
/// for the run. 127.0.0.1 stands for no name (a client that dials it with
/// `--resolve NAME:443:127.0.0.1` is routed by its SNI alone, as before per-name
/// addresses). Pure value; the host side keeps one behind a lock.
public struct NameAddresses: Sendable, Equatable {
    /// The first exact name's address, and the first pooled one.
    public static let exactBase = IPAddress(127, 0, 1, 1)
    public static let poolBase = IPAddress(127, 0, 16, 1)
    /// At most this many exact names (127.0.1.1 … 127.0.15.254 leaves room).
    public static let maxExact = 3000
    /// Wildcard names answered per run before the responder refuses new ones.
    public static let defaultPoolSize = 4096

    /// Every address a name can be given (exact names and the largest pool), in
    /// whole /24s: the firewall sends TCP to them on a port nothing serves to the
    /// catch-all, which reports the name.
    public static let range: (first: IPAddress, last: IPAddress) = {
        let b = offset(poolBase, defaultPoolSize - 1).bytes
        return (IPAddress(127, 0, exactBase.bytes[2], 0), IPAddress(b[0], b[1], b[2], 255))
    }()

    public let allowlist: Allowlist
    /// With `hold` or `pass`, unlisted names get pooled addresses too.
    public let unlisted: UnlistedNames
    public let poolSize: Int
    private var byName: [String: IPAddress] = [:]
    private var byAddress: [IPAddress: String] = [:]
    private var pooled = 0

    /// Assigns every exact name of `allowlist` its address (the first `maxExact`;
    /// beyond that the name shares 127.0.0.1 and is routed by SNI).
    public init(_ allowlist: Allowlist, unlisted: UnlistedNames = .refuse,
                poolSize: Int = NameAddresses.defaultPoolSize) {
        self.allowlist = allowlist
        self.unlisted = unlisted
        self.poolSize = min(poolSize, Self.defaultPoolSize)   // within `range`
        var i = 0
        for name in allowlist.exactNames where byName[name] == nil && i < Self.maxExact {
            let a = Self.offset(Self.exactBase, i)
            byName[name] = a
            byAddress[a] = name
            i += 1
        }
    }

    /// The address `name` (lower case, no trailing dot) stands at: its own when it
    /// is an exact name or was given one from the pool; a new pooled one when it is
    /// covered by a wildcard (or unlisted, and the policy admits it) and the pool
    /// has room; nil when it is not allowed or the pool is full. Unlisted names
    /// share the pool with wildcard names: a sandbox that floods it gets SERVFAIL
    /// for new names, never an address outside it.
    public mutating func address(for name: String) -> IPAddress? {
        var n = name.lowercased()
        if n.hasSuffix(".") { n.removeLast() }
        if let a = byName[n] { return a }
        guard allowlist.match(n) != nil || unlisted.admits(n), pooled < poolSize else { return nil }
        let a = Self.offset(Self.poolBase, pooled)
        pooled += 1
        byName[n] = a
        byAddress[a] = n
        return a
    }

    /// The name an address stands for, or nil (127.0.0.1, or an address never given out).
    public func name(at address: IPAddress) -> String? { byAddress[address] }

    /// Exact names and their addresses, in allowlist order (for /etc/hosts).
    public var exact: [(name: String, address: IPAddress)] {
        allowlist.exactNames.compactMap { n in byName[n].map { (n, $0) } }
    }

    public var pooledCount: Int { pooled }

    /// The `i`-th host address from `base` (whose last octet is 1), skipping .0
    /// and .255 in the last octet: .1 … .254 of each /24 in turn.
    static func offset(_ base: IPAddress, _ i: Int) -> IPAddress {
        let b = base.bytes
        let v = (Int(b[1]) << 16 | Int(b[2]) << 8) + (i / 254) * 256 + 1 + i % 254
        return IPAddress(b[0], UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff))
    }

    public static func == (a: NameAddresses, b: NameAddresses) -> Bool {
        a.allowlist == b.allowlist && a.unlisted == b.unlisted && a.byName == b.byName && a.pooled == b.pooled
    }
}
