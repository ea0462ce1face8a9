// swift-tools-version: 6.1
import PackageDescription

// Modules are split by what they depend on (see docs/architecture.md):
//   CJellySystem  — C: hardware CRC-32C and the few syscalls Swift's Glibc does not expose.
//   JellyCore     — the store contract: names, limits, errors, locks, the `JellyStore` protocol.
//   JellyEngine   — the embedded log-structured engine (depends on JellyCore only).
//   JellyTestSupport — the conformance suite, a manual clock and a fault-injecting file layer.
//   jelly         — the command-line tool (the only target that pulls in argument parsing).
let package = Package(
    name: "Jelly",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Jelly", targets: ["JellyCore", "JellyEngine"]),
        .library(name: "JellyTestSupport", targets: ["JellyTestSupport"]),
        .executable(name: "jelly", targets: ["jelly"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(name: "CJellySystem"),
        .target(name: "JellyCore"),
        .target(name: "JellyEngine", dependencies: ["JellyCore", "CJellySystem"]),
        .target(name: "JellyTestSupport", dependencies: ["JellyCore", "JellyEngine", "CJellySystem"]),
        .executableTarget(
            name: "jelly",
            dependencies: [
                "JellyCore", "JellyEngine", "CJellySystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "JellyCoreTests", dependencies: ["JellyCore", "JellyTestSupport"]),
        .testTarget(
            name: "JellyEngineTests",
            dependencies: ["JellyCore", "JellyEngine", "JellyTestSupport", "CJellySystem", "jelly"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
