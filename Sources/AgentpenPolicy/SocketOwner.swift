/// `--ask`'s prompt names the sandbox's process that owns the connecting
/// socket: its inode from the sandbox namespace's /proc/net/tcp, then the
/// process whose descriptors hold `socket:[INODE]`. The parsing, as plain values.
public enum SocketOwner {
    /// The inode of the IPv4 TCP socket whose local address is `local`:`port`,
    /// from the text of /proc/PID/net/tcp (0 inodes, e.g. TIME_WAIT, skipped).
    public static func inode(inTCPTable text: String, local: IPAddress, port: UInt16) -> UInt64? {
        for f in rows(inTCPTable: text, local: local, port: port) {
            guard f.count > 9, let inode = UInt64(f[9]), inode != 0 else { continue }
            return inode
        }
        return nil
    }

    /// Whether a socket listens (state 0A) on `local`:`port`, from the text of
    /// /proc/PID/net/tcp: on the splice hop the namespace helper waits for
    /// pasta's listener on loopback :443 before the sandbox may start.
    public static func listens(inTCPTable text: String, local: IPAddress, port: UInt16) -> Bool {
        rows(inTCPTable: text, local: local, port: port).contains { $0.count > 3 && $0[3] == "0A" }
    }

    /// The table's rows (fields) whose local address is `local`:`port` (IPv4 only).
    static func rows(inTCPTable text: String, local: IPAddress, port: UInt16) -> [[Substring]] {
        guard local.isIPv4 else { return [] }
        let b = local.bytes
        // The kernel prints the address as the native-endian u32 of the network-order bytes.
        func hex(_ v: UInt8) -> String { let h = String(v, radix: 16, uppercase: true); return h.count == 1 ? "0" + h : h }
        let p = String(port, radix: 16, uppercase: true)
        let want = hex(b[3]) + hex(b[2]) + hex(b[1]) + hex(b[0]) + ":" + String(repeating: "0", count: max(0, 4 - p.count)) + p
        return text.split(separator: "\n").dropFirst()
            .map { $0.split(separator: " ", omittingEmptySubsequences: true) }
            .filter { $0.count > 1 && $0[1] == want }
    }

    /// "pid 123 curl": the comm is the sandbox's choice; only letters, digits
    /// and `._-+` are kept, at most 32.
    public static func describe(pid: Int32, comm: String) -> String {
        let kept = comm.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-+".unicodeScalars.contains($0)) }
        return "pid \(pid) " + String(String.UnicodeScalarView(kept.prefix(32)))
    }
}
