/// How much memory the sandbox's tmpfs mounts may take. tmpfs lives in RAM
/// (and swap); unbounded, each mount may grow to half of RAM, five of them
/// to two and a half times what the machine has. One total, split in fixed
/// shares, each mount bounded by its share (bubblewrap `--size`).
public enum TmpfsBudget {
    /// What the user asked for with `--tmpfs-size`.
    public enum Request: Sendable, Equatable {
        case bytes(UInt64)
        /// A percentage of the machine's memory, 1–100.
        case percentOfMemory(UInt64)
    }

    /// The bound of each mount, in bytes (whole pages).
    public struct Sizes: Sendable, Equatable {
        public var home: UInt64
        public var tmp: UInt64
        public var varTmp: UInt64
        public var devShm: UInt64
        public var run: UInt64
        public var total: UInt64 { home + tmp + varTmp + devShm + run }
    }

    /// The documented split of the total, in per mille: the home and /tmp get
    /// most (caches, builds, package managers), /dev/shm enough for shared
    /// memory users (browsers, Python multiprocessing), /run only sockets.
    public static let shares: [(mount: String, permille: UInt64)] = [
        ("$HOME", 400), ("/tmp", 300), ("/var/tmp", 100), ("/dev/shm", 150), ("/run", 50),
    ]
    /// Without --tmpfs-size: a quarter of RAM in all.
    public static let defaultRequest = Request.percentOfMemory(25)
    /// When the machine's memory is unknown (0).
    public static let fallbackTotal: UInt64 = 2 << 30
    /// Below this the split leaves mounts too small to be useful.
    public static let minimumTotal: UInt64 = 16 << 20
    static let page: UInt64 = 4096

    public struct BudgetError: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses `512M`, `2G`, `1.5G`, `1073741824`, `25%` (binary units; K, M,
    /// G, T with an optional `iB` or `B`).
    public static func parse(_ text: String, flag: String = "--tmpfs-size") throws(BudgetError) -> Request {
        let t = text.trimmingWhitespace()
        func bad() -> BudgetError {
            BudgetError(message: "\(flag) \(text.debugDescription): expected a size such as 512M, 4G or 25% (of memory)")
        }
        if t.hasSuffix("%") {
            guard let p = UInt64(t.dropLast()), (1...100).contains(p) else {
                throw BudgetError(message: "\(flag) \(text.debugDescription): a percentage of memory from 1% to 100%")
            }
            return .percentOfMemory(p)
        }
        var number = Substring(t)
        for suffix in ["iB", "B"] where number.hasSuffix(suffix) { number = number.dropLast(suffix.count); break }
        var unit: UInt64 = 1
        if let last = number.last, let shift = ["K": 10, "M": 20, "G": 30, "T": 40][String(last).uppercased()] {
            unit = 1 << UInt64(shift)
            number = number.dropLast()
        }
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        guard !number.isEmpty, parts.count <= 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) }),
              let whole = UInt64(parts[0]) else { throw bad() }
        var bytes = whole.multipliedReportingOverflow(by: unit)
        if parts.count == 2 {
            guard unit > 1, parts[1].count <= 6, let frac = UInt64(parts[1]) else { throw bad() }
            var scale: UInt64 = 1
            for _ in 0..<parts[1].count { scale *= 10 }
            let add = (frac * unit) / scale
            let sum = bytes.partialValue.addingReportingOverflow(add)
            bytes = (sum.partialValue, bytes.overflow || sum.overflow)
        }
        guard !bytes.overflow else { throw bad() }
        return .bytes(bytes.partialValue)
    }

    /// The total in bytes for `request` on a machine with `memoryTotal` bytes
    /// (0: unknown). Never more than the machine has.
    public static func total(_ request: Request, memoryTotal: UInt64, flag: String = "--tmpfs-size") throws(BudgetError) -> UInt64 {
        let total: UInt64
        switch request {
        case .percentOfMemory(let p):
            total = memoryTotal == 0 ? fallbackTotal : memoryTotal / 100 * p
        case .bytes(let b):
            if memoryTotal != 0 && b > memoryTotal {
                throw BudgetError(message: "\(flag) \(describe(b)): more than this machine's memory (\(describe(memoryTotal)))")
            }
            total = b
        }
        if total < minimumTotal {
            throw BudgetError(message: "\(flag) \(describe(total)): at least \(describe(minimumTotal)) in all")
        }
        return total
    }

    /// Each mount's share of `total`, rounded down to whole pages.
    public static func split(_ total: UInt64) -> Sizes {
        func share(_ i: Int) -> UInt64 { (total / 1000 * shares[i].permille) / page * page }
        return Sizes(home: share(0), tmp: share(1), varTmp: share(2), devShm: share(3), run: share(4))
    }

    public static func sizes(_ request: Request?, memoryTotal: UInt64) throws(BudgetError) -> Sizes {
        split(try total(request ?? defaultRequest, memoryTotal: memoryTotal))
    }

    /// `1.5G`-style, for messages and notes.
    public static func describe(_ bytes: UInt64) -> String {
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] as [(String, UInt64)] where bytes >= 1 << shift {
            let tenths = bytes * 10 / (1 << shift)
            return tenths % 10 == 0 ? "\(tenths / 10)\(unit)" : "\(tenths / 10).\(tenths % 10)\(unit)"
        }
        return "\(bytes)"
    }
}
