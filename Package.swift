// swift-tools-version: 6.1
import PackageDescription

// Modules are split by what they depend on (see docs/architecture.md):
//   CJellySystem  — C: hardware CRC-32C and the few syscalls Swift's Glibc does not expose.
//   JellyCore     — the store contract: names, limits, errors, locks, the `JellyStore` protocol.
//   JellyEngine   — the embedded log-structured engine (depends on JellyCore only).
//   JellyTestSupport — the conformance suite, a manual clock and a fault-injecting file layer.
//   JellyServer   — the HTTP API v1 over any JellyStore (Hummingbird); never imported by the engine.
//   jelly         — the command-line tool (the only target that pulls in argument parsing).
let package = Package(
    name: "Jelly",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Jelly", targets: ["JellyCore", "JellyEngine"]),
        .library(name: "JellyTestSupport", targets: ["JellyTestSupport"]),
        .library(name: "JellyServer", targets: ["JellyServer"]),
        .executable(name: "jelly", targets: ["jelly"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .target(name: "CJellySystem"),
        .target(name: "JellyCore"),
        .target(name: "JellyEngine", dependencies: ["JellyCore", "CJellySystem"]),
        .target(name: "JellyTestSupport", dependencies: ["JellyCore", "JellyEngine", "CJellySystem"]),
        .target(
            name: "JellyServer",
            dependencies: [
                "JellyCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "jelly",
            dependencies: [
                "JellyCore", "JellyEngine", "CJellySystem", "JellyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "JellyCoreTests", dependencies: ["JellyCore", "JellyTestSupport"]),
        .testTarget(name: "JellyServerTests", dependencies: ["JellyCore", "JellyTestSupport", "jelly"]),
        .testTarget(
            name: "JellyEngineTests",
            dependencies: ["JellyCore", "JellyEngine", "JellyTestSupport", "CJellySystem", "jelly"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
