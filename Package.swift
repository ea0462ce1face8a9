// swift-tools-version: 6.1
import PackageDescription

// Modules are split by what they depend on (see docs/architecture.md):
//   CJellySystem  — C: hardware CRC-32C and the few syscalls Swift's Glibc does not expose.
//   JellyCore     — the store contract: names, limits, errors, locks, the `JellyStore` protocol.
//   JellyEngine   — the embedded log-structured engine (depends on JellyCore only).
//   JellyTestSupport — the conformance suite, a manual clock and a fault-injecting file layer.
//   JellyServer   — the HTTP API v1 over any JellyStore (Hummingbird); never imported by the engine.
//   JellyClient   — the Swift client of HTTP API v1: a `JellyStore` over the network (async-http-client).
//   NATSClient    — a small NATS + JetStream client over SwiftNIO; knows nothing of Jelly.
//   JellyCluster  — the JetStream cluster backend: a `JellyStore` over NATSClient.
//   JellyReplica  — a client replica of one partition on a device, over any `JellyStore`
//                   (a `JellyClient` in a game client); its local store is the embedded engine.
//   jelly         — the command-line tool (the only target that pulls in argument parsing).
let package = Package(
    name: "Jelly",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Jelly", targets: ["JellyCore", "JellyEngine"]),
        .library(name: "JellyTestSupport", targets: ["JellyTestSupport"]),
        .library(name: "JellyServer", targets: ["JellyServer"]),
        .library(name: "JellyClient", targets: ["JellyClient"]),
        .library(name: "JellyCluster", targets: ["JellyCluster"]),
        .library(name: "NATSClient", targets: ["NATSClient"]),
        .library(name: "GodotVariant", targets: ["GodotVariant"]),
        .library(name: "JellyReplica", targets: ["JellyReplica"]),
        .executable(name: "jelly", targets: ["jelly"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
    ],
    targets: [
        .target(name: "CJellySystem"),
        .target(name: "JellyCore"),
        .target(name: "JellyEngine", dependencies: ["JellyCore", "CJellySystem"]),
        .target(name: "JellyTestSupport", dependencies: ["JellyCore", "JellyEngine", "CJellySystem"]),
        .target(
            name: "JellyServer",
            dependencies: [
                "JellyCore", "GodotVariant",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                // Graceful shutdown of sockets served outside Hummingbird's HTTP handling.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ]
        ),
        .target(
            name: "JellyClient",
            dependencies: [
                "JellyCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        .target(
            name: "NATSClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "JellyCluster",
            dependencies: [
                "JellyCore", "NATSClient", "CJellySystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "JellyReplica", dependencies: ["JellyCore", "JellyEngine"]),
        // Godot's binary serialization, decoded without the engine; depends on nothing.
        .target(name: "GodotVariant"),
        .executableTarget(
            name: "jelly",
            dependencies: [
                "JellyCore", "JellyEngine", "CJellySystem", "JellyServer", "JellyClient", "JellyCluster", "NATSClient", "JellyReplica", "GodotVariant",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "JellyCoreTests", dependencies: ["JellyCore", "JellyTestSupport"]),
        .testTarget(name: "GodotVariantTests", dependencies: ["GodotVariant", "JellyTestSupport"]),
        .testTarget(
            name: "JellyServerTests",
            dependencies: [
                "JellyCore", "JellyEngine", "JellyTestSupport", "JellyClient", "JellyServer", "jelly", "GodotVariant",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ]
        ),
        .testTarget(
            name: "JellyClusterTests",
            dependencies: [
                "JellyCore", "JellyTestSupport", "JellyCluster", "NATSClient", "JellyClient", "jelly",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "JellyEngineTests",
            dependencies: ["JellyCore", "JellyEngine", "JellyTestSupport", "CJellySystem"]
        ),
        .testTarget(name: "JellyReplicaTests", dependencies: ["JellyCore", "JellyEngine", "JellyTestSupport", "JellyReplica"]),
        // Tests that run the `jelly` executable: the SIGKILL crash test (`jelly crash-writer`) and
        // the CLI. Apart, so that the engine's tests build neither Hummingbird nor NATS.
        .testTarget(
            name: "JellyCLITests",
            dependencies: ["JellyCore", "JellyEngine", "JellyTestSupport", "jelly"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
