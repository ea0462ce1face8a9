import JellyCluster
import JellyCore
import JellyTestSupport
import Logging
import NATSClient
import Testing

/// A cluster store on its own streams (a fresh prefix per case) on real NATS servers, on the
/// case's manual clock.
final class ClusterStoreHarness: ConformanceHarness, @unchecked Sendable {
    let clock = ManualClock()
    let configuration: ClusterStoreConfiguration
    // Replaced only by `restart`, which a case calls from one task at a time.
    private(set) var cluster: ClusterStore

    var store: any JellyStore { cluster }

    init(servers: NATSTestServers, replicas: Int, shards: Int = 2) async throws {
        var config = ClusterStoreConfiguration(nats: NATSOptions(servers: try NATSServerAddress.list(servers.urls)))
        let tag = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        config.streamPrefix = "T\(tag)"
        config.subjectPrefix = "t\(tag)"
        config.shards = shards
        config.replicas = replicas
        config.clock = clock
        var logger = Logger(label: "jelly-cluster-test")
        logger.logLevel = .error
        config.logger = logger
        configuration = config
        cluster = try await ClusterStore.openAndWait(config)
    }

    func restart() async throws {
        try await cluster.close()
        cluster = try await ClusterStore.openAndWait(configuration)
    }

    func finish() async {
        try? await cluster.destroyStreams()
        try? await cluster.close()
    }
}

/// Runs every conformance case on `servers`; a failing case is recorded with its name.
func runConformance(on servers: NATSTestServers, replicas: Int) async throws {
    for c in ConformanceSuite.cases {
        let harness = try await ClusterStoreHarness(servers: servers, replicas: replicas)
        do {
            try await c.perform(on: harness)
        } catch {
            Issue.record("\(c.name): \(error)")
        }
    }
}

@Suite(.serialized) struct ClusterConformanceTests {
    @Test func conformanceOnOneServer() async throws {
        let servers = try await NATSTestServers(count: 1)
        defer { servers.finish() }
        try await runConformance(on: servers, replicas: 1)
    }

    @Test func conformanceOnThreeNodeClusterR3() async throws {
        let servers = try await NATSTestServers(count: 3)
        defer { servers.finish() }
        try await runConformance(on: servers, replicas: 3)
    }
}
