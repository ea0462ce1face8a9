import Glibc
import JellyCore
import JellyEngine
import JellyReplica
import JellyTestSupport
import Testing

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
private func text(_ o: ReplicaObject?) -> String? { o.map { String(decoding: $0.value.value, as: UTF8.self) } }

/// Replicas against an in-process embedded store (the server), as the game client would use
/// them: local edits at once, offline; sync; the resolver; the lock; a reset.
@Suite struct ReplicaTests {
    let server: EmbeddedStoreHarness
    let dir: TemporaryDirectory

    init() throws {
        server = try EmbeddedStoreHarness { $0.compaction.tombstoneRetentionMilliseconds = 0 }
        dir = try TemporaryDirectory()
    }

    func replica(_ name: String, resolver: ReplicaResolver? = nil) async throws -> JellyReplica {
        var config = JellyReplica.Configuration(directory: dir.path + "/" + name, partition: "player", remote: server.store)
        config.durability = .never
        if let resolver { config.resolver = resolver }
        return try await JellyReplica.open(config)
    }

    /// Objects a game server made client-writable, as replicas may only edit those.
    func seed(_ keys: [String: String]) async throws {
        for (k, v) in keys { try await server.store.put(partition: "player", key: k, value: bytes(v), access: ObjectAccess(read: .owner, write: .owner)) }
    }

    @Test func offlineEditsSyncAndConflictsGoToTheResolver() async throws {
        defer { Task { await server.finish(); dir.remove() } }
        try await seed(["gold": "10", "name": "ann"])
        let seen = Conflicts()
        let a = try await replica("a") { c in
            seen.add(c)
            // Gold adds up: base + (mine - base) + (theirs - base).
            let base = Int(String(decoding: c.base?.value ?? [], as: UTF8.self)) ?? 0
            let mine = Int(String(decoding: c.mine?.value ?? [], as: UTF8.self)) ?? 0
            let theirs = Int(String(decoding: c.theirs?.value ?? [], as: UTF8.self)) ?? 0
            return .merged(ReplicaValue(bytes(String(base + (mine - base) + (theirs - base)))))
        }
        let b = try await replica("b")
        try await a.sync()
        try await b.sync()
        let v1 = await a.get("gold")
        let v2 = await b.get("name")
        #expect(text(v1) == "10" && text(v2) == "ann")

        // Both offline: a earns 5, b earns 7; each sees its own at once.
        try await a.put("gold", ReplicaValue(bytes("15")))
        try await b.put("gold", ReplicaValue(bytes("17")))
        let v3 = await a.get("gold")
        let v4 = await a.get("gold")
        #expect(text(v3) == "15" && (v4)?.pending == true)
        #expect(await a.pendingCount == 1)

        let rb = try await b.sync()
        #expect(rb.pushed == 1 && rb.conflicts == 0)
        let ra = try await a.sync()
        #expect(ra.conflicts == 1, "a's edit was based on 10, the server has 17")
        let c = try #require(seen.all.first)
        #expect(c.key == "gold" && c.base?.value == bytes("10") && c.mine?.value == bytes("15") && c.theirs?.value == bytes("17"))
        let v5 = await a.get("gold")
        let v6 = await a.get("gold")
        #expect(text(v5) == "22" && (v6)?.pending == false, "merged and pushed in the same round")
        try await b.sync()
        #expect(text(await b.get("gold")) == "22")
        #expect(String(decoding: try await server.store.get(partition: "player", key: "gold")?.value ?? [], as: UTF8.self) == "22")

        // The default resolver keeps theirs and says what was lost.
        let events = await b.events()
        try await b.put("name", ReplicaValue(bytes("bob")))
        try await a.put("name", ReplicaValue(bytes("cat")))
        try await a.sync()
        try await b.sync()
        #expect(text(await b.get("name")) == "cat")
        var lost: ReplicaValue?
        for await e in events {
            if case .resolved(let key, .theirs, let mine) = e, key == "name" { lost = mine; break }
        }
        #expect(lost?.value == bytes("bob"))
        try await a.close()
        try await b.close()
    }

    @Test func pushesWaitWhileAGameServerHoldsTheLock() async throws {
        defer { Task { await server.finish(); dir.remove() } }
        try await seed(["hp": "100"])
        let r = try await replica("r")
        try await r.sync()
        let session = try await server.store.acquireLockAndLoad(partition: "player", owner: "game-1", ttlMilliseconds: 60_000)
        try await r.put("hp", ReplicaValue(bytes("90")))
        let report = try await r.sync()
        let v7 = await r.pendingCount
        #expect(report.lockedBy == "game-1" && report.pushed == 0 && (v7) == 1)
        #expect(try await server.store.get(partition: "player", key: "hp")?.value == bytes("100"), "nothing landed under the session")
        try await server.store.saveAndRelease(partition: "player", [.put(key: "hp", value: bytes("80"), access: ObjectAccess(read: .owner, write: .owner))], lockToken: session.lock.token)
        let after = try await r.sync()
        #expect(after.lockedBy == nil && after.conflicts == 1, "the release is seen; the session's save wins the conflict by default")
        let v8 = await r.get("hp")
        let v9 = await r.pendingCount
        #expect(text(v8) == "80" && (v9) == 0)
        try await r.close()
    }

    @Test func aReplicaComesBackFromARestartWithItsQueue() async throws {
        defer { Task { await server.finish(); dir.remove() } }
        try await seed(["a": "1", "b": "1"])
        var r = try await replica("r")
        try await r.sync()
        let id = await r.clientID
        try await r.put("a", ReplicaValue(bytes("2")))
        try await r.delete("b")
        try await r.close()
        r = try await replica("r")
        let v10 = await r.pendingCount
        #expect(await r.clientID == id && (v10) == 2)
        let v11 = await r.get("a")
        let v12 = await r.get("b")
        #expect(text(v11) == "2" && (v12) == nil)
        try await r.sync()
        #expect(try await server.store.get(partition: "player", key: "a")?.value == bytes("2"))
        #expect(try await server.store.get(partition: "player", key: "b") == nil)
        try await r.close()
    }

    @Test func aStaleReplicaIsResetAndConverges() async throws {
        defer { Task { await server.finish(); dir.remove() } }
        try await seed(["a": "1", "b": "1", "c": "1"])
        var stale = try await replica("stale")
        try await stale.sync()
        // The device is off while the server restarts (a replica holds its remote store).
        try await stale.close()
        // While it is away: b is deleted and its tombstone compacted away (no retention here).
        try await server.store.delete(partition: "player", key: "b")
        try await server.store.put(partition: "player", key: "c", value: bytes("2"), access: ObjectAccess(read: .owner, write: .owner))
        var n = 0
        for _ in 0..<3 {
            let first = server.embedded.activeSegment
            while server.embedded.activeSegment == first {
                try await server.store.put(partition: "other", key: "hot", value: [UInt8](repeating: UInt8(n % 256), count: 3000))
                n += 1
            }
            _ = try await server.embedded.compact()
            try await server.restart()
        }
        stale = try await replica("stale")
        let staleCursor = await stale.cursor
        let feed = try await server.store.changes(partition: "player", since: staleCursor)
        try #require(feed.reset, "the test needs the tombstone gone (floor \(feed.floor), cursor \(staleCursor))")
        let events = await stale.events()
        try await stale.sync()
        let v13 = await stale.list()
        let v14 = await stale.get("c")
        #expect((v13).map(\.key) == ["a", "c"] && text(v14) == "2")
        var sawReset = false
        for await e in events { if e == .reset { sawReset = true; break } }
        #expect(sawReset)
        try await stale.close()
    }
}

extension ReplicaTests {
    /// Waits until `condition` holds (the background loop works on its own time).
    func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<3000 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ConformanceFailure("not within 30 s: \(what)")
    }

    @Test func theBackgroundLoopPullsAndPushesOnItsOwn() async throws {
        defer { Task { await server.finish(); dir.remove() } }
        try await seed(["hp": "100"])
        let r = try await replica("r")
        await r.start()
        try await eventually("the first pull") { await r.get("hp") != nil }
        // A server change arrives without a sync call (woken by the commit, not polled).
        try await server.store.put(partition: "player", key: "hp", value: bytes("90"), access: ObjectAccess(read: .owner, write: .owner))
        try await eventually("the server's change") { text(await r.get("hp")) == "90" }
        // A local edit is pushed without a sync call.
        try await r.put("hp", ReplicaValue(bytes("95")))
        try await eventually("the push") { try await server.store.get(partition: "player", key: "hp")?.value == bytes("95") }
        try await eventually("the queue settles") { await r.pendingCount == 0 }
        await r.stop()
        // Stopped: edits stay local.
        try await r.put("hp", ReplicaValue(bytes("1")))
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await server.store.get(partition: "player", key: "hp")?.value == bytes("95"))
        try await r.close()
    }
}

final class Conflicts: @unchecked Sendable {
    private var list: [ReplicaConflict] = []
    private let lock = NSLockLike()
    func add(_ c: ReplicaConflict) { lock.with { list.append(c) } }
    var all: [ReplicaConflict] { lock.with { list } }
}

/// A tiny lock for test bookkeeping.
final class NSLockLike: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func with<T>(_ body: () -> T) -> T { pthread_mutex_lock(&m); defer { pthread_mutex_unlock(&m) }; return body() }
}
