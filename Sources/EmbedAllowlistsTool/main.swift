import Foundation

// Usage: EmbedAllowlistsTool OUTPUT.swift FILE.preset...
// Writes `embeddedPresets: [String: String]`, name (file name without extension) → text.
let args = CommandLine.arguments.dropFirst()
guard let output = args.first else {
    FileHandle.standardError.write(Data("usage: EmbedAllowlistsTool OUTPUT FILE...\n".utf8))
    exit(2)
}
var source = "// Generated at build time from allowlists/; do not edit.\n"
source += "let embeddedPresets: [String: String] = [\n"
for path in args.dropFirst() {
    let url = URL(fileURLWithPath: path)
    let name = url.deletingPathExtension().lastPathComponent
    let text = try String(contentsOf: url, encoding: .utf8)
    // A raw string with enough #s that no line of the file can end it.
    var hashes = "#"
    while text.contains("\"" + hashes) { hashes += "#" }
    source += "    \(String(reflecting: name)): \(hashes)\"\"\"\n\(text)\n\"\"\"\(hashes),\n"
}
source += "]\n"
try source.write(toFile: output, atomically: false, encoding: .utf8)
