import Foundation
import JellyTestSupport
import Testing

/// `jelly bench-jetstream` (the yardstick for cluster mode) runs and reports, in both modes (the
/// batches spread over three streams, as a cluster's saves over its shards).
@Suite struct BenchJetStreamTests {
    @Test(arguments: ["plain", "batch"])
    func theYardstickRuns(mode: String) async throws {
        let servers = try await NATSTestServers(count: 1)
        defer { servers.finish() }
        let streams = mode == "plain" ? 1 : 3
        let (status, output) = try runToEnd(try jellyExecutablePath(), [
            "bench-jetstream", "--nats", servers.urls, "--replicas", "1", "--duration", "1", "--inflight", "4", "--mode", mode, "--streams", String(streams),
        ])
        #expect(status == 0, "\(output)")
        #expect(output.contains(mode == "plain" ? "publishes/s:" : "atomic batches/s:") && output.contains("p99"), "\(output)")
        #expect(output.contains("\(streams) stream(s)") && !output.contains("(0 in "), "\(output)")
    }
}
