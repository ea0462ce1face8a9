import Foundation
import JellyClient
import JellyCore
import JellyTestSupport
import NATSClient
import NIOCore
import Synchronization
import Testing

/// Three NATS servers and two Jelly nodes on separate hosts (`TestNetwork`: network namespaces),
/// game servers' traffic from this machine to the Jelly nodes' client addresses.
final class NetworkCluster: ClusterFixture, @unchecked Sendable {
    let network: TestNetwork
    let nats: NATSTestServers
    let prefix = "N" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private(set) var nodes: [JellyServeProcess] = []
    private(set) var clients: [JellyClient] = []
    let hosts = ["j1", "j2"]

    /// `servers`: the NATS servers each Jelly host lists (all three by default); `delayMilliseconds`:
    /// the latency between any two hosts, each way.
    init(servers: [String: [String]] = [:], delayMilliseconds: Int = 0) async throws {
        network = try TestNetwork(delayMilliseconds: delayMilliseconds)
        do {
            nats = try await NATSTestServers(count: 3, network: network)
        } catch {
            network.finish()
            throw error
        }
        do {
            for host in hosts {
                // Every node starts with a random server of its list: the connections spread.
                let listed = nats.nodes.filter { servers[host]?.contains($0.name) ?? true }
                let config = nats.directory.path + "/jelly-\(host).json"
                let json = """
                {"nats": {"servers": [\(listed.map { "\"\($0.url)\"" }.joined(separator: ","))], "shards": 2, "replicas": 3,
                          "stream_prefix": "\(prefix)", "subject_prefix": "\(prefix.lowercased())", "request_timeout_ms": 3000}}
                """
                try json.write(toFile: config, atomically: true, encoding: .utf8)
                // The client network is this machine's private bridge: no keys needed.
                nodes.append(try JellyServeProcess(
                    arguments: ["--config", config, "--insecure-allow-unauthenticated-network-access"], network: network, networkHost: host))
            }
            for node in nodes {
                var c = JellyClient.Configuration(url: node.base)
                c.retries = 0
                c.requestTimeoutMilliseconds = 10_000
                clients.append(try JellyClient(c))
            }
            for c in clients { try await waitHealthy(c) }
        } catch {
            await finish()
            throw error
        }
    }

    func waitHealthy(_ c: JellyClient) async throws { try await waitUntilServing(c) }

    /// The NATS server (n1–n3) a Jelly node is connected to now: its log's last "connected to NATS".
    func connectedServer(of node: Int) async throws -> String? {
        guard let line = nodes[node].log.split(separator: "\n").last(where: { $0.contains("connected to NATS") }) else { return nil }
        return nats.nodes.first { line.contains("server=\($0.url) ") }?.name
    }

    /// The NATS server leading `stream`, asked from this machine (on the cluster network).
    func leader(of stream: String) async throws -> String { try await streamLeader(stream, servers: nats.urls) }

    /// Moves every shard stream's leader off `server` (JetStream's leader step-down with a
    /// preferred server) and waits until none is led by it.
    func moveLeaders(awayFrom server: String) async throws {
        let others = nats.nodes.map(\.name).filter { $0 != server }
        let connection = try await NATSConnection.connect(options: NATSOptions(servers: try NATSServerAddress.list(nats.urls)), timeout: .seconds(30))
        defer { Task { await connection.close() } }
        for shard in 0..<2 {
            let stream = "\(prefix)_\(shard)"
            for attempt in 0..<20 {
                guard try await leader(of: stream) == server else { break }
                var payload = ByteBuffer()
                payload.writeString(#"{"placement":{"preferred":"\#(others[attempt % others.count])"}}"#)
                _ = try? await connection.request("$JS.API.STREAM.LEADER.STEPDOWN.\(stream)", payload: payload, timeout: .seconds(5))
                try await Task.sleep(for: .milliseconds(500))
            }
            guard try await leader(of: stream) != server else { throw ConformanceFailure("\(stream) is still led by \(server)") }
        }
    }

    /// The game servers' sessions through both nodes, once every player has saved.
    func startSessions(players: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws -> SessionWorkload {
        let work = SessionWorkload(players: players, clients: clients)
        _ = try #require(try await work.recovery(after: .now), "the sessions started", sourceLocation: sourceLocation)
        return work
    }

    /// gs-a holding `partition` through j1 with a 3 s lease, its save "a1" made (key k): the
    /// holder a fault leaves behind, whose lease runs out and who must be fenced after the heal.
    func expiringHolder(of partition: String) async throws -> LockInfo {
        let lock = try await clients[0].acquireLock(partition: partition, owner: "gs-a", ttlMilliseconds: 3_000)
        try await clients[0].put(partition: partition, key: "k", value: Array("a1".utf8), lockToken: lock.token)
        return lock
    }

    func finish() async {
        for c in clients { try? await c.close() }
        clients = []
        for n in nodes where n.process.isRunning { n.kill(signal: SIGKILL) }
        for node in nats.nodes { nats.signal(node.name, SIGCONT) }
        nats.finish()
        network.finish()
    }

    static func run(servers: [String: [String]] = [:], delayMilliseconds: Int = 0, _ body: (NetworkCluster) async throws -> Void) async throws {
        try await NetworkCluster(servers: servers, delayMilliseconds: delayMilliseconds).use(body)
    }
}

/// Game servers' sessions through two Jelly nodes: each player locks its partition through one
/// node and saves without pause; when a node answers `unavailable` (or cannot be reached) the game
/// server goes on through the other node with the same token. Records every acknowledgement's
/// time, so a test can say how long writes stopped and how soon they came back.
final class SessionWorkload: Sendable {
    struct Player: Sendable {
        var acked = 0
        var attempted = 0
        var ackTimes: [ContinuousClock.Instant] = []
        var switches = 0
    }

    let players: Int
    private let state: Mutex<[Player]>
    private let wrongAnswers = Mutex<[String]>([])
    private let stopped = Mutex(false)
    private let task = Mutex<Task<Void, any Error>?>(nil)

    init(players: Int, clients: [JellyClient]) {
        self.players = players
        state = Mutex(Array(repeating: Player(), count: players))
        let t = Task { [self] in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for p in 0..<players {
                    group.addTask { try await self.session(p, clients) }
                }
                try await group.waitForAll()
            }
        }
        task.withLock { $0 = t }
    }

    private func session(_ p: Int, _ clients: [JellyClient]) async throws {
        let partition = "player-\(p)"
        var node = p % clients.count
        var token: LockToken?
        while token == nil && !stopped.withLock({ $0 }) {
            do {
                token = try await clients[node].acquireLock(partition: partition, owner: "gs-\(p)", ttlMilliseconds: 300_000).token
            } catch let e as JellyError where e.code == .unavailable {
                node = (node + 1) % clients.count
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        guard let token else { return }
        var value = 0
        while !stopped.withLock({ $0 }) {
            value += 1
            state.withLock { $0[p].attempted = value }
            do {
                try await clients[node].put(partition: partition, key: "progress", value: Array(String(value).utf8), lockToken: token)
                let now = ContinuousClock.now
                state.withLock {
                    $0[p].acked = value
                    $0[p].ackTimes.append(now)
                }
            } catch let e as JellyError where e.code == .unavailable {
                node = (node + 1) % clients.count
                state.withLock { $0[p].switches += 1 }
                try await Task.sleep(for: .milliseconds(50))
            } catch {
                wrongAnswers.withLock { $0.append("player \(p) value \(value): \(error)") }
                return
            }
        }
    }

    var snapshot: [Player] { state.withLock { $0 } }
    var wrong: [String] { wrongAnswers.withLock { $0 } }

    /// Waits until every player has an acknowledged save after `instant` (up to `timeout`);
    /// from `instant` to the first acknowledgement after it, the soonest and the latest player.
    func recovery(after instant: ContinuousClock.Instant, timeout: Duration = .seconds(45)) async throws -> (first: Duration, all: Duration)? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let firsts = snapshot.map { $0.ackTimes.first { $0 > instant } }
            if firsts.allSatisfy({ $0 != nil }) {
                let times = firsts.compactMap { $0 }
                return (times.min()! - instant, times.max()! - instant)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// The longest time any player went without an acknowledged save between `from` and `to`.
    func longestStall(from: ContinuousClock.Instant, to: ContinuousClock.Instant) -> Duration {
        var longest = Duration.zero
        for player in snapshot {
            var last = from
            for t in player.ackTimes where t > from && t <= to {
                longest = max(longest, t - last)
                last = t
            }
            longest = max(longest, to - last)
        }
        return longest
    }

    /// Stops the sessions and checks, through every client, that each player's stored value is
    /// at least its last acknowledged save and at most the last it sent (one whose answer was
    /// lost may have landed).
    func stopAndVerify(_ clients: [JellyClient], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        stopped.withLock { $0 = true }
        let t = task.withLock { $0 }
        try await t?.value
        #expect(wrong.isEmpty, "wrong answers: \(wrong)", sourceLocation: sourceLocation)
        let final = snapshot
        for p in 0..<players {
            for c in clients {
                // Right after a fault JetStream may still answer "temporarily unavailable".
                var read: StoredObject??
                for _ in 0..<300 where read == nil {
                    do { read = .some(try await c.get(partition: "player-\(p)", key: "progress")) } catch let e as JellyError where e.code == .unavailable {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                guard let read else { throw ConformanceFailure("player \(p) could not be read back for 30 s") }
                let stored = read.map { Int(String(decoding: $0.value, as: UTF8.self)) ?? -1 } ?? 0
                #expect(stored >= final[p].acked && stored <= final[p].attempted,
                        "player \(p): stored \(stored), last acknowledged \(final[p].acked), last sent \(final[p].attempted)", sourceLocation: sourceLocation)
            }
        }
    }
}

func milliseconds(_ d: Duration) -> Int { Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000) }

/// Faults on a real network between separate hosts (network namespaces), each under the session
/// workload through two Jelly nodes. Each prints its recovery time: from the heal (or the pause,
/// for a paused server the nodes must route around) to the first acknowledged save of the first
/// and of the last player. docs/cluster.md lists what each fault does to clients.
@Suite(.serialized) struct ClusterNetworkTests {
    static let players = 6
    static let faultSeconds = 15

    /// A NATS server cut off from the other two and from both Jelly nodes (its link down) for
    /// 15 s: the other two are a quorum, so saves go on (a node connected to the cut server moves
    /// to another within its stall timeout); nothing acknowledged is lost; after the heal the
    /// server catches up.
    @Test func natsServerCutOffAndHealed() async throws {
        try await NetworkCluster.run { cluster in
            let work = try await cluster.startSessions(players: Self.players)
            let victim = try await cluster.leader(of: "\(cluster.prefix)_0")
            let cut = ContinuousClock.now
            try cluster.network.cut(victim)
            try await Task.sleep(for: .seconds(Self.faultSeconds))
            let healed = ContinuousClock.now
            try cluster.network.heal(victim)
            let stall = work.longestStall(from: cut, to: healed)
            let recovery = try #require(try await work.recovery(after: healed), "every player saves again after the heal")
            print("fault: NATS server \(victim) (stream leader) cut off \(Self.faultSeconds) s: longest stall \(milliseconds(stall)) ms; after the heal, first save \(milliseconds(recovery.first)) ms, every player \(milliseconds(recovery.all)) ms")
            // The server led a stream: its followers elect a new leader after NATS's Raft election
            // timeout (4–9 s, fixed in nats-server; longer on a starved machine), so the stall is
            // reported, not bounded here; what Jelly owes is the recovery after the heal.
            #expect(recovery.all < .seconds(10))
            try await work.stopAndVerify(cluster.clients)
        }
    }

    /// The hosts 5 ms apart each way (tc netem, or scripts/netdelay.c where the kernel has none):
    /// sessions work across them, each save's time shows its hops (game server → node → stream
    /// leader → a follower and back: at least six one-way trips), and a Jelly node cut off from
    /// NATS under that latency is left and comes back as on a quiet network.
    @Test func sessionsAcrossLinksOf5ms() async throws {
        try await NetworkCluster.run(delayMilliseconds: 5) { cluster in
            let work = try await cluster.startSessions(players: Self.players)
            let from = ContinuousClock.now
            try await Task.sleep(for: .seconds(3))
            let to = ContinuousClock.now
            var gaps: [Duration] = []
            for player in work.snapshot {
                let times = player.ackTimes.filter { $0 > from && $0 <= to }
                gaps += zip(times.dropFirst(), times).map { $0 - $1 }
            }
            gaps.sort()
            let median = try #require(gaps.isEmpty ? nil : gaps[gaps.count / 2], "saves were acknowledged across the 5 ms links")
            print("latency: hosts 5 ms apart: \(gaps.count + Self.players) saves in 3 s by \(Self.players) game servers, a save every \(milliseconds(median)) ms (median)")
            #expect(median >= .milliseconds(30), "six one-way trips of 5 ms at least: the delay is in effect")
            // (Under the whole suite a save took 266 ms here: the bound only says saves go on.)
            #expect(median < .seconds(2))
            let cut = ContinuousClock.now
            try cluster.network.cut("j1")
            try await Task.sleep(for: .seconds(5))
            let healed = ContinuousClock.now
            try cluster.network.heal("j1")
            let stall = work.longestStall(from: cut, to: healed)
            try await cluster.waitHealthy(cluster.clients[0])
            let back = ContinuousClock.now - healed
            let recovery = try #require(try await work.recovery(after: healed), "every player saves again after the heal")
            print("fault, hosts 5 ms apart: Jelly node j1 cut off from NATS 5 s: longest stall \(milliseconds(stall)) ms; after the heal, j1 serves in \(milliseconds(back)) ms, every player saves in \(milliseconds(recovery.all)) ms")
            #expect(stall < .seconds(5))
            #expect(back < .seconds(10))
            try await work.stopAndVerify(cluster.clients)
        }
    }

    /// A NATS server cut off from its two peers but not from its clients, for 15 s, while j1
    /// knows only that server (the minority side) and j2 the other two (the majority). Through j1
    /// no save succeeds (503); a holder on j1 whose lease expired meanwhile is fenced after the
    /// heal and its save never lands; every acknowledged save is kept; a read through j1 answers
    /// 503 or the majority's value, never the stale one.
    @Test func natsServerIsolatedFromItsPeers() async throws {
        try await NetworkCluster.run(servers: ["j1": ["n1"], "j2": ["n2", "n3"]]) { cluster in
            let (a, b) = (cluster.clients[0], cluster.clients[1])
            let stale = try await cluster.expiringHolder(of: "minority")
            let work = try await cluster.startSessions(players: Self.players)
            let isolated = ContinuousClock.now
            try cluster.network.isolate("n1")

            var wrong: [String] = []
            do {
                try await a.put(partition: "minority", key: "k", value: Array("a2-minority".utf8), lockToken: stale.token)
                wrong.append("a save through the minority side was acknowledged")
            } catch let e as JellyError where e.code == .unavailable {}
            // The lease runs out; gs-b takes the partition on the majority side (after its
            // election, if n1 led the stream) and saves.
            try await Task.sleep(until: isolated + .seconds(4))
            var taken: LockInfo?
            // (The partition lasts until it did: an election on a loaded machine can take long.)
            while taken == nil && ContinuousClock.now < isolated + .seconds(40) {
                do { taken = try await b.acquireLock(partition: "minority", owner: "gs-b", ttlMilliseconds: 60_000) } catch let e as JellyError where e.code == .unavailable {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            let token = try #require(taken, "the majority side took the lock during the partition").token
            try await b.put(partition: "minority", key: "k", value: Array("b1".utf8), lockToken: token)
            // A read through the minority side is a 503 or the majority's value, never "a1": n1
            // still thinks it leads for up to nats-server's lost-quorum interval (10 s) and would
            // answer from its stale copy, but a read must prove it reached a barrier the cluster
            // acknowledged after it began (docs/cluster.md, "Reads"), which n1 cannot.
            var seenThroughMinority: [String] = []
            for _ in 0..<3 {
                do {
                    seenThroughMinority.append(try await a.get(partition: "minority", key: "k").map { String(decoding: $0.value, as: UTF8.self) } ?? "nothing")
                } catch let e as JellyError where e.code == .unavailable {
                    seenThroughMinority.append("503")
                }
            }
            for seen in seenThroughMinority where seen != "b1" && seen != "503" {
                wrong.append("a read through the minority side answered \(seen) after b1 was acknowledged")
            }
            try await Task.sleep(until: isolated + .seconds(Self.faultSeconds))
            let healed = ContinuousClock.now
            try cluster.network.heal("n1")
            // The expired holder is fenced through its own node once n1 is back in the cluster.
            var fenced = false
            while !fenced && ContinuousClock.now < healed + .seconds(30) {
                do {
                    try await a.put(partition: "minority", key: "k", value: Array("a3".utf8), lockToken: stale.token)
                    wrong.append("the expired holder's save after the heal was acknowledged")
                    break
                } catch let e as JellyError where e.code == .locked {
                    fenced = true
                } catch let e as JellyError where e.code == .unavailable {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            let back = ContinuousClock.now - healed
            #expect(fenced, "the expired holder is fenced after the heal")
            #expect(try await b.get(partition: "minority", key: "k")?.value == Array("b1".utf8))
            // Reads through j1 answer 503 until n1 has caught up, then b1: never anything else.
            var staleFor: Duration?
            while staleFor == nil && ContinuousClock.now < healed + .seconds(40) {
                do {
                    let v = try await a.get(partition: "minority", key: "k").map { String(decoding: $0.value, as: UTF8.self) } ?? "nothing"
                    if v == "b1" { staleFor = ContinuousClock.now - healed } else { wrong.append("a read through j1 after the heal answered \(v)"); break }
                } catch let e as JellyError where e.code == .unavailable {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(staleFor != nil, "reads through j1 see b1 after the heal")
            #expect(wrong.isEmpty, "\(wrong)")
            let stall = work.longestStall(from: isolated, to: healed)
            let recovery = try #require(try await work.recovery(after: healed))
            print("fault: NATS server n1 isolated from its peers \(Self.faultSeconds) s, j1 on it alone: saves through j1 answered 503; reads through j1 during it: \(seenThroughMinority.joined(separator: ", ")); reads through j1 fresh \(staleFor.map { "\(milliseconds($0))" } ?? "never") ms after the heal; longest stall \(milliseconds(stall)) ms (j1's game servers moved to j2); after the heal, j1 serves in \(milliseconds(back)) ms, every player saves in \(milliseconds(recovery.all)) ms")
            // j1 through n1 came back in 0.03–15 s in quiet runs (n1 rejoining its peers and
            // catching up is NATS's); bounded loosely, reported. Game servers on j2 recover at once.
            #expect(back < .seconds(30))
            #expect(recovery.all < .seconds(10))
            try await work.stopAndVerify(cluster.clients)
        }
    }

    /// A Jelly node cut off from NATS (its game servers still reach it) for 15 s: it answers
    /// 503, its game servers go on through the other node with their tokens; a holder whose
    /// lease expired while its node was cut off is fenced after the heal, and the save it sent
    /// into the cut never lands.
    @Test func jellyNodeCutOffFromNATS() async throws {
        try await NetworkCluster.run { cluster in
            let (a, b) = (cluster.clients[0], cluster.clients[1])
            let stale = try await cluster.expiringHolder(of: "fenced")
            let work = try await cluster.startSessions(players: Self.players)
            let cut = ContinuousClock.now
            try cluster.network.cut("j1")
            // The holder's save through the cut-off node fails (503), never succeeds.
            let inTheCut = await #expect(throws: (any Error).self) {
                try await a.put(partition: "fenced", key: "k", value: Array("a2-in-the-cut".utf8), lockToken: stale.token)
            }
            // Health says so while it lasts (within the stall timeout of the first waiting request).
            var health = try await httpGet(cluster.nodes[0].base + "/v1/health")
            for _ in 0..<50 where health.status != 503 {
                try await Task.sleep(for: .milliseconds(100))
                health = try await httpGet(cluster.nodes[0].base + "/v1/health")
            }
            #expect(health.status == 503, "the cut-off node says it cannot serve: \(health.body) (the save failed with \(String(describing: inTheCut)))")
            // Its lease expires; another game server takes the partition through the other node.
            try await Task.sleep(for: .seconds(4))
            let taken = try await b.acquireLock(partition: "fenced", owner: "gs-b", ttlMilliseconds: 60_000)
            #expect(taken.token > stale.token)
            try await b.put(partition: "fenced", key: "k", value: Array("b1".utf8), lockToken: taken.token)
            try await Task.sleep(until: cut + .seconds(Self.faultSeconds))
            let healed = ContinuousClock.now
            let stall = work.longestStall(from: cut, to: healed)
            try cluster.network.heal("j1")
            try await cluster.waitHealthy(a)
            let back = ContinuousClock.now - healed
            // The stale holder is fenced through its own node, and nothing it sent landed.
            try await expectError(.locked, "the expired holder after the heal") {
                try await a.put(partition: "fenced", key: "k", value: Array("a3".utf8), lockToken: stale.token)
            }
            try await Task.sleep(for: .seconds(2))
            #expect(try await a.get(partition: "fenced", key: "k")?.value == Array("b1".utf8))
            #expect(try await b.get(partition: "fenced", key: "k")?.value == Array("b1".utf8))
            let recovery = try #require(try await work.recovery(after: healed))
            print("fault: Jelly node j1 cut off from NATS \(Self.faultSeconds) s: longest stall \(milliseconds(stall)) ms (its game servers moved to j2); after the heal, j1 serves in \(milliseconds(back)) ms, every player saves in \(milliseconds(recovery.all)) ms")
            #expect(back < .seconds(10))
            #expect(stall < .seconds(10), "its game servers moved to the other node")
            try await work.stopAndVerify(cluster.clients)
        }
    }

    /// The leader of a stream paused (SIGSTOP) for 15 s, then resumed: the others elect a new
    /// leader; saves to that stream stop until they do; no acknowledged save is lost; the paused
    /// server catches up after it resumes.
    @Test func streamLeaderPaused() async throws {
        try await NetworkCluster.run { cluster in
            let work = try await cluster.startSessions(players: Self.players)
            let victim = try await cluster.leader(of: "\(cluster.prefix)_0")
            let paused = ContinuousClock.now
            cluster.nats.signal(victim, SIGSTOP)
            let during = try await work.recovery(after: paused + .seconds(1), timeout: .seconds(Self.faultSeconds - 1))
            try await Task.sleep(until: paused + .seconds(Self.faultSeconds))
            let resumed = ContinuousClock.now
            let stall = work.longestStall(from: paused, to: resumed)
            cluster.nats.signal(victim, SIGCONT)
            let recovery = try #require(try await work.recovery(after: resumed), "every player saves after the resume")
            print("fault: stream leader \(victim) paused \(Self.faultSeconds) s: longest stall \(milliseconds(stall)) ms\(during.map { ", every player saved again \(milliseconds($0.all) + 1000) ms into the pause" } ?? ""); after the resume, every player saves in \(milliseconds(recovery.all)) ms")
            // NATS's election (4–9 s, longer on a starved machine) is reported, not bounded here.
            #expect(recovery.all < .seconds(10))
            try await work.stopAndVerify(cluster.clients)
        }
    }

    /// The NATS server a Jelly node is connected to paused (SIGSTOP: its connections stay open,
    /// nothing answers) for 15 s: the node's stall watchdog drops the connection and another
    /// server takes over; writes through both nodes resume within 5 s of the pause (the whole
    /// suite on two cores gets 10). The server leads no stream here (leaders moved off first): a paused
    /// stream leader is `streamLeaderPaused`, bounded by NATS's own election. (What health says
    /// meanwhile: NATSClientTests' StalledServerTests.)
    @Test func connectedNATSServerPaused() async throws {
        try await NetworkCluster.run { cluster in
            let work = try await cluster.startSessions(players: Self.players)
            let victim = try #require(try await cluster.connectedServer(of: 0), "j1's log names its server")
            try await cluster.moveLeaders(awayFrom: victim)
            let paused = ContinuousClock.now
            cluster.nats.signal(victim, SIGSTOP)
            let recovery = try #require(try await work.recovery(after: paused, timeout: .seconds(Self.faultSeconds)), "saves resume during the pause")
            // A save acknowledged just after the pause may have been on its way already: the
            // resumption is the first acknowledgement after the longest stall.
            try await Task.sleep(until: paused + .seconds(Self.faultSeconds))
            let stall = work.longestStall(from: paused, to: .now)
            // j1 may have had no requests for a while (its game servers moved to j2 on a 503):
            // a node notices a silent server when a request waits on it, so send one.
            let asked = ContinuousClock.now
            var answered = false
            while !answered && ContinuousClock.now < asked + .seconds(10) {
                do {
                    try await cluster.clients[0].put(partition: "probe", key: "k", value: [1])
                    answered = true
                } catch let e as JellyError where e.code == .unavailable {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let probe = ContinuousClock.now - asked
            let moved = try await cluster.connectedServer(of: 0)
            cluster.nats.signal(victim, SIGCONT)
            print("fault: NATS server \(victim), j1's, paused \(Self.faultSeconds) s: longest stall \(milliseconds(stall)) ms (every player saved within \(milliseconds(recovery.all)) ms of the pause); a request through j1 answered in \(milliseconds(probe)) ms, j1 then on \(moved ?? "none")")
            #expect(stall < .seconds(10), "writes resumed within 5 s of the pause (10 allowed under the whole suite)")
            #expect(answered && probe < .seconds(8), "j1 serves again: \(probe)")
            #expect(moved != victim, "j1 moved to another server: \(cluster.nodes[0].log.suffix(3000))")
            try await work.stopAndVerify(cluster.clients)
        }
    }
}
