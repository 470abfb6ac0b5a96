import Glibc

extension Host {
    /// The machine's memory in bytes (MemTotal in /proc/meminfo; sysinfo is
    /// hidden by Glibc's module), 0 when unknown.
    public static var memoryTotal: UInt64 {
        guard let text = readFile("/proc/meminfo", limit: 8192),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }) else { return 0 }
        let fields = line.split(separator: " ")
        guard fields.count >= 3, fields[2] == "kB", let kb = UInt64(fields[1]) else { return 0 }
        return kb * 1024
    }
}
