import Glibc

extension Host {
    /// The machine's memory in bytes (MemTotal in /proc/meminfo; sysinfo is
    /// hidden by Glibc's module), 0 when unknown.
    public static var memoryTotal: UInt64 {
        // Its first line, found by bytes (splitting all of meminfo into Characters
        // cost 0.6 M instructions at every start).
        guard let text = readFile("/proc/meminfo", limit: 8192),
              let bytes = text.utf8.split(separator: UInt8(ascii: "\n")).first(where: { $0.starts(with: "MemTotal:".utf8) })
        else { return 0 }
        let fields = Substring(bytes).split(separator: " ")
        guard fields.count >= 3, fields[2] == "kB", let kb = UInt64(fields[1]) else { return 0 }
        return kb * 1024
    }
}
