import Foundation
import JellyClient
import JellyCore
import JellyTestSupport
import Testing

/// The change feed against a real `jelly serve`: the long-poll and the WebSocket, a client
/// token that must not see server-only objects, locks announced, a game backend watching many
/// partitions on one socket.
@Suite(.serialized) struct FeedTests {
    static let serverKey = "feed-test-server-key-0123456789"
    static let secret = "feed-test-hs256-secret-of-32-bytes!!!"
    static let owner = ObjectAccess(read: .owner, write: .owner)

    func withServer(_ body: (ServerProcess, JellyClient) async throws -> Void) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config: [String: Any] = ["auth": ["api_keys": [["name": "game", "key": Self.serverKey, "role": "server"]], "client_tokens": ["hs256_secret": Self.secret]]]
        let path = dir.path + "/jelly.json"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        try await ServerProcess(directory: dir.path + "/data", extraArguments: ["--config", path]).use { server in
            let game = try JellyClient(JellyClient.Configuration(url: server.base, bearerToken: Self.serverKey))
            do {
                try await body(server, game)
            } catch {
                try? await game.close()
                throw error
            }
            try await game.close()
        }
    }

    /// The next message, or a failure after `seconds` (generous: the whole suite runs in
    /// parallel on two cores in CI; a message normally takes a millisecond).
    func next(_ socket: FeedSocketClient, within seconds: Double = 30, line: Int = #line) async throws -> FeedSocketClient.Message {
        try await withThrowingTaskGroup(of: FeedSocketClient.Message?.self) { group in
            group.addTask {
                for await m in socket.messages { return m }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            guard let first else { throw ConformanceFailure("line \(line): no feed message within \(seconds) s (or the socket closed)") }
            return first
        }
    }

    func batch(_ m: FeedSocketClient.Message) throws -> (String, ChangeBatch) {
        guard case .changes(let p, let b) = m else { throw ConformanceFailure("expected changes, got \(m)") }
        return (p, b)
    }

    @Test func aClientsSocketSeesWhatItMayReadAsItCommits() async throws {
        try await withServer { server, game in
            try await game.put(partition: "alice", key: "inv", value: Array("sword".utf8), access: Self.owner)
            try await game.put(partition: "alice", key: "flags", value: Array("secret".utf8))
            let token = try await hs256ClientToken("alice", secret: Self.secret)
            let socket = try await FeedSocketClient.watch(url: server.base, bearerToken: token, partition: "alice")
            var (p, b) = try batch(try await next(socket))
            #expect(p == "alice" && b.changes.map(\.key) == ["inv"] && b.lock == nil, "the first message: the state the client may read: \(b.changes.map(\.key))")

            // A server-only change sends nothing; a readable one arrives as it commits.
            try await game.put(partition: "alice", key: "flags", value: Array("more".utf8))
            let v = try await game.put(partition: "alice", key: "inv", value: Array("shield".utf8), access: Self.owner)
            (p, b) = try batch(try await next(socket))
            #expect(b.changes.map(\.key) == ["inv"] && b.changes.first?.version == v && b.changes.first?.object?.value == Array("shield".utf8), "\(b.changes)")

            // The lock and its release are announced.
            let lock = try await game.acquireLock(partition: "alice", owner: "gs-1", ttlMilliseconds: 30_000)
            (p, b) = try batch(try await next(socket))
            #expect(b.lock?.owner == "gs-1" && b.changes.isEmpty)
            try await game.releaseLock(partition: "alice", token: lock.token)
            (p, b) = try batch(try await next(socket))
            #expect(b.lock == nil)

            // A resubscription from 0, and one from another epoch (a reset).
            socket.subscribe("alice", since: 0)
            (p, b) = try batch(try await next(socket))
            #expect(b.changes.map(\.key) == ["inv"] && !b.reset)
            socket.subscribe("alice", since: b.next, epoch: "another-store")
            (p, b) = try batch(try await next(socket))
            #expect(b.reset && b.changes.map(\.key) == ["inv"], "another epoch resets")
            socket.subscribe("bob", since: 0)
            guard case .error(let partition, let code, _) = try await next(socket) else { throw ConformanceFailure("bob must be refused") }
            #expect(partition == "bob" && code == .invalidArgument)
            await socket.close()

            // Refused: another partition's token, and no credentials.
            await #expect(throws: JellyError.self) { _ = try await FeedSocketClient.watch(url: server.base, bearerToken: token, partition: "bob") }
            await #expect(throws: JellyError.self) { _ = try await FeedSocketClient.watch(url: server.base, bearerToken: nil, partition: "alice") }
            await #expect(throws: JellyError.self) { _ = try await FeedSocketClient.watchMany(url: server.base, bearerToken: token) }
        }
    }

    @Test func aGameBackendWatchesManyPartitionsOnOneSocket() async throws {
        try await withServer { server, game in
            let socket = try await FeedSocketClient.watchMany(url: server.base, bearerToken: Self.serverKey)
            for p in ["p1", "p2", "p3"] { socket.subscribe(p, since: 0) }
            var first = Set<String>()
            for _ in 0..<3 { first.insert(try batch(try await next(socket)).0) }
            #expect(first == ["p1", "p2", "p3"], "a first message per partition")
            try await game.put(partition: "p2", key: "k", value: [1])
            try await game.put(partition: "p3", key: "k", value: [2])
            try await game.put(partition: "other", key: "k", value: [3])
            var got: [String: [String]] = [:]
            for _ in 0..<2 {
                let (p, b) = try batch(try await next(socket))
                got[p] = b.changes.map(\.key)
            }
            #expect(got == ["p2": ["k"], "p3": ["k"]], "\(got)")
            socket.unwatch("p2")
            // The socket handles its messages in order: once the marker's first message is
            // here, the unwatch was handled.
            socket.subscribe("marker", since: 0)
            #expect(try batch(try await next(socket)).0 == "marker")
            try await game.put(partition: "p2", key: "k", value: [4])
            try await game.put(partition: "p1", key: "k", value: [5])
            let (p, _) = try batch(try await next(socket))
            #expect(p == "p1", "p2 was unwatched")
            await socket.close()
        }
    }

    @Test func theLongPollWaitsForACommit() async throws {
        try await withServer { server, game in
            let start = try await game.changes(partition: "p", since: 0, limit: 100, epoch: nil, waitMilliseconds: 0)
            let t0 = ContinuousClock.now
            let empty = try await game.changes(partition: "p", since: start.next, limit: 100, epoch: nil, waitMilliseconds: 300)
            #expect(empty.changes.isEmpty && ContinuousClock.now - t0 >= .milliseconds(280), "waited the whole time")
            let waiting = Task { try await game.changes(partition: "p", since: start.next, limit: 100, epoch: nil, waitMilliseconds: 20_000) }
            try await Task.sleep(for: .milliseconds(200))
            let t1 = ContinuousClock.now
            try await game.put(partition: "p", key: "k", value: [1])
            let woke = try await waiting.value
            #expect(woke.changes.map(\.key) == ["k"] && ContinuousClock.now - t1 < .seconds(5), "woken by the put")
            // An upgrade to anything but a feed socket is served as HTTP/1.1 (an h2c attempt, a
            // WebSocket elsewhere); a refused feed upgrade is answered with its error.
            for (upgrade, path) in [("h2c", "/v1/health"), ("websocket", "/v1/health"), ("websocket", "/v1/partitions/p/objects/k")] {
                let answer = try RawConnection(port: server.port).exchange("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: \(upgrade)\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer \(Self.serverKey)\r\n\r\n")
                #expect(answer.hasPrefix("HTTP/1.1 200"), "\(upgrade) on \(path): \(answer.prefix(80))")
            }
            let refused = try RawConnection(port: server.port).exchange("GET /v1/partitions/p/changes HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            #expect(refused.hasPrefix("HTTP/1.1 401") && refused.contains("\"unauthorized\""), "\(refused.prefix(120))")
            // A plain GET of /v1/watch says it is a WebSocket.
            let r = try await http("GET", server.base + "/v1/watch", headers: ["Authorization": "Bearer \(Self.serverKey)"])
            #expect(r.status == 400 && r.text.contains("WebSocket"))
        }
    }
}
