/// What happens to a name the allowlist does not list (issue 13).
/// - `refuse`: NXDOMAIN and a refused connection (every run without --ask or --audit).
/// - `hold`: `--ask`. The name resolves to a per-name address; a TLS connection to
///   it is held (ClientHello peeked, nothing dialled) until the user decides.
/// - `pass`: `--audit`. The name resolves and the connection goes through, recorded
///   as would-block. Upstream addresses are vetted as for any name (loopback and
///   private stay refused).
/// Hold and pass need per-name addresses (the direct hop): the address a
/// connection arrives on names the name before its first byte, and the SNI must
/// still equal it. Only names `--allow` would accept get one (no IP literal, no
/// localhost name).
public enum UnlistedNames: String, Sendable, Equatable {
    case refuse, hold, pass

    public var letsUnlistedNamesResolve: Bool { self != .refuse }

    /// Whether `name` (lower case, no trailing dot) may get an address as an
    /// unlisted name under this policy.
    public func admits(_ name: String) -> Bool {
        self != .refuse && (try? HostPattern(name)) != nil
    }
}
