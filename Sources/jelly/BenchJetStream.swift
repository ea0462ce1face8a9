import ArgumentParser
import Foundation
import NATSClient
import NIOCore

/// `jelly bench-jetstream`: JetStream's own rate on a cluster, with nothing of Jelly in between:
/// plain publishes, or two-message atomic batches (what a Jelly save with its fence marker
/// costs JetStream), `--inflight` at a time, into `--streams` streams made for the run (publishers
/// spread over them, as a cluster's partitions over its shards) and deleted after.
/// The yardstick issue 20 measures cluster mode against (docs/benchmarks.md).
struct BenchJetStream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-jetstream",
        abstract: "Measure JetStream's own publish rate (plain or two-message atomic batches) on a NATS cluster."
    )
    @Option(help: "NATS servers, nats://HOST:PORT[,…].") var nats: String
    @Option(help: "plain | batch (two messages, atomic: a Jelly save and its fence marker).") var mode = "batch"
    @Option(help: "Seconds to publish.") var duration: Double = 10
    @Option(help: "Publishes in flight at once.") var inflight = 64
    @Option(name: .customLong("value-bytes"), help: "Bytes per message.") var valueBytes = 4096
    @Option(help: "Replicas of the stream (1, 3 or 5).") var replicas = 3
    @Option(help: "Streams to spread the publishers over (a cluster store's shards: compare like with like).") var streams = 1

    func run() async throws {
        guard mode == "plain" || mode == "batch" else { throw ValidationError("--mode is plain or batch") }
        guard (1...64).contains(streams) else { throw ValidationError("--streams is 1...64") }
        var options = NATSOptions(servers: try NATSServerAddress.list(nats))
        options.name = "jelly-bench-jetstream"
        let connection = try await NATSConnection.connect(options: options, timeout: .seconds(30))
        let js = JetStream(connection: connection, timeout: .seconds(10))
        let prefix = "JELLYBENCH_" + String(UInt32.random(in: 0...UInt32.max), radix: 36).uppercased()
        let names = (0..<streams).map { "\(prefix)_\($0)" }
        for name in names {
            var config = StreamConfig(name: name, subjects: [name.lowercased() + ".>"])
            config.numReplicas = replicas
            config.allowAtomic = true
            _ = try await js.createStream(config)
        }
        printError("jelly bench-jetstream: \(mode) publishes of \(valueBytes) B, \(inflight) in flight, \(format1(duration)) s, \(streams) stream(s) \(prefix)_* (R\(replicas))")
        let payload = ByteBuffer(bytes: [UInt8](repeating: 0x4A, count: valueBytes))
        let deadline = monotonicSeconds() + duration
        let start = monotonicSeconds()
        let results: [[UInt64]] = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for w in 0..<inflight {
                let subjectBase = names[w % names.count].lowercased()
                group.addTask {
                    var latencies: [UInt64] = []
                    var i = 0
                    while monotonicSeconds() < deadline {
                        i += 1
                        let t0 = monotonicNanos()
                        let subject = "\(subjectBase).p\(w).k\(i % 16)"
                        if mode == "plain" {
                            _ = try await js.publish(subject, payload: payload)
                        } else {
                            _ = try await js.publishAtomic([
                                JetStream.BatchMessage(subject: subject, payload: payload),
                                JetStream.BatchMessage(subject: "\(subjectBase).p\(w).f"),
                            ])
                        }
                        latencies.append(monotonicNanos() - t0)
                    }
                    return latencies
                }
            }
            var all: [[UInt64]] = []
            for try await r in group { all.append(r) }
            return all
        }
        let elapsed = monotonicSeconds() - start
        for name in names { try? await js.deleteStream(name) }
        await connection.close()
        let latencies = results.flatMap { $0 }.sorted()
        func p(_ q: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            return Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * q))]) / 1e6
        }
        print("\(mode == "plain" ? "publishes" : "atomic batches")/s: \(format1(Double(latencies.count) / elapsed))  (\(latencies.count) in \(format2(elapsed)) s)")
        print("latency ms:        p50 \(format2(p(0.5)))  p99 \(format2(p(0.99)))  max \(format2(p(1)))")
    }
}
