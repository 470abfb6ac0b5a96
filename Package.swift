// swift-tools-version:6.0
import PackageDescription

// The folder tree is the architecture:
//   AgentpenConfig  the config files (TOML through TOMLKit) as plain values, their
//                   precedence, provenance and trust rules; pure, no kernel access
//   AgentpenPolicy  pure decisions (CLI parsing, presets, allowlists, sandbox plans,
//                   ClientHello and DNS parsing); no C, no kernel, fully unit-tested
//   AgentpenEvents  the one event type every allow/deny decision passes through
//   AgentpenSystem  the one errno error type and the owning descriptor (pairs, lists); Glibc and the C shim only
//   AgentpenKernel  thin edge to the kernel (spawn, namespaces, seccomp, Landlock, netlink)
//   AgentpenProxy   the SNI proxy, forwarder and DNS responder, on their own epoll loop (Watch)
//   AgentpenCommandLine  the command line's grammar (swift-argument-parser): argv to
//                   plain values (Options, the helpers' arguments); no kernel access
//   agentpen        the executable: dispatches the mode, wires the plan to the kernel edge

// Extension members are visible only from modules a file imports itself
// (otherwise Foundation's, loaded through a dependency, would be picked
// silently and link all of Foundation into every process start).
let strictImports: [SwiftSetting] = [.enableUpcomingFeature("MemberImportVisibility")]

let package = Package(
    name: "agentpen",
    products: [
        .executable(name: "agentpen", targets: ["agentpen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
    ],
    targets: [
        .target(name: "CShim", cSettings: [.define("_GNU_SOURCE")]),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp",
                       providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CNetlink", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .executableTarget(name: "EmbedAllowlistsTool"),
        .plugin(name: "EmbedAllowlists", capability: .buildTool(),
                dependencies: ["EmbedAllowlistsTool"]),
        .target(name: "AgentpenPolicy", swiftSettings: strictImports, plugins: ["EmbedAllowlists"]),
        .target(name: "AgentpenEvents", swiftSettings: strictImports),
        .target(name: "AgentpenConfig",
                dependencies: ["AgentpenPolicy", .product(name: "TOMLKit", package: "TOMLKit")], swiftSettings: strictImports),
        .target(name: "AgentpenSystem", dependencies: ["CShim"], swiftSettings: strictImports),
        .target(name: "AgentpenCommandLine",
                dependencies: ["AgentpenPolicy", .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: strictImports),
        .target(name: "AgentpenKernel",
                dependencies: ["CShim", "CSeccomp", "CNetlink", "AgentpenPolicy", "AgentpenEvents", "AgentpenSystem"], swiftSettings: strictImports),
        .target(name: "AgentpenProxy",
                dependencies: ["CShim", "AgentpenPolicy", "AgentpenEvents", "AgentpenSystem"], swiftSettings: strictImports),
        .executableTarget(name: "agentpen",
                          dependencies: ["AgentpenCommandLine", "AgentpenConfig", "AgentpenPolicy", "AgentpenEvents", "AgentpenSystem", "AgentpenKernel", "AgentpenProxy"], swiftSettings: strictImports),
        // Test helpers shared by several test targets; not part of the product.
        .target(name: "AgentpenTestSupport", dependencies: ["AgentpenPolicy"]),
        .testTarget(name: "AgentpenPolicyTests", dependencies: ["AgentpenPolicy", "AgentpenCommandLine", "AgentpenTestSupport"]),
        .testTarget(name: "AgentpenCommandLineTests", dependencies: ["AgentpenCommandLine", "AgentpenPolicy"]),
        .testTarget(name: "AgentpenProxyTests",
                    dependencies: ["AgentpenProxy", "AgentpenPolicy", "AgentpenEvents", "AgentpenSystem", "CShim", "AgentpenTestSupport"]),
        .testTarget(name: "AgentpenConfigTests", dependencies: ["AgentpenConfig", "AgentpenPolicy"]),
        .testTarget(name: "AgentpenEventsTests", dependencies: ["AgentpenEvents"]),
        .testTarget(name: "AgentpenKernelTests", dependencies: ["AgentpenKernel", "AgentpenPolicy", "AgentpenEvents", "AgentpenSystem", "CSeccomp"]),
        .testTarget(name: "EndToEndTests", dependencies: ["AgentpenPolicy"]),
    ]
)
