import Foundation
import PackagePlugin

/// Embeds every preset under `allowlists/` into the binary as Swift string
/// literals, so the shipped host lists cannot drift from the installed binary.
@main
struct EmbedAllowlists: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let dir = context.package.directoryURL.appending(path: "allowlists")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            .filter { $0.hasSuffix(".preset") }
            .sorted()
            .map { dir.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedPresets.swift")
        return [.buildCommand(
            displayName: "Embedding \(files.count) presets from allowlists/",
            executable: try context.tool(named: "EmbedAllowlistsTool").url,
            arguments: [output.path] + files.map(\.path),
            inputFiles: files,
            outputFiles: [output])]
    }
}
