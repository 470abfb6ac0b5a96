import Foundation
import Testing

/// The product links FoundationEssentials only (notes.md, "Start-up: the third
/// round"): all of Foundation adds CoreFoundation and ICU (88 MB instead of 39 MB)
/// and ~0.5 ms to each of the three process starts of every run. It comes back
/// with one `import Foundation` in a product module, or with an extension member
/// of Foundation's used through a transitive import, which MemberImportVisibility
/// (Package.swift's strictImports, on every product target) refuses to compile.
@Suite struct FoundationImportTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    /// The build plugin's tool runs at build time only; it is not in the product.
    static let buildTools: Set<String> = ["EmbedAllowlistsTool"]

    @Test func noProductModuleImportsFoundation() throws {
        let sources = Self.root.appendingPathComponent("Sources")
        let modules = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { !Self.buildTools.contains($0) }
        #expect(modules.contains("agentpen") && modules.contains("AgentpenProxy"))
        var files = 0
        for module in modules {
            let dir = sources.appendingPathComponent(module)
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".swift") {
                files += 1
                let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
                for line in text.split(separator: "\n") {
                    let words = line.split(separator: " ").map(String.init)
                    guard let i = words.firstIndex(of: "import"), i + 1 < words.count else { continue }
                    // `import Foundation`, `import struct Foundation.Data`, `@_exported import Foundation` …
                    let imported = words[(i + 1)...].first { $0.first?.isUppercase == true } ?? ""
                    #expect(imported.split(separator: ".").first != "Foundation", "Sources/\(module)/\(name): \(line)")
                }
            }
        }
        #expect(files > 100)
    }

    @Test func everyProductTargetHasStrictImports() throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(manifest.contains(#"enableUpcomingFeature("MemberImportVisibility")"#))
        let targets = ["AgentpenPolicy", "AgentpenEvents", "AgentpenConfig", "AgentpenSystem", "AgentpenCommandLine",
                       "AgentpenKernel", "AgentpenProxy", "agentpen"]
        for t in targets {
            guard let start = manifest.range(of: "arget(name: \"\(t)\"") else { Issue.record("no target \(t)"); continue }
            let rest = manifest[start.upperBound...]
            let end = rest.range(of: "),\n")?.lowerBound ?? rest.endIndex
            #expect(rest[..<end].contains("swiftSettings: strictImports"), "\(t)")
        }
    }
}
