@testable import JellyCluster
import JellyCore
import JellyTestSupport
import NATSClient
import Synchronization
import Testing

/// The cluster store's reads that prove their freshness (ClusterStore+FreshReads.swift): the
/// partition read in one direct get, the fallback for partitions larger than one direct get may
/// match, and barriers shared by the reads of a round. The stale-replica case itself needs a
/// partitioned network: ClusterNetworkTests.natsServerIsolatedFromItsPeers.
@Suite(.serialized) struct ClusterReadTests {
    /// More object subjects than one direct get may match (1,024): the load, the listing and the
    /// feed still see every object, read through the listing and chunks.
    @Test func aPartitionLargerThanOneDirectGetIsReadWhole() async throws {
        try await withStoreOnOneServer { _, store in
            let count = JetStream.lastMessagesMax + 76
            var written = 0
            while written < count {
                let batch = (written..<min(written + 200, count)).map { WriteOperation.put(key: String(format: "k%05d", $0), value: Array("v\($0)".utf8)) }
                try await store.write(partition: "big", batch, lockToken: nil, releaseLock: false)
                written += batch.count
        }
        try await store.delete(partition: "big", key: "k00007")
        let (lock, objects) = try await store.acquireLockAndLoad(partition: "big", owner: "gs", ttlMilliseconds: 30_000)
        #expect(objects.count == count - 1)
        #expect(objects.first { $0.key == "k01099" }?.value == Array("v1099".utf8))
        #expect(!objects.contains { $0.key == "k00007" })
        var listed: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try await store.list(partition: "big", after: cursor, limit: 1000)
            listed += page.objects.map(\.key)
            cursor = page.next
        } while cursor != nil
        #expect(listed == objects.map(\.key).sorted())
        var fed: [String: Bool] = [:] // key: deleted
        var since: UInt64 = 0
        var more = true
        while more {
            let batch = try await store.changes(partition: "big", since: since, limit: 1000)
            for change in batch.changes { fed[change.key] = change.object == nil }
            since = batch.next
            more = batch.more
        }
        // (A feed read from 0 leaves deletions out: a new replica has nothing to delete.)
        #expect(fed.count == count - 1 && fed["k00007"] == nil && !fed.values.contains(true), "the feed gave \(fed.count) keys")
        try await store.releaseLock(partition: "big", token: lock.token)
        }
    }

    /// Concurrent plain reads of one shard share their barriers instead of writing one each, and
    /// each read still sees the write acknowledged just before it began.
    @Test func concurrentPlainReadsShareBarriers() async throws {
        try await withStoreOnOneServer { harness, store in
            let stream = "\(harness.configuration.streamPrefix)_0"
            let js = JetStream(connection: store.connection)
            let version = try await store.put(partition: "p", key: "k", value: Array("fresh".utf8))
            let before = try #require(try await js.streamInfo(stream)).state.lastSeq
            let reads = 64
            let seen = try await withThrowingTaskGroup(of: UInt64?.self) { group in
                for _ in 0..<reads { group.addTask { try await store.get(partition: "p", key: "k")?.version } }
                return try await group.reduce(into: [UInt64?]()) { $0.append($1) }
        }
        let barriers = try #require(try await js.streamInfo(stream)).state.lastSeq - before
        #expect(seen.allSatisfy { $0 == version })
        #expect(barriers >= 1 && barriers <= 8, "\(reads) concurrent reads wrote \(barriers) barriers")
        }
    }

    /// An answer from a replica that has not reached the read's proof is asked again, then refused
    /// (503), never returned: here the proof is past the stream's end, as a lagging or cut-off
    /// replica would see it (the partitioned case: ClusterNetworkTests).
    @Test func aReadBehindItsProofIsRefused() async throws {
        try await withStoreOnOneServer { _, store in
            let version = try await store.put(partition: "p", key: "k", value: Array("v".utf8))
            let s = store.subjects("p")
            #expect(try await store.partitionSnapshot(s, atLeast: version).objects.map(\.key) == ["k"])
            let started = ContinuousClock.now
            await #expect {
                _ = try await store.partitionSnapshot(s, atLeast: version + 1_000)
            } throws: { error in
                (error as? JellyError)?.code == .unavailable && "\(error)".contains("behind a write at \(version + 1_000)")
        }
        #expect(ContinuousClock.now - started >= .milliseconds(ClusterStore.freshReadWaitMilliseconds), "asked again before refusing")
        }
    }

    /// `BarrierRounds` on its own: a read joins a round only if that round is sent after the
    /// read began, so reads arriving during a send wait for the next one, which they share.
    @Test func aReadNeverSharesABarrierSentBeforeItBegan() async throws {
        let rounds = BarrierRounds()
        let gate = Gate()
        let first = Task { try await rounds.next { await gate.publish() } }
        await gate.waitForSends(1) // round 1 is being sent
        let joined = (0..<5).map { _ in Task { try await rounds.next { await gate.publish() } } }
        try await Task.sleep(for: .milliseconds(50)) // (they have registered; round 2 waits for 1)
        #expect(gate.sends == 1, "round 2 is not sent while round 1 is in flight")
        gate.release()
        #expect(try await first.value == 1)
        await gate.waitForSends(2)
        let late = Task { try await rounds.next { await gate.publish() } }
        try await Task.sleep(for: .milliseconds(50))
        gate.release()
        for task in joined { #expect(try await task.value == 2) }
        await gate.waitForSends(3)
        gate.release()
        #expect(try await late.value == 3, "a read that began while round 2 was sent waits for round 3")
        #expect(gate.sends == 3)
    }
}

/// A cluster store on one fresh NATS server, one shard, R1 (its streams removed afterwards).
private func withStoreOnOneServer(_ body: (ClusterStoreHarness, ClusterStore) async throws -> Void) async throws {
    let servers = try await NATSTestServers(count: 1)
    defer { servers.finish() }
    let harness = try await ClusterStoreHarness(servers: servers, replicas: 1, shards: 1)
    do {
        try await body(harness, harness.cluster)
    } catch {
        await harness.finish()
        throw error
    }
    await harness.finish()
}

/// Publishes that each wait until released, numbered in the order they were sent.
private final class Gate: Sendable {
    private struct State {
        var sends = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
        var released = 0
    }
    private let state = Mutex(State())

    var sends: Int { state.withLock { $0.sends } }

    func publish() async -> UInt64 {
        let n = state.withLock { s -> Int in s.sends += 1; return s.sends }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = state.withLock { s -> Bool in
                if s.released >= n { return true }
                s.waiting.append(c)
                return false
            }
            if go { c.resume() }
        }
        return UInt64(n)
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.released += 1
            return s.waiting.isEmpty ? nil : s.waiting.removeFirst()
        }
        next?.resume()
    }

    func waitForSends(_ n: Int) async {
        while sends < n { try? await Task.sleep(for: .milliseconds(1)) }
    }
}
