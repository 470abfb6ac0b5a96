import AgentpenKernel
import AgentpenPolicy

/// Network confinement: no allowed hosts means no network at all.
enum Network {
    static func mode(for allowlist: Allowlist) -> NetworkMode { .none }

    static func describe(_ p: Prepared) -> [String] {
        p.allowlist.isEmpty ? ["none: the sandbox has its own empty network namespace"]
            : ["allowed hosts: " + p.allowlist.patterns.map(\.description).joined(separator: ", ")]
    }

    static func run(_ p: Prepared) throws(Failure) -> Int32 {
        try Runner.runOffline(p)
    }
}
