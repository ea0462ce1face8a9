import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JellyClient
import JellyCore
import JellyTestSupport
import NATSClient
import Synchronization
import Testing

/// A three-node NATS cluster (R3, sync always) and two real `jelly serve --nats` nodes.
final class TwoNodeCluster: ClusterFixture, @unchecked Sendable {
    let nats: NATSTestServers
    let prefix = "F" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private(set) var nodes: [JellyServeProcess] = []
    var clients: [JellyClient] = []

    init() async throws {
        nats = try await NATSTestServers(count: 3)
        do {
            for _ in 0..<2 { nodes.append(try startNode()) }
            clients = try nodes.map { try client($0) }
            for c in clients { try await waitHealthy(c) }
        } catch {
            await finish()
            throw error
        }
    }

    func startNode() throws -> JellyServeProcess {
        let config = nats.directory.path + "/jelly-\(prefix).json"
        if !FileManager.default.fileExists(atPath: config) {
            let json = """
            {"nats": {"servers": [\(nats.nodes.map { "\"\($0.url)\"" }.joined(separator: ","))], "shards": 2, "replicas": 3,
                      "stream_prefix": "\(prefix)", "subject_prefix": "\(prefix.lowercased())", "request_timeout_ms": 3000}}
            """
            try json.write(toFile: config, atomically: true, encoding: .utf8)
        }
        return try JellyServeProcess(arguments: ["--config", config])
    }

    func client(_ node: JellyServeProcess) throws -> JellyClient {
        var config = JellyClient.Configuration(url: node.base)
        config.retries = 0
        config.requestTimeoutMilliseconds = 10_000
        return try JellyClient(config)
    }

    func waitHealthy(_ c: JellyClient) async throws { try await waitUntilServing(c) }

    /// Replaces node `i` with a new process (after it was killed).
    func restartNode(_ i: Int) async throws {
        nodes[i] = try startNode()
        try await clients[i].close()
        clients[i] = try client(nodes[i])
        try await waitHealthy(clients[i])
    }

    func leader(of stream: String) async throws -> String { try await streamLeader(stream, servers: nats.urls) }

    func finish() async {
        for c in clients { try? await c.close() }
        clients = []
        for n in nodes where n.process.isRunning { n.kill(signal: SIGKILL) }
        nats.finish()
    }

    /// Runs `body` on a fresh cluster and always tears it down.
    static func run(_ body: (TwoNodeCluster) async throws -> Void) async throws {
        try await TwoNodeCluster().use(body)
    }
}

@Suite(.serialized) struct ClusterFaultTests {
    /// The session workload through both nodes while the leader of a stream is SIGKILLed:
    /// requests may fail with `unavailable`, never with a wrong answer; no acknowledged save is
    /// lost; the killed server restarts and catches up.
    @Test func streamLeaderKilledDuringSessions() async throws {
        try await TwoNodeCluster.run { cluster in
        let players = 6
        // The last value each player's save was acknowledged with, and the highest it sent.
        let acked = Shared<[Int: Int]>([:])
        let attempted = Shared<[Int: Int]>([:])
        let wrong = Shared<[String]>([])
        let stop = Shared(false)
        let clients = cluster.clients

        let workload = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for p in 0..<players {
                    group.addTask {
                        let partition = "player-\(p)"
                        var node = p % 2
                        var lock: LockInfo?
                        while lock == nil {
                            do { lock = try await clients[node].acquireLock(partition: partition, owner: "gs-\(p)", ttlMilliseconds: 120_000) } catch let e as JellyError where e.code == .unavailable {
                                node = 1 - node
                                try await Task.sleep(for: .milliseconds(200))
                            }
                        }
                        guard let token = lock?.token else { return }
                        var value = 0
                        while !stop.withLock({ $0 }) {
                            value += 1
                            attempted.withLock { $0[p] = value }
                            do {
                                try await clients[node].put(partition: partition, key: "progress", value: Array(String(value).utf8), lockToken: token)
                                acked.withLock { $0[p] = value }
                            } catch let e as JellyError where e.code == .unavailable {
                                node = 1 - node // the game server retries on the other node
                                try await Task.sleep(for: .milliseconds(100))
                            } catch {
                                wrong.withLock { $0.append("player \(p) value \(value): \(error)") }
                                return
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        try await Task.sleep(for: .seconds(2))
        let victim = try await cluster.leader(of: "\(cluster.prefix)_0")
        let before = acked.withLock { $0 }
        cluster.nats.kill(victim)
        try await Task.sleep(for: .seconds(8)) // a new leader is elected within ~6 s
        let during = acked.withLock { $0 }
        try cluster.nats.start(victim)
        // Every player must make progress after the kill. Under a loaded machine a save can sit
        // in a request that only times out late, so wait for it (up to 30 s) instead of a fixed
        // while; the expectation below still fails if a player never progresses.
        for _ in 0..<150 {
            let now = acked.withLock { $0 }
            if (0..<players).allSatisfy({ now[$0, default: 0] > before[$0, default: 0] }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        stop.withLock { $0 = true }
        try await workload.value

        #expect(wrong.withLock { $0 }.isEmpty, "wrong answers: \(wrong.withLock { $0 })")
        let final = acked.withLock { $0 }
        for p in 0..<players {
            #expect(final[p, default: 0] > before[p, default: 0], "player \(p) made progress after the kill: \(before[p, default: 0]) → \(final[p, default: 0]) (during \(during[p, default: 0]))")
            // Every acknowledged save is there, through both nodes; a save whose answer was lost
            // may have landed too, so the stored value is between the last ack and the last attempt.
            for c in clients {
                let stored = try await c.get(partition: "player-\(p)", key: "progress").map { Int(String(decoding: $0.value, as: UTF8.self)) ?? -1 } ?? 0
                let high = attempted.withLock { $0[p, default: 0] }
                #expect(stored >= final[p, default: 0] && stored <= high, "player \(p): stored \(stored), last acknowledged \(final[p, default: 0]), last sent \(high)")
            }
        }
        // The restarted server catches up: every replica of every stream is current again.
        let connection = try await NATSConnection.connect(options: NATSOptions(servers: try NATSServerAddress.list(cluster.nats.urls)), timeout: .seconds(30))
        let js = JetStream(connection: connection)
        var current = false
        for _ in 0..<200 where !current {
            var all = true
            for shard in 0..<2 {
                let info = try? await js.streamInfo("\(cluster.prefix)_\(shard)")
                let replicas = info?.cluster?.replicas ?? []
                if replicas.count != 2 || !replicas.allSatisfy({ $0.current == true && $0.offline != true }) { all = false }
            }
            current = all
            if !current { try await Task.sleep(for: .milliseconds(100)) }
        }
        await connection.close()
        #expect(current, "the restarted NATS server caught up")
        }
    }

    /// Two nodes race for one lock: exactly one owner wins. A holder whose lock was transferred
    /// or expired and taken through the other node is fenced on its next save.
    @Test func lockRacesAndTakeoversAcrossNodes() async throws {
        try await TwoNodeCluster.run { cluster in
        let (a, b) = (cluster.clients[0], cluster.clients[1])
        let winners = try await withThrowingTaskGroup(of: String?.self) { group in
            for i in 0..<16 {
                let c = i % 2 == 0 ? a : b
                group.addTask {
                    do { return try await c.acquireLock(partition: "race", owner: "gs-\(i)", ttlMilliseconds: 30_000).owner } catch let e as JellyError where e.code == .locked { return nil }
                }
            }
            var w: [String] = []
            for try await r in group { if let r { w.append(r) } }
            return w
        }
        #expect(winners.count == 1, "winners: \(winners)")

        // Transfer through node B fences the holder's saves through node A.
        let held = try await a.acquireLock(partition: "teleport", owner: "gs-a", ttlMilliseconds: 30_000)
        try await a.put(partition: "teleport", key: "pos", value: Array("1".utf8), lockToken: held.token)
        let moved = try await b.transferLock(partition: "teleport", token: held.token, to: "gs-b", ttlMilliseconds: 30_000)
        #expect(moved.token > held.token)
        try await expectError(.locked, "stale holder after transfer") {
            try await a.put(partition: "teleport", key: "pos", value: Array("stale".utf8), lockToken: held.token)
        }
        try await b.put(partition: "teleport", key: "pos", value: Array("2".utf8), lockToken: moved.token)

        // Expiry, then a takeover through node B, fences the old holder through node A.
        // Long enough for the save to land first on a loaded machine (300 ms was not, in a CI run).
        let short = try await a.acquireLock(partition: "expiry", owner: "gs-a", ttlMilliseconds: 3_000)
        try await a.put(partition: "expiry", key: "k", value: Array("a".utf8), lockToken: short.token)
        try await Task.sleep(for: .milliseconds(3_500))
        let taken = try await b.acquireLock(partition: "expiry", owner: "gs-b", ttlMilliseconds: 30_000)
        #expect(taken.token > short.token)
        try await expectError(.locked, "expired holder after takeover") {
            try await a.put(partition: "expiry", key: "k", value: Array("stale".utf8), lockToken: short.token)
        }
        #expect(try await a.get(partition: "expiry", key: "k")?.value == Array("a".utf8))
        #expect(try await a.get(partition: "teleport", key: "pos")?.value == Array("2".utf8))
        }
    }

    /// A node killed with SIGKILL mid-session: the game server continues on the other node with
    /// its token; nothing acknowledged is lost; the node restarts and serves again.
    @Test func jellyNodeKilledMidSession() async throws {
        try await TwoNodeCluster.run { cluster in
        let (a, b) = (cluster.clients[0], cluster.clients[1])
        let (lock, loaded) = try await a.acquireLockAndLoad(partition: "hero", owner: "gs-1", ttlMilliseconds: 30_000)
        #expect(loaded.isEmpty)
        for i in 1...20 { try await a.put(partition: "hero", key: "xp", value: Array(String(i).utf8), lockToken: lock.token) }
        cluster.nodes[0].kill(signal: SIGKILL)
        await #expect(throws: (any Error).self) { try await a.put(partition: "hero", key: "xp", value: Array("lost".utf8), lockToken: lock.token) }
        #expect(try await b.get(partition: "hero", key: "xp")?.value == Array("20".utf8))
        for i in 21...40 { try await b.put(partition: "hero", key: "xp", value: Array(String(i).utf8), lockToken: lock.token) }
        try await b.saveAndRelease(partition: "hero", [.put(key: "xp", value: Array("41".utf8))], lockToken: lock.token)
        try await cluster.restartNode(0)
        let again = try await cluster.clients[0].acquireLockAndLoad(partition: "hero", owner: "gs-2", ttlMilliseconds: 30_000)
        #expect(again.lock.token > lock.token)
        #expect(again.objects.map { String(decoding: $0.value, as: UTF8.self) } == ["41"])
        }
    }

    /// NATS unreachable at start: the node starts, reports unavailable (health 503, requests
    /// 503 with Retry-After), retries, and serves once NATS comes up.
    @Test func natsUnreachableAtStart() async throws {
        let port = try freePort()
        let dir = try TemporaryDirectory(prefix: "jelly-nats-late")
        defer { dir.remove() }
        let node = try JellyServeProcess(arguments: ["--nats", "nats://127.0.0.1:\(port)", "--nats-replicas", "1", "--nats-shards", "2"])
        defer { if node.process.isRunning { node.kill(signal: SIGKILL) } }
        var health = try await httpGet(node.base + "/v1/health")
        for _ in 0..<50 where !health.body.contains("127.0.0.1:\(port)") {
            try await Task.sleep(for: .milliseconds(100))
            health = try await httpGet(node.base + "/v1/health")
        }
        #expect(health.status == 503)
        #expect(health.body.contains("127.0.0.1:\(port)"), "health names the unreachable server: \(health.body)")
        var client = JellyClient.Configuration(url: node.base)
        client.retries = 0
        let c = try JellyClient(client)
        do {
            try await natsComesUp(node: node, client: c, port: port, dir: dir)
        } catch {
            try? await c.close()
            throw error
        }
        try await c.close()
    }

    func natsComesUp(node: JellyServeProcess, client c: JellyClient, port: Int, dir: TemporaryDirectory) async throws {
        try await expectError(.unavailable, "write while NATS is down") { try await c.put(partition: "p", key: "k", value: [1]) }
        #expect(node.process.isRunning, "no crash")

        // Start NATS on that port: the node connects, makes its streams and serves.
        let config = dir.path + "/nats.conf"
        try "listen: 127.0.0.1:\(port)\njetstream { store_dir: \"\(dir.path)/js\" }\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try Subprocess(try NATSTestServers.binary(), ["-c", config])
        defer { server.terminate(); server.waitUntilExit() }
        var ok = false
        for _ in 0..<150 where !ok {
            ok = (try? await httpGet(node.base + "/v1/health"))?.status == 200
            if !ok { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ok, "health turns ok once NATS is up: \(node.log.suffix(800))")
        try await c.put(partition: "p", key: "k", value: [1])
        #expect(try await c.get(partition: "p", key: "k")?.value == [1])
        #expect(node.kill(signal: SIGTERM) == 0, "graceful stop: \(node.log.suffix(500))")
    }
}

/// A value shared by concurrent tasks.
final class Shared<T: Sendable>: Sendable {
    private let value: Mutex<T>
    init(_ initial: T) { value = Mutex(initial) }
    func withLock<R>(_ body: (inout T) -> R) -> R { value.withLock { body(&$0) } }
}

/// NATS servers and Jelly nodes a test starts and must stop, whatever happens.
protocol ClusterFixture: AnyObject {
    func finish() async
}

extension ClusterFixture {
    /// Runs `body` on the fixture and always tears it down.
    func use(_ body: (Self) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            await finish()
            throw error
        }
        await finish()
    }
}

/// The NATS server leading `stream`, asked through a client of our own.
func streamLeader(_ stream: String, servers: String) async throws -> String {
    let connection = try await NATSConnection.connect(options: NATSOptions(servers: try NATSServerAddress.list(servers)), timeout: .seconds(30))
    let js = JetStream(connection: connection)
    // A loaded machine (the whole suite at once on two cores) can take many seconds.
    for _ in 0..<300 {
        if let leader = try? await js.streamInfo(stream)?.cluster?.leader {
            await connection.close()
            return leader
        }
        try await Task.sleep(for: .milliseconds(100))
    }
    await connection.close()
    throw ConformanceFailure("stream \(stream) has no leader")
}

/// Waits until a Jelly node answers a read (a missing key is an answer).
func waitUntilServing(_ c: JellyClient, timeout: TimeInterval = 30) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        do {
            _ = try await c.get(partition: "health-probe", key: "k")
            return
        } catch {}
        try await Task.sleep(for: .milliseconds(100))
    }
    throw ConformanceFailure("the jelly node did not become ready")
}

/// A plain GET through curl-free Foundation networking.
func httpGet(_ url: String) async throws -> (status: Int, body: String) {
    guard let u = URL(string: url) else { throw ConformanceFailure("bad URL \(url)") }
    let (data, response) = try await URLSession.shared.data(from: u)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}
