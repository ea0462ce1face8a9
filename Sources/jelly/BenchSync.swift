import ArgumentParser
import Foundation
import JellyClient
import JellyCore
import NIOCore
import NIOPosix
import Synchronization

/// `jelly bench-sync`: client replicas against a running `jelly serve` (docs/benchmarks.md).
///
/// - feed: game-server saves at `--rate` to `--partitions` partitions over raw HTTP/1.1
///   connections, first with nobody watching, then with every partition watched over
///   `--sockets` WebSockets (`/v1/watch`). Reports the save rate of both runs and the delay
///   from the save's acknowledgement (and from its sending) to its delivery on a socket.
/// - push: `--replicas` sync clients, each pushing batches of `--batch` mutations to its own
///   partition (`POST /sync` through `JellyClient`), as fast as answers come. Reports applied
///   mutations per second and the time per push.
struct BenchSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sync",
        abstract: "Benchmark the change feed and client pushes against a running jelly serve."
    )

    @Option(help: "The server (http:// only: the feed uses WebSockets).") var url: String
    @Option(help: "An API key, when the server has auth.") var key: String?
    @Option(help: "feed, push or both.") var mode: String = "both"
    @Option(help: "Seconds each measured run lasts.") var duration: Double = 10
    @Option(help: "Feed: partitions saved to and watched.") var partitions: Int = 1000
    @Option(help: "Feed: WebSockets the partitions are spread over.") var sockets: Int = 10
    @Option(help: "Feed: game-server saves per second (open loop).") var rate: Int = 10_000
    @Option(help: "Feed: HTTP/1.1 connections the saves go over.") var writers: Int = 48
    @Option(help: "Push: sync clients, each with its own partition.") var replicas: Int = 64
    @Option(help: "Push: mutations per push.") var batch: Int = 100
    @Option(help: "Push: raw (one hand-written HTTP/1.1 connection per client: the server's figures) or jellyclient (JellyClient.sync).") var pushClient: BenchHTTPClient = .raw
    @Option(help: "Push: mutations per second in all, paced per client (open loop); 0: every client pushes again as soon as it has its answer.") var pushRate: Int = 20_000

    func run() async throws {
        guard ["feed", "push", "both"].contains(mode) else { throw ValidationError("--mode must be feed, push or both") }
        print("jelly bench-sync: \(url), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(duration) s per run")
        if mode != "push" { try await feed() }
        if mode != "feed" { try await push() }
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    // MARK: Feed

    /// What the sockets saw: (save sequence, sent at, delivered at).
    final class Deliveries: Sendable {
        let seen = Mutex<[(UInt64, UInt64, UInt64)]>([])
        let acks = Mutex<[UInt64: UInt64]>([:])
        /// Partitions whose first message (their state) arrived.
        let ready = Mutex(0)
    }

    func feed() async throws {
        print("feed: \(partitions) partitions, saves at \(rate)/s over \(writers) connections, \(sockets) WebSockets")
        let group = MultiThreadedEventLoopGroup.singleton
        var targets: [RawHTTPTarget] = []
        for _ in 0..<writers { targets.append(try await RawHTTPTarget.connect(url: url, token: key, group: group)) }
        let names = (0..<partitions).map { "bench-feed-\($0)" }

        let quiet = try await saves(targets, names, deliveries: nil)
        print(String(format: "  no watchers:   %.0f saves/s", quiet))

        var watchers: [FeedSocketClient] = []
        let deliveries = Deliveries()
        for _ in 0..<sockets { watchers.append(try await FeedSocketClient.watchMany(url: url, bearerToken: key)) }
        // The first message of each partition is its state: after it, every message is news.
        let readers = watchers.map { socket in
            Task {
                var first = Set<String>()
                for await message in socket.messages {
                    guard case .changes(let partition, let batch) = message else { continue }
                    if first.insert(partition).inserted { deliveries.ready.withLock { $0 += 1 }; continue }
                    let at = Self.now()
                    for change in batch.changes {
                        guard let v = change.object?.value, v.count >= 16 else { continue }
                        let sent = v.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                        let seq = v.dropFirst(8).prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                        deliveries.seen.withLock { $0.append((seq, sent, at)) }
                    }
                }
            }
        }
        for (i, name) in names.enumerated() { watchers[i % sockets].subscribe(name, since: 0) }
        let deadline = Date().addingTimeInterval(30)
        while deliveries.ready.withLock({ $0 }) < partitions && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let watched = try await saves(targets, names, deliveries: deliveries)
        try await Task.sleep(for: .milliseconds(500)) // the last deliveries
        for w in watchers { await w.close() }
        for r in readers { r.cancel() }
        for t in targets { await t.close() }

        let seen = deliveries.seen.withLock { $0 }
        let acks = deliveries.acks.withLock { $0 }
        var fromSend: [Double] = []
        var fromAck: [Double] = []
        var early = 0
        for (seq, sent, at) in seen {
            fromSend.append(Double(at &- sent) / 1e6)
            if let ack = acks[seq] {
                if at < ack { early += 1; fromAck.append(0) } else { fromAck.append(Double(at - ack) / 1e6) }
            }
        }
        let saved = acks.count
        print(String(format: "  %d watchers:  %.0f saves/s (%.1f%% of the unwatched rate)", partitions, watched, 100 * watched / max(quiet, 1)))
        print("  delivered \(seen.count) of \(saved) saves (a partition saved twice between deliveries is delivered once, at its latest)")
        print("  acknowledgement → delivery: \(Self.percentiles(fromAck)) ms (\(early) delivered before the writer had its answer)")
        print("  sent → delivery:             \(Self.percentiles(fromSend)) ms")
    }

    /// Saves at `rate` for `duration`, paced per connection; returns the achieved rate.
    func saves(_ targets: [RawHTTPTarget], _ names: [String], deliveries: Deliveries?) async throws -> Double {
        let perWriter = Double(rate) / Double(targets.count)
        let interval = UInt64(1e9 / perWriter)
        let start = Self.now()
        let end = start + UInt64(duration * 1e9)
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for (w, target) in targets.enumerated() {
                group.addTask {
                    var next = start + UInt64(w) * interval / UInt64(targets.count)
                    var n = 0
                    var seq = UInt64(w) << 40
                    while true {
                        let t = Self.now()
                        if t >= end { break }
                        if next > t { try await Task.sleep(for: .nanoseconds(Int(next - t))) }
                        next += interval
                        seq += 1
                        let sent = Self.now()
                        var value = [UInt8](repeating: 0, count: 64)
                        for i in 0..<8 { value[i] = UInt8(truncatingIfNeeded: sent >> (8 * UInt64(i))); value[8 + i] = UInt8(truncatingIfNeeded: seq >> (8 * UInt64(i))) }
                        try await target.put(partition: names[Int(seq % UInt64(names.count))], key: "state", value: value)
                        if let deliveries { let at = Self.now(); deliveries.acks.withLock { $0[seq] = at } }
                        n += 1
                    }
                    return n
                }
            }
            var total = 0
            for try await n in group { total += n }
            return total
        }
        return Double(counts) / (Double(Self.now() - start) / 1e9)
    }

    // MARK: Push

    func push() async throws {
        print("push: \(replicas) sync clients, \(batch) mutations per push, each to its own partition, " + (pushRate > 0 ? "\(pushRate) mutations/s in all (open loop)" : "each pushing again at once (closed loop)"))
        let interval: UInt64 = pushRate > 0 ? UInt64(1e9 * Double(replicas * batch) / Double(pushRate)) : 0
        var config = JellyClient.Configuration(url: url, bearerToken: key)
        config.connectionsPerHost = replicas
        let client = try JellyClient(config)
        var raw: [RawHTTPTarget] = []
        if pushClient == .raw {
            for _ in 0..<replicas { raw.append(try await RawHTTPTarget.connect(url: url, token: key, group: MultiThreadedEventLoopGroup.singleton)) }
        }
        let connections = raw
        let start = Self.now()
        let end = start + UInt64(duration * 1e9)
        let results = try await withThrowingTaskGroup(of: (Int, [Double]).self) { group in
            for r in 0..<replicas {
                group.addTask {
                    let partition = "bench-push-\(r)-\(start)"
                    var versions: [String: UInt64] = [:]
                    var id: UInt64 = 0
                    var applied = 0
                    var times: [Double] = []
                    var next = start + (interval * UInt64(r)) / UInt64(replicas)
                    while Self.now() < end {
                        if interval > 0 {
                            if next >= end { break }
                            let t = Self.now()
                            if next > t { try await Task.sleep(for: .nanoseconds(Int(next - t))) }
                            next += interval
                        }
                        var mutations: [ClientMutation] = []
                        for k in 0..<batch {
                            id += 1
                            let key = "k\(k)"
                            mutations.append(ClientMutation(id: id, key: key, operation: .put(value: Array("value \(id)".utf8), contentType: nil), baseVersion: versions[key] ?? 0))
                        }
                        let t0 = Self.now()
                        if connections.isEmpty {
                            let result = try await client.sync(partition: partition, clientID: "replica-\(r)", mutations: mutations, role: .server)
                            times.append(Double(Self.now() - t0) / 1e6)
                            for (m, entry) in zip(mutations, result.results) {
                                if case .applied(let v) = entry.result { versions[m.key] = v; applied += 1 }
                            }
                        } else {
                            let answer = try await connections[r].send("POST", "/v1/partitions/\(partition)/sync", json: Self.pushJSON(clientID: "replica-\(r)", mutations))
                            times.append(Double(Self.now() - t0) / 1e6)
                            // Every mutation of a push is applied at the push's one version (the bench's bases are exact).
                            let text = String(buffer: answer)
                            let applied1 = text.components(separatedBy: "\"status\":\"applied\"").count - 1
                            if let range = text.range(of: "\"version\":"), let v = UInt64(text[range.upperBound...].prefix { $0.isNumber }) {
                                for m in mutations { versions[m.key] = v }
                            }
                            applied += applied1
                        }
                    }
                    return (applied, times)
                }
            }
            var applied = 0
            var times: [Double] = []
            for try await (a, t) in group { applied += a; times += t }
            return (applied, times)
        }
        let seconds = Double(Self.now() - start) / 1e9
        try await client.close()
        for c in raw { await c.close() }
        print(String(format: "  %.0f mutations/s applied (%d in %.1f s, %d pushes)", Double(results.0) / seconds, results.0, seconds, results.1.count))
        print("  per push: \(Self.percentiles(results.1)) ms")
    }

    /// A push's body, written by hand (the bench measures the server, not an encoder).
    static func pushJSON(clientID: String, _ mutations: [ClientMutation]) -> String {
        var out = "{\"client_id\":\"\(clientID)\",\"mutations\":["
        for (i, m) in mutations.enumerated() {
            if i > 0 { out += "," }
            guard case .put(let value, _) = m.operation else { continue }
            out += "{\"id\":\(m.id),\"key\":\"\(m.key)\",\"op\":\"put\",\"base_version\":\(m.baseVersion),\"value_base64\":\"\(Data(value).base64EncodedString())\"}"
        }
        return out + "]}"
    }

    static func percentiles(_ values: [Double]) -> String {
        guard !values.isEmpty else { return "none" }
        let sorted = values.sorted()
        func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))] }
        return String(format: "p50 %.2f, p90 %.2f, p99 %.2f, max %.2f", at(0.5), at(0.9), at(0.99), sorted[sorted.count - 1])
    }
}
